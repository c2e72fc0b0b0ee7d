"""Provider metadata read by Airflow through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any

_STRING = {"type": ["string", "null"]}
_NUMBER = {"type": ["number", "null"]}
_INTEGER = {"type": ["integer", "null"]}


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
                "python-modules": ["airflow_provider_amlretrain.hooks.studio"],
            }
        ],
        "operators": [
            {
                "integration-name": "Azure ML Studio (classic)",
                "python-modules": ["airflow_provider_amlretrain.operators.batch_execution"],
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
                "python-modules": ["airflow_provider_amlretrain.triggers.batch_job"],
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
                "conn-fields": {
                    "request_timeout": {"label": "Request timeout (seconds)", "schema": _NUMBER},
                    "max_retries": {"label": "Retries on throttling, 5xx and connection errors", "schema": _INTEGER},
                    "retry_backoff": {"label": "First retry backoff (seconds)", "schema": _NUMBER},
                },
            }
        ],
    }
