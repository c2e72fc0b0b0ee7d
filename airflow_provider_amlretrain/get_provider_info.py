"""Provider metadata read by Airflow through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any

_STRING = {"type": ["string", "null"]}
_NUMBER = {"type": ["number", "null"]}
_INTEGER = {"type": ["integer", "null"]}
_HTTP_FIELDS = {
    "request_timeout": {"label": "Request timeout (seconds)", "schema": _NUMBER},
    "max_retries": {"label": "Retries on throttling, 5xx and connection errors", "schema": _INTEGER},
    "retry_backoff": {"label": "First retry backoff (seconds)", "schema": _NUMBER},
}


def get_provider_info() -> dict[str, Any]:
    """Return the provider's metadata (validated against Airflow's ``provider_info.schema.json``)."""
    from airflow_provider_amlretrain import __version__

    return {
        "package-name": "airflow-provider-amlretrain",
        "name": "Azure ML Studio (classic) retraining",
        "description": "Retrain Azure ML Studio (classic) models through the Batch Execution Service, "
        "gate them on their evaluation and promote them to web service endpoints.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "Azure ML Studio (classic)",
                "external-doc-url": "https://learn.microsoft.com/previous-versions/azure/machine-learning/classic/",
                "tags": ["azure"],
            }
        ],
        "hooks": [
            {
                "integration-name": "Azure ML Studio (classic)",
                "python-modules": [
                    "airflow_provider_amlretrain.hooks.studio",
                    "airflow_provider_amlretrain.hooks.classic_management",
                    "airflow_provider_amlretrain.hooks.web_services",
                ],
            }
        ],
        "operators": [
            {
                "integration-name": "Azure ML Studio (classic)",
                "python-modules": [
                    "airflow_provider_amlretrain.operators.batch_execution",
                    "airflow_provider_amlretrain.operators.evaluation_gate",
                    "airflow_provider_amlretrain.operators.update_endpoint_model",
                    "airflow_provider_amlretrain.operators.update_web_service_model",
                ],
            }
        ],
        "sensors": [
            {
                "integration-name": "Azure ML Studio (classic)",
                "python-modules": ["airflow_provider_amlretrain.sensors.batch_job"],
            }
        ],
        "triggers": [
            {
                "integration-name": "Azure ML Studio (classic)",
                "python-modules": [
                    "airflow_provider_amlretrain.triggers.batch_job",
                    "airflow_provider_amlretrain.triggers.blob_arrival",
                ],
            }
        ],
        "extra-links": ["airflow_provider_amlretrain.links.batch_job.AzureMLBatchJobLink"],
        "connection-types": [
            {
                "connection-type": "azureml_studio",
                "hook-class-name": "airflow_provider_amlretrain.hooks.studio.AzureMLStudioHook",
                "hook-name": "Azure ML Studio (classic) web service",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port", "login"],
                    "relabeling": {"host": "API location (BES/RRS base URL)", "password": "API key"},
                    "placeholders": {
                        "host": "https://ussouthcentral.services.azureml.net/workspaces/<workspace>/services/<service>",
                        "password": "web service API key",
                        "request_timeout": "60",
                        "max_retries": "4",
                        "retry_backoff": "1.0",
                    },
                },
                "conn-fields": _HTTP_FIELDS,
            },
            {
                "connection-type": "azureml_classic_management",
                "hook-class-name": "airflow_provider_amlretrain.hooks.classic_management.AzureMLClassicManagementHook",
                "hook-name": "Azure ML Studio (classic) management",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port", "login"],
                    "relabeling": {"host": "Management URL", "password": "Workspace token"},
                    "placeholders": {
                        "host": "https://management.azureml.net",
                        "password": "workspace authorization token",
                        "workspace_id": "32-character workspace id",
                    },
                },
                "conn-fields": {
                    "workspace_id": {"label": "Workspace ID", "schema": _STRING},
                    **_HTTP_FIELDS,
                },
            },
            {
                "connection-type": "azureml_web_services",
                "hook-class-name": "airflow_provider_amlretrain.hooks.web_services.AzureMLWebServicesHook",
                "hook-name": "Azure ML web services (Resource Manager)",
                "ui-field-behaviour": {
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
                },
                "conn-fields": {
                    "subscription_id": {"label": "Subscription ID", "schema": _STRING},
                    "resource_group": {"label": "Resource group", "schema": _STRING},
                    "tenant_id": {"label": "Tenant ID (service principal)", "schema": _STRING},
                    "managed_identity_client_id": {"label": "Managed identity client ID", "schema": _STRING},
                    "execution_url": {"label": "RRS host of the region", "schema": _STRING},
                    **_HTTP_FIELDS,
                },
            },
        ],
    }
