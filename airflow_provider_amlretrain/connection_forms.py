"""Connection forms in the Airflow UI: one definition, used by the provider info and by the hooks."""

from __future__ import annotations

from typing import Any

_STRING = {"type": ["string", "null"]}
_NUMBER = {"type": ["number", "null"]}
_INTEGER = {"type": ["integer", "null"]}
_HTTP_FIELDS: dict[str, Any] = {
    "request_timeout": {"label": "Request timeout (seconds)", "schema": _NUMBER},
    "max_retries": {"label": "Retries on throttling, 5xx and connection errors", "schema": _INTEGER},
    "retry_backoff": {"label": "First retry backoff (seconds)", "schema": _NUMBER},
}

#: ``azureml_studio`` connections.
STUDIO_FORM: dict[str, Any] = {
    "hidden-fields": ["schema", "port", "login"],
    "relabeling": {"host": "API location (BES/RRS base URL)", "password": "API key"},
    "placeholders": {
        "host": "https://ussouthcentral.services.azureml.net/workspaces/<workspace>/services/<service>",
        "password": "web service API key",
        "request_timeout": "60",
        "max_retries": "4",
        "retry_backoff": "1.0",
    },
}
STUDIO_FIELDS: dict[str, Any] = _HTTP_FIELDS

#: ``azureml_classic_management`` connections.
MANAGEMENT_FORM: dict[str, Any] = {
    "hidden-fields": ["schema", "port", "login"],
    "relabeling": {"host": "Management URL", "password": "Workspace token"},
    "placeholders": {
        "host": "https://management.azureml.net",
        "password": "workspace authorization token",
        "workspace_id": "32-character workspace id",
    },
}
MANAGEMENT_FIELDS: dict[str, Any] = {
    "workspace_id": {"label": "Workspace ID", "schema": _STRING},
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
    "placeholders": {
        "host": "https://management.azure.com",
        "execution_url": "https://ussouthcentral.services.azureml.net",
    },
}
WEB_SERVICES_FIELDS: dict[str, Any] = {
    "subscription_id": {"label": "Subscription ID", "schema": _STRING},
    "resource_group": {"label": "Resource group", "schema": _STRING},
    "tenant_id": {"label": "Tenant ID (service principal)", "schema": _STRING},
    "managed_identity_client_id": {"label": "Managed identity client ID", "schema": _STRING},
    "execution_url": {"label": "RRS host of the region", "schema": _STRING},
    **_HTTP_FIELDS,
}
