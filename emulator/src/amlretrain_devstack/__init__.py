"""Local dev stack for airflow-provider-amlretrain: Azurite plus the Azure ML classic emulator.

Command line::

    python -m amlretrain_devstack up [--dir .amlretrain] [--fault-config FILE]
    python -m amlretrain_devstack status
    eval "$(python -m amlretrain_devstack env)"
    python -m amlretrain_devstack down

Python (e.g. a pytest session fixture)::

    from amlretrain_devstack import running_stack

    with running_stack(tmp_dir) as stack:
        monkeypatch.setenv(...)  # or os.environ.update(stack.connection_env())
"""

from __future__ import annotations

from amlretrain_devstack.azurite import ACCOUNT_KEY, ACCOUNT_NAME, AZURITE_VERSION
from amlretrain_devstack.connections import airflow_connection_env, airflow_connections
from amlretrain_devstack.emulator_service import emulator_available
from amlretrain_devstack.errors import DevStackError
from amlretrain_devstack.stack import (
    Stack,
    restart_emulator,
    running_stack,
    stack_status,
    start_stack,
    stop_stack,
)
from amlretrain_devstack.state import DEFAULT_DIR, load_stack

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
    "restart_emulator",
    "running_stack",
    "stack_status",
    "start_stack",
    "stop_stack",
]
