"""
A real ``airflow standalone`` (scheduler, LocalExecutor, triggerer, dag processor, API server) for the
integration tests that drive Airflow as a person does, through its REST API; one per test module.
"""

from __future__ import annotations

import contextlib
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

if TYPE_CHECKING:
    from collections.abc import Iterator


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
        """
        One REST call; a 503 "database is locked" (SQLite) is retried, and so is a timed-out GET or PATCH
        (idempotent) on a machine too busy to answer within 30 s; all within 180 s.
        """
        deadline = time.monotonic() + 180
        while True:
            try:
                answer = self.session.request(method, f"{self.url}/api/v2{path}", timeout=30, **kwargs)
            except requests.Timeout:
                if method not in ("GET", "PATCH") or time.monotonic() > deadline:
                    raise
                continue
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

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        """``POST /dags/{dag_id}/dagRuns`` as the Trigger dialog does (logical date now); return the run id."""
        from datetime import UTC, datetime

        body = {"logical_date": datetime.now(UTC).isoformat(), "conf": conf or {}}
        return str(self.api("POST", f"/dags/{dag_id}/dagRuns", json=body)["dag_run_id"])

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float) -> dict[str, Any]:
        """Wait until the run ``run_id`` has ended; return it (or fail with a diagnosis)."""
        deadline = time.monotonic() + timeout
        while True:
            run = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")
            if run["state"] in ("success", "failed"):
                return run
            if time.monotonic() > deadline:
                pytest.fail(
                    self.diagnosis(dag_id, f"run {run_id} of {dag_id} did not end in {timeout:.0f} s")
                )
            time.sleep(3)

    def task_instance(self, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
        """One task instance of a run (state, try_number, ...)."""
        return dict(self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}"))

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int) -> str:
        """The text of one try's log: each line's event, and the type and message of a logged exception."""
        answer = self.api(
            "GET",
            f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}",
            params={"full_content": "true"},
        )
        content = answer.get("content")
        if not isinstance(content, list):
            return str(content)
        lines = []
        for line in content:
            if not isinstance(line, dict):
                lines.append(str(line))
                continue
            lines.append(str(line.get("event", "")))
            lines.extend(f"{e.get('exc_type')}: {e.get('exc_value')}" for e in line.get("error_detail") or [])
        return "\n".join(lines)

    def extra_links(self, dag_id: str, run_id: str, task_id: str) -> dict[str, str | None]:
        """The task's extra links, name to URL, as the UI shows them."""
        answer = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/links")
        return dict(answer.get("extra_links", answer))

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


@contextlib.contextmanager
def running_standalone(tmp_path: Path) -> Iterator[Standalone]:
    """
    Start ``airflow standalone`` in ``tmp_path`` (its own AIRFLOW_HOME, SQLite DB and free API port) with the
    environment of the test session (the stack's connections), wait until it answers, log in, and stop the
    whole process group afterwards (LocalExecutor workers outlive a plain SIGTERM to the leader).

    :param tmp_path: A fresh folder for the deployment and its ``standalone.log``.
    """
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
            # Log servers on free ports: the default 8793/8794 collide with any other Airflow on this host.
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(_free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(_free_port()),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            # The task runner's calls to the execution API time out after 5 s by default, which a busy
            # 2-core machine (several deployments at once) exceeds: the task then fails for no reason of its own.
            "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "60",
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
        deadline = time.monotonic() + 420  # a busy 2-core machine: several deployments may start at once
        while True:
            assert process.poll() is None, (tmp_path / "standalone.log").read_text()[-4000:]
            try:
                if (
                    requests.get(f"{running.url}/api/v2/monitor/health", timeout=5).ok
                    and (home / "simple_auth_manager_passwords.json.generated").exists()
                ):
                    break
            except (requests.ConnectionError, requests.Timeout):  # not up yet, or too busy to answer in 5 s
                pass
            assert time.monotonic() < deadline, "airflow standalone did not come up in 420 s"
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
