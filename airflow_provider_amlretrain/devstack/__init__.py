"""Local dev stack for airflow-provider-amlretrain: Azurite plus the Azure ML classic emulator.

Command line::

    python -m airflow_provider_amlretrain.devstack up [--dir .amlretrain] [--fault-config FILE]
    python -m airflow_provider_amlretrain.devstack status
    eval "$(python -m airflow_provider_amlretrain.devstack env)"
    python -m airflow_provider_amlretrain.devstack down

Python (e.g. a pytest session fixture)::

    from airflow_provider_amlretrain.devstack import running_stack

    with running_stack(tmp_dir) as stack:
        monkeypatch.setenv(...)  # or os.environ.update(stack.connection_env())
"""

from __future__ import annotations

from airflow_provider_amlretrain.devstack.azurite import ACCOUNT_KEY, ACCOUNT_NAME, AZURITE_VERSION
from airflow_provider_amlretrain.devstack.connections import airflow_connection_env, airflow_connections
from airflow_provider_amlretrain.devstack.emulator_service import emulator_available
from airflow_provider_amlretrain.devstack.errors import DevStackError
from airflow_provider_amlretrain.devstack.stack import (
    Stack,
    running_stack,
    stack_status,
    start_stack,
    stop_stack,
)
from airflow_provider_amlretrain.devstack.state import DEFAULT_DIR, load_stack

__all__ = [
    "ACCOUNT_KEY",
    "ACCOUNT_NAME",
    "AZURITE_VERSION",
    "DEFAULT_DIR",
    "DevStackError",
    "Stack",
    "airflow_connection_env",
    "airflow_connections",
    "emulator_available",
    "load_stack",
    "running_stack",
    "stack_status",
    "start_stack",
    "stop_stack",
]
