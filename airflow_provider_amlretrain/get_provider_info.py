"""Provider metadata read by Airflow through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any

from airflow_provider_amlretrain.connection_forms import (
    MANAGEMENT_FIELDS,
    MANAGEMENT_FORM,
    STUDIO_FIELDS,
    STUDIO_FORM,
    WEB_SERVICES_FIELDS,
    WEB_SERVICES_FORM,
)


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
                "python-modules": [
                    "airflow_provider_amlretrain.sensors.batch_job",
                    "airflow_provider_amlretrain.sensors.wasb_blob",
                ],
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
                "ui-field-behaviour": STUDIO_FORM,
                "conn-fields": STUDIO_FIELDS,
            },
            {
                "connection-type": "azureml_classic_management",
                "hook-class-name": "airflow_provider_amlretrain.hooks.classic_management.AzureMLClassicManagementHook",
                "hook-name": "Azure ML Studio (classic) management",
                "ui-field-behaviour": MANAGEMENT_FORM,
                "conn-fields": MANAGEMENT_FIELDS,
            },
            {
                "connection-type": "azureml_web_services",
                "hook-class-name": "airflow_provider_amlretrain.hooks.web_services.AzureMLWebServicesHook",
                "hook-name": "Azure ML web services (Resource Manager)",
                "ui-field-behaviour": WEB_SERVICES_FORM,
                "conn-fields": WEB_SERVICES_FIELDS,
            },
        ],
    }
