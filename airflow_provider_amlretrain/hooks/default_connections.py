"""
The default connection ids of the provider's hooks, in a module of their own.

Operators and sensors take them as their parameters' defaults; importing them from here keeps a DAG file's
parse from importing the hooks (and their HTTP clients), which load only when a task runs.
"""

from __future__ import annotations

#: :class:`~airflow_provider_amlretrain.hooks.studio.AzureMLStudioHook` (a web service's BES and RRS).
STUDIO_CONN_ID = "azureml_default"
#: :class:`~airflow_provider_amlretrain.hooks.classic_management.AzureMLClassicManagementHook`.
CLASSIC_MANAGEMENT_CONN_ID = "azureml_management_default"
#: :class:`~airflow_provider_amlretrain.hooks.web_services.AzureMLWebServicesHook` (ARM web services).
ARM_CONN_ID = "azureml_arm_default"
