"""Support for tests against a running Airflow (``make airflow``'s local one or ``make distributed``):
a REST client that explains its timeouts, and the skip rule for missing packages.

The REST client was ``Standalone`` in test_standalone_deployment.py; every real-Airflow test module
shares it (and the one session-wide local Airflow of the ``local_airflow`` fixture).
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests

if TYPE_CHECKING:
    from collections.abc import Sequence

    from amlretrain_devstack.airflow_deployment import AirflowDeployment


def require(missing: Sequence[str], what: str) -> None:
    """Skip when something ``what`` needs is missing, saying what to install; with ``CI=true``, fail.

    :param missing: one line per missing package, with how to install it.
    :param what: what needs them (e.g. "the distributed deployment test").
    """
    if not missing:
        return
    message = f"{what} needs: " + "; ".join(missing)
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message + " (CI=true: a missing package is a failure, .ci/run installs them)")
    pytest.skip(message)


class AirflowClient:
    """The REST API of a running Airflow, logged in as admin."""

    def __init__(self, deployment: AirflowDeployment) -> None:
        self.deployment = deployment
        self.url = deployment.url
        self.home = deployment.home
        self.session = requests.Session()
        self.session.trust_env = False  # loopback only: never through a proxy

    @property
    def password(self) -> str:
        """The admin password Airflow generated."""
        password = self.deployment.password
        assert password, f"no generated admin password in {self.home}"
        return password

    def login(self) -> None:
        """Get a bearer token for admin."""
        answer = self.session.post(
            f"{self.url}/auth/token", json={"username": "admin", "password": self.password}, timeout=30
        )
        answer.raise_for_status()
        self.session.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        """Call ``/api/v2<path>``; retry while SQLite is locked; assert success; return the JSON."""
        deadline = time.monotonic() + 90
        while True:
            # A loaded 2-core machine can keep the API server busy for tens of seconds.
            answer = self.session.request(method, f"{self.url}/api/v2{path}", timeout=120, **kwargs)
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
        """``POST /backfills``, retried after SQLite's 503 without leaving an empty backfill behind."""
        from tests.integration.backfill_requests import create_backfill

        create_backfill(self.session, self.url, body)

    def wait_until_parsed(self, dag_id: str) -> None:
        """Wait until the dag processor has parsed ``dag_id``."""
        deadline = time.monotonic() + 180
        while not self.api("GET", "/dags", params={"dag_id_pattern": dag_id})["dags"]:
            assert time.monotonic() < deadline, f"{dag_id} was not parsed in 180 s"
            time.sleep(2)

    def unpause(self, dag_id: str) -> None:
        """Wait until the dag processor has parsed ``dag_id``, then unpause it."""
        self.wait_until_parsed(dag_id)
        self.api("PATCH", f"/dags/{dag_id}", json={"is_paused": False})

    def wait_for_runs(self, dag_id: str, count: int, timeout: float, **params: Any) -> list[dict[str, Any]]:
        """
        Wait until ``count`` runs of ``dag_id`` have ended; return them. On timeout, fail with what every
        run and task was doing and the end of the deployment's logs, so a CI failure explains itself.
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
        """Every run of ``dag_id`` with its task states, and the deployment logs' last warnings and errors."""
        runs = self.api("GET", f"/dags/{dag_id}/dagRuns")["dag_runs"]
        lines = [headline]
        for run in runs:
            lines.append(
                f"{run['dag_run_id']} ({run['run_type']}): {run['state']} {self.task_states(dag_id, run['dag_run_id'])}"
            )
        for log_file in sorted(Path(self.deployment.log_dir).glob("*.log")):
            log = log_file.read_text(errors="replace").splitlines()
            noteworthy = [
                line for line in log if re.search(r"\b(error|warning|exception|traceback)\b", line, re.I)
            ]
            lines.append(f"last warnings and errors of {log_file.name}:")
            lines.extend(line[:400] for line in noteworthy[-15:])
        return "\n".join(lines)

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """The task instances of one run."""
        return list(self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"])

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str]:
        """Task id to state of one run."""
        return {ti["task_id"]: ti["state"] for ti in self.task_instances(dag_id, run_id)}

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1) -> str:
        """The text of one try's log, as the UI shows it."""
        answer = self.api(
            "GET",
            f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}",
            params={"full_content": "true"},
            headers={"Accept": "application/json"},
        )
        content = answer.get("content") if isinstance(answer, dict) else answer
        if isinstance(content, list):
            return "\n".join(
                str(item.get("event", item)) if isinstance(item, dict) else str(item) for item in content
            )
        return str(content)
