"""
A real deployment (``airflow standalone``: scheduler, LocalExecutor, triggerer, API server) against the
session's stack: a backfill through the REST API (what the UI's backfill button calls), and data-aware
retraining through an asset watcher in the real triggerer.

In the backfill, three days run at once with deferrable operators (waits happen in the real triggerer). Whatever
order they finish in, the endpoint must end up serving the model of the newest day: older runs
either lose the race for the deployment record and retry, or see newer data deployed and skip.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests

from tests.integration.conftest import dump, seeded_dates

if TYPE_CHECKING:
    from collections.abc import Iterator

# Starting the deployment counts against the first test; the waits below fail with a diagnosis before this.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

DAG_ID = "amlretrain_retrain_and_promote"
TARGET = "binary-classic-retrained"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Standalone:
    """A running ``airflow standalone`` and a REST client for it."""

    def __init__(self, url: str, home: Path, process: subprocess.Popen[bytes]) -> None:
        self.url = url
        self.home = home
        self.process = process
        self.session = requests.Session()

    def login(self) -> None:
        passwords = json.loads((self.home / "simple_auth_manager_passwords.json.generated").read_text())
        answer = requests.post(
            f"{self.url}/auth/token", json={"username": "admin", "password": passwords["admin"]}, timeout=30
        )
        answer.raise_for_status()
        self.session.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        deadline = time.monotonic() + 90
        while True:
            answer = self.session.request(method, f"{self.url}/api/v2{path}", timeout=30, **kwargs)
            if not (answer.status_code == 503 and "locked" in answer.text and time.monotonic() < deadline):
                break
            time.sleep(2)  # SQLite: the scheduler holds the DB for a moment; the call was rolled back
        assert answer.ok, f"{method} {path}: {answer.status_code} {answer.text[:500]}"
        return answer.json() if answer.content else None

    def plan_backfill(self, body: dict[str, Any]) -> list[str]:
        """``POST /backfills/dry_run``: the logical dates (``YYYY-MM-DD``) a backfill would create runs for."""
        planned = self.api("POST", "/backfills/dry_run", json=body)["backfills"]
        return sorted(b["logical_date"][:10] for b in planned if b["logical_date"])

    def create_backfill(self, body: dict[str, Any]) -> None:
        """
        ``POST /backfills``. On SQLite, Airflow answers 503 "Database is locked" when the scheduler
        holds the DB at that moment; the request is rolled back, so it is retried (a 409 means an
        earlier try got through).
        """
        deadline = time.monotonic() + 90
        while True:
            answer = self.session.post(f"{self.url}/api/v2/backfills", json=body, timeout=30)
            if answer.ok or answer.status_code == 409:
                return
            assert answer.status_code == 503 and "locked" in answer.text, (
                f"{answer.status_code} {answer.text[:500]}"
            )
            assert time.monotonic() < deadline, f"the metadata DB stayed locked for 90 s: {answer.text[:300]}"
            time.sleep(2)

    def wait_until_parsed(self, dag_id: str) -> None:
        """Wait until the dag processor has parsed ``dag_id``."""
        deadline = time.monotonic() + 120
        while not self.api("GET", "/dags", params={"dag_id_pattern": dag_id})["dags"]:
            assert time.monotonic() < deadline, f"{dag_id} was not parsed in 120 s"
            time.sleep(2)

    def unpause(self, dag_id: str) -> None:
        """Wait until the dag processor has parsed ``dag_id``, then unpause it."""
        self.wait_until_parsed(dag_id)
        self.api("PATCH", f"/dags/{dag_id}", json={"is_paused": False})

    def wait_for_runs(self, dag_id: str, count: int, timeout: float, **params: Any) -> list[dict[str, Any]]:
        """
        Wait until ``count`` runs of ``dag_id`` have ended; return them. On timeout, fail with what every
        run and task was doing and the end of the deployment's log, so a CI failure explains itself.
        """
        deadline = time.monotonic() + timeout
        while True:
            runs = self.api("GET", f"/dags/{dag_id}/dagRuns", params=params)["dag_runs"]
            if len(runs) >= count and all(r["state"] in ("success", "failed") for r in runs):
                return runs
            if time.monotonic() > deadline:
                pytest.fail(
                    self.diagnosis(dag_id, f"{count} run(s) of {dag_id} did not end in {timeout:.0f} s")
                )
            time.sleep(3)

    def diagnosis(self, dag_id: str, headline: str) -> str:
        """Every run of ``dag_id`` with its task states, and the deployment log's last warnings and errors."""
        runs = self.api("GET", f"/dags/{dag_id}/dagRuns")["dag_runs"]
        lines = [headline]
        for run in runs:
            lines.append(
                f"{run['dag_run_id']} ({run['run_type']}): {run['state']} {self.task_states(dag_id, run['dag_run_id'])}"
            )
        log = (self.home.parent / "standalone.log").read_text(errors="replace").splitlines()
        noteworthy = [
            line for line in log if re.search(r"\b(error|warning|exception|traceback)\b", line, re.I)
        ]
        lines.append("last warnings and errors of airflow standalone:")
        lines.extend(line[:400] for line in noteworthy[-40:])
        return "\n".join(lines)

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str]:
        """Task id to state of one run."""
        tis = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]
        return {ti["task_id"]: ti["state"] for ti in tis}


@pytest.fixture(scope="module")
def standalone(stack: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Standalone]:
    tmp_path = tmp_path_factory.mktemp("standalone")
    port = _free_port()
    home = tmp_path / "airflow"
    home.mkdir()
    env = dict(os.environ)
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE": "True",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        }
    )
    log = (tmp_path / "standalone.log").open("wb")
    process = subprocess.Popen(
        [shutil.which("airflow", path=env["PATH"]) or "airflow", "standalone"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    running = Standalone(f"http://127.0.0.1:{port}", home, process)
    try:
        deadline = time.monotonic() + 240
        while True:
            assert process.poll() is None, (tmp_path / "standalone.log").read_text()[-4000:]
            try:
                if (
                    requests.get(f"{running.url}/api/v2/monitor/health", timeout=5).ok
                    and (home / "simple_auth_manager_passwords.json.generated").exists()
                ):
                    break
            except (requests.ConnectionError, requests.Timeout):  # still starting, or a busy machine
                pass
            assert time.monotonic() < deadline, "airflow standalone did not come up in 240 s"
            time.sleep(2)
        running.login()
        yield running
    finally:
        for sig, grace in ((signal.SIGTERM, 20), (signal.SIGKILL, 5)):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                break
            try:
                process.wait(timeout=grace)
                break
            except subprocess.TimeoutExpired:
                continue
        try:  # LocalExecutor workers can outlive the group leader
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        log.close()


def test_backfill_from_the_api_ends_on_the_newest_model(standalone: Standalone, seed: dict[str, Any]) -> None:
    from airflow_provider_amlretrain.promotion.record import DeploymentRecordStore

    dates = seeded_dates(seed)[-3:]
    backfill = {
        "dag_id": DAG_ID,
        "from_date": f"{dates[0]}T00:00:00Z",
        "to_date": f"{dates[-1]}T00:00:00Z",
        "max_active_runs": 3,
        "reprocess_behavior": "none",
    }
    # Backfill first, unpause second: unpausing a catchup=False DAG makes the scheduler create the run of the
    # latest interval (today, the newest seeded day), and a backfill with reprocess "none" would then leave
    # that day out. Runs of a paused DAG wait, so all three days still start together once it is unpaused.
    standalone.wait_until_parsed(DAG_ID)
    assert standalone.plan_backfill(backfill) == dates
    standalone.create_backfill(backfill)
    standalone.unpause(DAG_ID)

    runs = standalone.wait_for_runs(DAG_ID, len(dates), 360, run_type="backfill")
    assert {r["state"] for r in runs} == {"success"}, dump(runs)
    states = {r["logical_date"][:10]: standalone.task_states(DAG_ID, r["dag_run_id"]) for r in runs}
    print("backfill task states:", dump(states))
    assert all(s["retrain"] == "success" for s in states.values()), dump(states)
    promoted = sorted(day for day, s in states.items() if s["promote"] == "success")
    assert promoted, f"no run promoted a model: {dump(states)}"
    record = DeploymentRecordStore("azurite_default", "deployments").read(TARGET).record
    assert record.pending is None
    assert record.current["data_interval_start"].startswith(promoted[-1]), dump(record.current)
    deployed_in_order = [e["data_interval_end"] for e in record.history if e.get("outcome") == "replaced"]
    deployed_in_order.append(record.current["data_interval_end"])
    print(
        "deployments in order:",
        deployed_in_order,
        "history outcomes:",
        [e.get("outcome") for e in record.history],
    )
    assert deployed_in_order == sorted(deployed_in_order), (
        "a model trained on older data replaced a newer one"
    )
    for day, task_states in states.items():
        if task_states["evaluate"] == "success" and task_states["promote"] == "skipped":
            assert day < promoted[-1], (
                f"{day} passed the gate but was not deployed, yet it is the newest: {dump(states)}"
            )


def test_new_blob_triggers_a_retraining_run(standalone: Standalone, stack: Any, seed: dict[str, Any]) -> None:
    from airflow.providers.microsoft.azure.hooks.wasb import WasbHook

    from airflow_provider_amlretrain.promotion.record import DeploymentRecordStore
    from airflow_provider_amlretrain.triggers.blob_arrival import BASELINE, WasbBlobArrivalTrigger

    dag_id = "amlretrain_on_new_data"
    watch = WasbBlobArrivalTrigger(
        wasb_conn_id="azurite_default", container="training-data", prefix="binary/", suffix="/train.csv"
    )
    wasb = WasbHook(wasb_conn_id="azurite_default")
    standalone.unpause(dag_id)
    deadline = time.monotonic() + 180
    while not wasb.check_for_blob("training-data", f"{watch.marker_root}/{BASELINE}"):
        assert time.monotonic() < deadline, "the asset watcher did not make its first scan in 180 s"
        time.sleep(2)
    assert standalone.api("GET", f"/dags/{dag_id}/dagRuns")["dag_runs"] == [], (
        "existing blobs must not start runs"
    )

    landed = "binary/dt=2031-01-01/train.csv"
    existing = seed["services"][0]["blobs"][-1]["blob"]
    wasb.load_string(wasb.read_file("training-data", existing), "training-data", landed, overwrite=True)

    runs = standalone.wait_for_runs(dag_id, 1, 240)
    assert [r["state"] for r in runs] == ["success"], dump(runs)
    states = standalone.task_states(dag_id, runs[0]["dag_run_id"])
    assert states == {
        "landed_blob": "success",
        "retrain": "success",
        "evaluate": "success",
        "promote": "success",
    }, dump(states)
    xcom = standalone.api(
        "GET",
        f"/dags/{dag_id}/dagRuns/{runs[0]['dag_run_id']}/taskInstances/landed_blob/xcomEntries/return_value",
    )
    assert landed in str(xcom["value"])
    current = (
        DeploymentRecordStore("azurite_default", "deployments")
        .read("binary-classic-on-new-data")
        .record.current
    )
    assert current is not None and current["run_id"] == runs[0]["dag_run_id"]
