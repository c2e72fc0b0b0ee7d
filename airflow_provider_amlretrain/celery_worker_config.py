"""
The Celery configuration of a worker whose task processes inherit what the provider's tasks import.

A Celery worker of Airflow 3.3 runs each task in a process forked from one of its pool processes, which are
forked from the worker's main process when it starts. Modules in Celery's ``imports`` setting are imported by
that main process before it forks its pool (where the Celery provider also preloads a few of Airflow's own), so
naming :mod:`airflow_provider_amlretrain.worker_preload` there does for Celery what ``mp_forkserver_preload``
does for the LocalExecutor (``docs/scale.rst``, "Task processes")::

    [celery]
    celery_config_options = airflow_provider_amlretrain.celery_worker_config.CELERY_CONFIG

It is Airflow's default Celery configuration (broker, result backend, pool, TLS and the rest, read from
``[celery]`` as usual) with that one module added to ``imports``. Only a Celery deployment imports this module
(it needs ``apache-airflow-providers-celery``).
"""

from __future__ import annotations

from typing import Any

from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG

#: Imported by each Celery worker's main process before it forks its pool.
PRELOAD_MODULE = "airflow_provider_amlretrain.worker_preload"

CELERY_CONFIG: dict[str, Any] = {
    **DEFAULT_CELERY_CONFIG,
    "imports": (*tuple(DEFAULT_CELERY_CONFIG.get("imports") or ()), PRELOAD_MODULE),
}
