"""Integration fixtures: one Azurite + AML emulator stack, one Airflow metadata DB for ``dag.test()`` runs and
one real local Airflow (``make airflow``'s) per session."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest
import requests

from tests.conftest import REPO_ROOT

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping
    from pathlib import Path

    from tests.integration.airflow_support import AirflowClient


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """Create the Airflow metadata DB (SQLite) of this test session."""
    result = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"airflow db migrate failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")


@contextmanager
def stack_with_connections(directory: Path, config: Mapping[str, Any]) -> Iterator[Any]:
    """
    Azurite and the emulator in ``directory``, their Airflow connections in this process's environment meanwhile.

    :param directory: The stack directory.
    :param config: The emulator's settings (``job_concurrency``, ``min_job_seconds``...).
    """
    from amlretrain_devstack import running_stack

    with running_stack(directory, config) as running:
        saved = dict(os.environ)
        os.environ.update(running.connection_env())
        try:
            yield running
        finally:
            os.environ.clear()
            os.environ.update(saved)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Azurite and the emulator, started once, with Airflow connections in the environment."""
    directory = tmp_path_factory.mktemp("stack") / ".amlretrain"
    with stack_with_connections(directory, {"job_concurrency": 2, "min_job_seconds": 1.0}) as running:
        yield running


class EmulatorAdmin:
    """The emulator's admin API (fault injection, health), for tests."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def set_faults(self, faults: dict[str, Any]) -> None:
        """Replace the fault configuration."""
        answer = requests.put(f"{self.url}/_emulator/faults", json=faults, timeout=10)
        answer.raise_for_status()

    def clear_faults(self) -> None:
        """Remove every fault."""
        self.set_faults({"rules": [], "fail_jobs": []})

    def endpoint_changes(self, endpoint: str) -> list[dict[str, Any]]:
        """The trained-model changes PATCH made to classic endpoints named ``endpoint``, oldest first."""
        answer = requests.get(f"{self.url}/_emulator/endpoint-changes", timeout=10)
        answer.raise_for_status()
        return [change for change in answer.json()["changes"] if change["endpoint"] == endpoint]

    def faults(self) -> dict[str, Any]:
        """The current fault configuration (rules with their remaining ``times``)."""
        answer = requests.get(f"{self.url}/_emulator/faults", timeout=10)
        answer.raise_for_status()
        return answer.json()

    def jobs(self) -> list[dict[str, Any]]:
        """Every BES job the emulator has, oldest first (no request bodies)."""
        answer = requests.get(f"{self.url}/_emulator/jobs", timeout=10)
        answer.raise_for_status()
        return list(answer.json()["jobs"])

    def served_model(self, web_service_id: str, endpoint: str) -> dict[str, Any] | None:
        """What a classic endpoint scores with now: the BES job that trained it (``None``: the seed's model)."""
        answer = requests.get(f"{self.url}/_emulator/endpoints", timeout=10)
        answer.raise_for_status()
        for served in answer.json()["endpoints"]:
            if served["web_service_id"] == web_service_id and served["endpoint"] == endpoint:
                return served["model"]
        raise AssertionError(f"the emulator has no endpoint {endpoint!r} of web service {web_service_id}")


@pytest.fixture
def emulator(stack: Any) -> Iterator[EmulatorAdmin]:
    """Admin access to the emulator; faults are cleared after each test."""
    admin = EmulatorAdmin(stack.emulator_url)
    admin.clear_faults()
    yield admin
    admin.clear_faults()


#: Settings of the session's local Airflow on top of ``deploy/airflow.env``: a scheduler and dag processor
#: that react within seconds, and task runners patient with an API server that 2 busy cores slow down
#: (the execution API's default 5 s timeout, and the settings file's 120 s without a task heartbeat, fail
#: tasks for no reason of their own; 300 s is Airflow's default, which the per-module deployments had).
LOCAL_AIRFLOW_TEST_SETTINGS = {
    "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
    "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
    "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "60",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "300",
}


@pytest.fixture(scope="session")
def local_airflow(stack: Any) -> Iterator[AirflowClient]:
    """The local Airflow of ``make airflow`` (``airflow standalone``: API server with the UI, scheduler,
    LocalExecutor, triggerer, dag processor) on the session's stack, logged in as admin.

    One per session, started by the first test that needs it: every real-Airflow test module but the
    distributed one shares it (through ``standalone``, or directly when it does not mind earlier runs).
    """
    from amlretrain_devstack.airflow_deployment import stop_deployment
    from amlretrain_devstack.airflow_local import KIND, start_local_airflow
    from tests.integration.airflow_support import AirflowClient

    deployment = start_local_airflow(
        stack.directory,
        dag_folders=[REPO_ROOT / "dags"],
        settings_file=REPO_ROOT / "deploy/airflow.env",
        overrides=LOCAL_AIRFLOW_TEST_SETTINGS,
        timeout=480,  # about 40 s on an idle machine; minutes when others share its 2 cores
        port=None,  # the other xdist worker's local Airflow may be starting too: not both on 28080
    )
    try:
        client = AirflowClient(deployment)
        client.login()
        yield client
    finally:
        stop_deployment(stack.directory, KIND)


@pytest.fixture(scope="module")
def standalone(local_airflow: AirflowClient) -> AirflowClient:
    """The session's local Airflow for one test module, as if its metadata DB were fresh: every DAG paused
    and no run left from earlier modules (storage, deployment records and the emulator keep theirs)."""
    local_airflow.forget_runs()
    return local_airflow


@pytest.fixture(scope="session")
def seed(stack: Any) -> dict[str, Any]:
    """What the emulator's seed created (services, keys, data blobs)."""
    return stack.seed


def dump(value: Any) -> str:
    """Pretty JSON for assertion messages."""
    return json.dumps(value, indent=2, default=str)


def utc(date: str) -> datetime:
    """Midnight UTC of an ISO date."""
    return datetime.fromisoformat(date).replace(tzinfo=UTC)


def seeded_dates(seed: dict[str, Any], task: str = "binary") -> list[str]:
    """Dates of the training partitions the emulator's seed uploaded for ``task``."""
    return sorted(set(re.findall(rf"{task}/dt=(\d{{4}}-\d{{2}}-\d{{2}})/", json.dumps(seed))))


@pytest.fixture
def run(airflow_db: None, stack: Any):
    """Run a DAG with ``dag.test()`` against the session's stack (see ``devstack.dagrun.run_dag``)."""
    from amlretrain_devstack.dagrun import run_dag

    return run_dag


__all__ = ["REPO_ROOT", "EmulatorAdmin", "dump", "seeded_dates", "utc"]
