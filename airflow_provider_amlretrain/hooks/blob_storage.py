"""
The storage client of a ``wasb`` connection: the Azure provider's ``WasbHook``, the one place it is made.

Every blob this provider reads or writes (evaluation CSVs, smoke-test samples, deployment records, the SAS it
mints for BES) goes through the client ``WasbHook.get_conn`` builds, so every connection form that hook accepts
works, and its rules (which extra wins, how Azure AD is used, how the SDK's request log is quietened) are
never copied here.

Within one task execution the client of a connection is made once and reused: a promotion reads the evaluation,
checks the model blob, reads the smoke-test sample and writes its record, and each would otherwise fetch the
connection from the API server again and open its own connection to storage (``benchmarks/fan_out.py`` counted
8 connection reads per endpoint). The reuse ends with the execution: the next task, a retry, or the next task
of a ``dag.test()`` process reads the connection again, so a rotated key is used from then on. Outside a task
(the triggerer, scripts) every call makes its own client.

``WasbHook``'s module loads azure-identity (sync and async), the async storage SDK and msrest whatever the
connection holds: ``benchmarks/fan_out_task_cost.py`` measured about 0.25-0.4 CPU s of each task process that
touches a blob (250 of its 500 modules). That cost belongs to the Azure provider's module, and is kept rather
than building the client with code of our own.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from azure.storage.blob import BlobServiceClient

_lock = threading.Lock()
#: The clients of one task execution, by (its task instance try's id, connection id): only one execution's.
_clients: dict[tuple[object, str], BlobServiceClient] = {}


def current_task_execution() -> object | None:
    """The id of the task instance try running in this process, or ``None`` outside a task's execution."""
    from airflow.sdk import get_current_context

    try:
        ti = get_current_context()["ti"]
    except (RuntimeError, KeyError):
        return None
    return getattr(ti, "id", None)


def blob_service_client(wasb_conn_id: str) -> BlobServiceClient:
    """
    ``WasbHook(wasb_conn_id).get_conn()``: the storage client of the connection, one per task execution.

    :param wasb_conn_id: The ``wasb`` connection.
    """
    from airflow.providers.microsoft.azure.hooks.wasb import WasbHook

    execution = current_task_execution()
    key = (execution, wasb_conn_id)
    with _lock:
        if execution is not None and key in _clients:
            return _clients[key]
    client: BlobServiceClient = WasbHook(wasb_conn_id=wasb_conn_id).get_conn()
    if execution is not None:
        with _lock:
            if any(held != execution for held, _ in _clients):
                _clients.clear()  # an earlier execution's (a dag.test() process runs many)
            _clients[key] = client
    return client
