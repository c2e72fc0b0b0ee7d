"""
A backfill through Airflow's REST API (what the UI's backfill button calls), on a real deployment:
``airflow standalone`` (scheduler, LocalExecutor, triggerer, API server) against the session's stack.

Three days run at once with deferrable operators (waits happen in the real triggerer). Whatever
order they finish in, the endpoint must end up serving the model of the newest day: older runs
either lose the race for the deployment record and retry, or see newer data deployed and skip.
"""

from __future__ import annotations

import json
import os
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

pytestmark = pytest.mark.integration

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
        answer = self.session.request(method, f"{self.url}/api/v2{path}", timeout=30, **kwargs)
        assert answer.ok, f"{method} {path}: {answer.status_code} {answer.text[:500]}"
        return answer.json() if answer.content else None


@pytest.fixture
def standalone(stack: Any, tmp_path: Path) -> Iterator[Standalone]:
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
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    running = Standalone(f"http://127.0.0.1:{port}", home, process)
    try:
        deadline = time.monotonic() + 240
        while True:
            assert process.poll() is None, (tmp_path / "standalone.log").read_text()[-4000:]
            try:
                if requests.get(f"{running.url}/api/v2/monitor/health", timeout=5).ok and (
                    home / "simple_auth_manager_passwords.json.generated"
                ).exists():
                    break
            except requests.ConnectionError:
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
    from airflow_provider_amlretrain.deployment_record import DeploymentRecordStore

    dates = seeded_dates(seed)[-3:]
    deadline = time.monotonic() + 120
    while True:  # the dag processor has to parse the DAG first
        dags = standalone.api("GET", "/dags", params={"dag_id_pattern": DAG_ID})["dags"]
        if dags:
            break
        assert time.monotonic() < deadline, "the DAG was not parsed in 120 s"
        time.sleep(2)
    standalone.api("PATCH", f"/dags/{DAG_ID}", json={"is_paused": False})
    standalone.api(
        "POST",
        "/backfills",
        json={
            "dag_id": DAG_ID,
            "from_date": f"{dates[0]}T00:00:00Z",
            "to_date": f"{dates[-1]}T00:00:00Z",
            "max_active_runs": 3,
            "reprocess_behavior": "none",
        },
    )

    deadline = time.monotonic() + 420
    while True:
        runs = standalone.api("GET", f"/dags/{DAG_ID}/dagRuns", params={"run_type": "backfill"})["dag_runs"]
        if len(runs) == len(dates) and all(r["state"] in ("success", "failed") for r in runs):
            break
        assert time.monotonic() < deadline, dump(runs)
        time.sleep(3)

    assert {r["state"] for r in runs} == {"success"}, dump(runs)
    states = {}
    for dag_run in runs:
        tis = standalone.api("GET", f"/dags/{DAG_ID}/dagRuns/{dag_run['dag_run_id']}/taskInstances")["task_instances"]
        states[dag_run["logical_date"][:10]] = {ti["task_id"]: ti["state"] for ti in tis}
    print("backfill task states:", dump(states))
    assert all(s["retrain"] == "success" for s in states.values()), dump(states)
    promoted = sorted(day for day, s in states.items() if s["promote"] == "success")
    assert promoted, f"no run promoted a model: {dump(states)}"
    record = DeploymentRecordStore("azurite_default", "deployments").read(TARGET).record
    assert record.pending is None
    assert record.current["data_interval_start"].startswith(promoted[-1]), dump(record.current)
    deployed_in_order = [e["data_interval_end"] for e in record.history if e.get("outcome") == "replaced"]
    deployed_in_order.append(record.current["data_interval_end"])
    print("deployments in order:", deployed_in_order, "history outcomes:", [e.get("outcome") for e in record.history])
    assert deployed_in_order == sorted(deployed_in_order), "a model trained on older data replaced a newer one"
    for day, task_states in states.items():
        if task_states["evaluate"] == "success" and task_states["promote"] == "skipped":
            assert day < promoted[-1], f"{day} passed the gate but was not deployed, yet it is the newest: {dump(states)}"
