"""
Connection forms in the Airflow UI: one definition, used by the provider info and by the hooks.

Airflow 3.3's connection form shows no placeholder for an extra field (only standard fields get
them), so each extra field says in its label or description what an empty field means; the
defaults named here are the ones the hooks apply (a unit test compares them).
"""

from __future__ import annotations

from typing import Any

_STRING = {"type": ["string", "null"]}
_NUMBER = {"type": ["number", "null"]}
_INTEGER = {"type": ["integer", "null"]}
_BOOLEAN = {"type": ["boolean", "null"]}
_HTTP_FIELDS: dict[str, Any] = {
    "request_timeout": {
        "label": "Request timeout in seconds (default 60)",
        "description": "Seconds before one HTTP call is abandoned. Empty: 60.",
        "schema": _NUMBER,
    },
    "max_retries": {
        "label": "Retries on throttling, 5xx and connection errors (default 4)",
        "description": "How many times a failed call is retried (429, 5xx, timeouts). Empty: 4; 0 never retries.",
        "schema": _INTEGER,
    },
    "retry_backoff": {
        "label": "First retry backoff in seconds (default 1.0)",
        "description": "Wait before the first retry, doubled each time (a Retry-After header wins). Empty: 1.0.",
        "schema": _NUMBER,
    },
}

#: ``azureml_studio`` connections.
STUDIO_FORM: dict[str, Any] = {
    "hidden-fields": ["schema", "port", "login"],
    "relabeling": {"host": "API location (BES/RRS base URL)", "password": "API key"},
    "placeholders": {
        "host": "https://ussouthcentral.services.azureml.net/workspaces/<workspace>/services/<service>",
        "password": "web service API key",
    },
}
STUDIO_FIELDS: dict[str, Any] = {
    "job_page_url": {
        "label": "Job page for the task link (default: the Web Services portal)",
        "description": "A page showing a BES job without the API key, with {job_id}, {workspace_id}, "
        "{service_id} filled in; no query string. Empty: https://services.azureml.net/ (Azure shows BES "
        "jobs on no page). The local stack sets its emulator's job page.",
        "schema": _STRING,
    },
    **_HTTP_FIELDS,
}

#: ``azureml_classic_management`` connections.
MANAGEMENT_FORM: dict[str, Any] = {
    "hidden-fields": ["schema", "port", "login"],
    "relabeling": {"host": "Management URL", "password": "Workspace token"},
    "placeholders": {
        "host": "https://management.azureml.net",
        "password": "workspace authorization token",
    },
}
MANAGEMENT_FIELDS: dict[str, Any] = {
    "workspace_id": {
        "label": "Workspace ID (required)",
        "description": "The 32-character workspace id (Studio: Settings > Name > Workspace ID). No default.",
        "schema": _STRING,
    },
    **_HTTP_FIELDS,
}

#: ``azureml_web_services`` connections.
WEB_SERVICES_FORM: dict[str, Any] = {
    "hidden-fields": ["schema", "port"],
    "relabeling": {
        "host": "ARM URL",
        "login": "Client ID (service principal)",
        "password": "Client secret",
    },
    "placeholders": {"host": "https://management.azure.com"},
}
WEB_SERVICES_FIELDS: dict[str, Any] = {
    "subscription_id": {
        "label": "Subscription ID (required)",
        "description": "The Azure subscription holding the web services. No default.",
        "schema": _STRING,
    },
    "resource_group": {
        "label": "Resource group (required)",
        "description": "The resource group of the web services. No default.",
        "schema": _STRING,
    },
    "tenant_id": {
        "label": "Tenant ID (service principal)",
        "description": "With Client ID and Client secret: sign in as that service principal. "
        "Empty: no service principal (managed identity or DefaultAzureCredential).",
        "schema": _STRING,
    },
    "use_managed_identity": {
        "label": "Use managed identity (default off)",
        "description": "On: tokens from the managed identity (system-assigned unless a client ID is given "
        "below). Off or empty: DefaultAzureCredential (environment, workload identity, managed identity, "
        "Azure CLI), unless a service principal is set.",
        "schema": _BOOLEAN,
    },
    "managed_identity_client_id": {
        "label": "Managed identity client ID (user-assigned identity)",
        "description": "Set: use this user-assigned managed identity (implies managed identity). "
        "Empty: the system-assigned identity when managed identity is on.",
        "schema": _STRING,
    },
    "http_emulator": {
        "label": "ARM URL is a local emulator over plain http (default off)",
        "description": "On: Azure AD tokens may go over plain http to the ARM URL, for an emulator in another "
        "container (docker-compose). Off or empty: https only (plain http to this machine's loopback only). "
        "Never on for Azure.",
        "schema": _BOOLEAN,
    },
    "execution_url": {
        "label": "RRS host of the region (used when a service has no swaggerLocation)",
        "description": "e.g. https://ussouthcentral.services.azureml.net. Empty: the scoring URL comes "
        "from the web service's swaggerLocation, and smoke tests fail if it has none.",
        "schema": _STRING,
    },
    **_HTTP_FIELDS,
}
