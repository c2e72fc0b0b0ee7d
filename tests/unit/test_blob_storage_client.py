"""``blob_service_client``: one storage client per connection and task execution, none kept outside a task."""

from __future__ import annotations

import json
import uuid
from types import SimpleNamespace

import pytest
from airflow.providers.microsoft.azure.hooks.wasb import WasbHook
from airflow.sdk.execution_time.context import set_current_context

from airflow_provider_amlretrain.hooks import blob_storage

#: Azurite's documented development account (a public, well-known key).
AZURITE_CONNECTION = json.dumps(
    {
        "conn_type": "wasb",
        "login": "devstoreaccount1",
        "password": "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==",
        "host": "http://127.0.0.1:10000/devstoreaccount1",
    }
)


@pytest.fixture
def connection_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Two ``wasb`` connections in the environment; every read of one by ``WasbHook`` is recorded."""
    monkeypatch.setenv("AIRFLOW_CONN_STORE_A", AZURITE_CONNECTION)
    monkeypatch.setenv("AIRFLOW_CONN_STORE_B", AZURITE_CONNECTION)
    reads: list[str] = []
    read = WasbHook.get_connection.__func__  # type: ignore[attr-defined]

    def recorded(cls: type, conn_id: str) -> object:
        reads.append(conn_id)
        return read(cls, conn_id)

    monkeypatch.setattr(WasbHook, "get_connection", classmethod(recorded))
    return reads


def _execution() -> object:
    """A task execution's context, as the task runner sets it: its task instance try has its own id."""
    return set_current_context({"ti": SimpleNamespace(id=uuid.uuid4())})  # type: ignore[typeddict-item]


def test_one_task_execution_reads_each_connection_once(connection_reads: list[str]) -> None:
    with _execution():
        first = blob_storage.blob_service_client("store_a")
        again = blob_storage.blob_service_client("store_a")
        other = blob_storage.blob_service_client("store_b")

    assert again is first
    assert other is not first
    assert connection_reads == ["store_a", "store_b"]


def test_the_next_task_execution_reads_the_connection_again(connection_reads: list[str]) -> None:
    with _execution():
        first = blob_storage.blob_service_client("store_a")
    with _execution():
        second = blob_storage.blob_service_client("store_a")

    assert second is not first
    assert connection_reads == ["store_a", "store_a"]


def test_only_the_latest_task_executions_clients_are_held(connection_reads: list[str]) -> None:
    """A ``dag.test()`` process runs many tasks: the clients of the ones before are let go, not piled up."""
    for _ in range(3):
        with _execution():
            blob_storage.blob_service_client("store_a")
            blob_storage.blob_service_client("store_b")

    assert len(blob_storage._clients) == 2


def test_outside_a_task_every_call_reads_the_connection(connection_reads: list[str]) -> None:
    """The triggerer and scripts run no task: nothing is kept, a rotated key is read by the next call."""
    assert blob_storage.current_task_execution() is None

    first = blob_storage.blob_service_client("store_a")
    second = blob_storage.blob_service_client("store_a")

    assert second is not first
    assert connection_reads == ["store_a", "store_a"]
