"""
What the provider's tasks import when they run, in one module, for a worker's parent process to preload.

A task process imports the Azure SDK (the Azure provider's ``WasbHook`` module loads the sync and async
storage clients and azure-identity), azure-core's pipeline, ``requests`` and aiohttp when it first runs a
hook: about half a CPU second, in every task process. The LocalExecutor forks each task process from one of
its worker processes; a worker that already holds these modules hands them to every task it forks,
copy-on-write, instead of each task importing them again. With Airflow 3.3's forkserver start method the
workers come from a server process that imports the modules named in ``mp_forkserver_preload`` once::

    [scheduler]
    mp_start_method = forkserver
    mp_forkserver_preload = airflow,airflow.executors.local_executor,airflow_provider_amlretrain.worker_preload

(``AIRFLOW__SCHEDULER__MP_START_METHOD`` and ``AIRFLOW__SCHEDULER__MP_FORKSERVER_PRELOAD`` in the
environment). Nothing else imports this module: DAG files and the DAG processor stay light.
"""

from __future__ import annotations

import importlib

#: Imported by this module, in this order.
PRELOADED_MODULES = (
    # The task process's own entry point.
    "airflow.sdk.execution_time.task_runner",
    # What its DAG-file parse imports before any task code runs: the DagBag it parses with (which loads
    # Airflow's serialization and ORM models), and what DAG files written with ``airflow.sdk`` load on first
    # use (``@task``, ``@task_group``: the standard provider's Python operators and decorators).
    "airflow.dag_processing.dagbag",
    "airflow.sdk.definitions.decorators",
    "airflow.sdk.definitions.decorators.task_group",
    "airflow.providers.standard.decorators.python",
    "airflow.providers.standard.operators.python",
    "airflow.providers.standard.operators.hitl",
    # The storage SDKs (sync and async), azure-identity and aiohttp: the Azure provider's WasbHook module
    # imports them all.
    "airflow.providers.microsoft.azure.hooks.wasb",
    # The provider's task-time modules; azure-core's pipeline and requests come with the hooks.
    "airflow_provider_amlretrain.hooks.studio",
    "airflow_provider_amlretrain.hooks.classic_management",
    "airflow_provider_amlretrain.hooks.blob_storage",
    "airflow_provider_amlretrain.blob_sas",
    "airflow_provider_amlretrain.blob_text",
    "airflow_provider_amlretrain.promotion.record",
    "airflow_provider_amlretrain.operators.batch_execution",
    "airflow_provider_amlretrain.operators.evaluation_gate",
    "airflow_provider_amlretrain.operators.update_endpoint_model",
    "airflow_provider_amlretrain.triggers.batch_job",
    # What the example DAGs build with.
    "airflow_provider_amlretrain.authoring",
    "airflow_provider_amlretrain.sensors.wasb_blob",
    "airflow_provider_amlretrain.triggers.blob_arrival",
    "airflow_provider_amlretrain.operators.update_web_service_model",
)

for _module in PRELOADED_MODULES:
    importlib.import_module(_module)
