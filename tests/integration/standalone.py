"""
A real deployment for tests: ``airflow standalone`` (scheduler, LocalExecutor, triggerer, API server, dag
processor) on its own port and Airflow home, and a REST client that does what a person does in the UI.

Used by the ``standalone`` fixture of ``tests/integration/conftest.py`` (one start per test module).
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


def _db_was_busy(answer: requests.Response) -> bool:
    """
    SQLite was held by another process (the scheduler), so the API rolled the call back: 503 "database is
    locked", or, on a loaded machine, 500 "Database error" (the same lock, reported when it times out).
    """
    return (answer.status_code == 503 and "locked" in answer.text) or (
        answer.status_code == 500 and "Database error" in answer.text
    )


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
        One REST call. A call SQLite's lock made the API roll back is retried; so is a GET that timed out (a busy
        machine). Other calls that timed out are not: a clear sent twice would clear twice.
        """
        deadline = time.monotonic() + 90
        patience = time.monotonic() + 300  # a loaded machine can stall the API server for minutes
        while True:
            try:
                answer = self.session.request(method, f"{self.url}/api/v2{path}", timeout=60, **kwargs)
            except requests.Timeout:
                if method != "GET" or time.monotonic() > patience:
                    raise
                continue
            if not (_db_was_busy(answer) and time.monotonic() < deadline):
                break
            time.sleep(2)  # SQLite: the scheduler holds the DB for a moment; the call was rolled back
        assert answer.ok, f"{method} {path}: {answer.status_code} {answer.text[:500]}"
        return answer.json() if answer.content else None

    def plan_backfill(self, body: dict[str, Any]) -> list[str]:
        """``POST /backfills/dry_run``: the logical dates (``YYYY-MM-DD``) a backfill would create runs for."""
        planned = self.api("POST", "/backfills/dry_run", json=body)["backfills"]
        return sorted(b["logical_date"][:10] for b in planned if b["logical_date"])

    def create_backfill(self, body: dict[str, Any]) -> None:
        """``POST /backfills``, retried after SQLite's 503 without leaving an empty backfill behind."""
        from tests.integration.backfill_requests import create_backfill

        create_backfill(self.session, self.url, body)

    def wait_for_backfills_to_complete(self, dag_id: str, timeout: float = 120) -> None:
        """Wait until no backfill of ``dag_id`` is running (one running backfill per DAG: the next gets 409)."""
        deadline = time.monotonic() + timeout
        while any(
            b["completed_at"] is None
            for b in self.api("GET", "/backfills", params={"dag_id": dag_id})["backfills"]
        ):
            assert time.monotonic() < deadline, f"a backfill of {dag_id} did not complete in {timeout:.0f} s"
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

    def clear_tasks(self, dag_id: str, run_id: str, task_ids: list[str]) -> None:
        """What the UI's Clear dialog does with its defaults: clear the tasks and everything downstream."""
        self.api(
            "POST",
            f"/dags/{dag_id}/clearTaskInstances",
            json={
                "dry_run": False,
                "dag_run_id": run_id,
                "task_ids": task_ids,
                "include_downstream": True,
                "include_upstream": False,
                "only_failed": False,
                "reset_dag_runs": True,
            },
        )

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        """An XCom value of one task of one run."""
        return self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}")[
            "value"
        ]

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


@contextlib.contextmanager
def running_standalone(directory: Path) -> Iterator[Standalone]:
    """
    Start ``airflow standalone`` with its home and log in ``directory``, logged in as admin; stop its whole
    process group afterwards (LocalExecutor workers outlive a plain SIGTERM to the parent).

    :param directory: An empty directory for the Airflow home and ``standalone.log``.
    """
    port = _free_port()
    home = directory / "airflow"
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
            "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE": "True",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        }
    )
    log = (directory / "standalone.log").open("wb")
    process = subprocess.Popen(
        [shutil.which("airflow", path=env["PATH"]) or "airflow", "standalone"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    running = Standalone(f"http://127.0.0.1:{port}", home, process)
    try:
        deadline = time.monotonic() + 480  # about 25 s on an idle machine; minutes when others share it
        while True:
            assert process.poll() is None, (directory / "standalone.log").read_text()[-4000:]
            try:
                if (
                    requests.get(f"{running.url}/api/v2/monitor/health", timeout=5).ok
                    and (home / "simple_auth_manager_passwords.json.generated").exists()
                ):
                    break
            except (requests.ConnectionError, requests.Timeout):  # still starting, or a busy machine
                pass
            assert time.monotonic() < deadline, "airflow standalone did not come up in 480 s"
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
