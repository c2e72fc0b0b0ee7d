"""
Tests against a real Airflow (``make airflow``'s local one or ``make distributed``): a REST client that
does what a person does in the UI and explains its timeouts, and the skip rule for missing packages.

Every real-Airflow test module uses :class:`AirflowClient`: the session's one local Airflow (fixtures
``local_airflow`` and ``standalone`` in ``tests/integration/conftest.py``, started as ``make airflow``
starts it) and the distributed deployment of ``test_distributed_deployment.py``.
"""

from __future__ import annotations

import os
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests

if TYPE_CHECKING:
    from collections.abc import Sequence

    from amlretrain_devstack.airflow_deployment import AirflowDeployment

#: Run states in which a run no longer changes (and may be deleted).
ENDED = ("success", "failed")
#: How long one REST call may take; a loaded 2-core machine can stall the API server for tens of seconds.
CALL_TIMEOUT = 60
#: How long a call that timed out is retried (when that is safe), and one SQLite's lock rolled back.
TIMEOUT_PATIENCE = 300
LOCK_PATIENCE = 90


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


def db_was_busy(answer: requests.Response) -> bool:
    """
    SQLite was held by another process (the scheduler), so the API rolled the call back: 503 "database is
    locked", or, on a loaded machine, 500 "Database error" (the same lock, reported when it times out).

    :param answer: the API's answer.
    """
    return (answer.status_code == 503 and "locked" in answer.text.lower()) or (
        answer.status_code == 500 and "Database error" in answer.text
    )


class AirflowClient:
    """The REST API of a running Airflow deployment, logged in as admin.

    :param deployment: the running deployment (its URL, home and log folder).
    """

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

    def api(self, method: str, path: str, *, repeatable: bool | None = None, **kwargs: Any) -> Any:
        """
        One call of ``/api/v2<path>``; assert success; return the JSON.

        A call SQLite's lock made the API roll back is sent again. So is a call that timed out, if sending it
        twice does no harm (``repeatable``; by default only a GET): a clear sent twice would clear twice.

        :param method: the HTTP method.
        :param path: the path under ``/api/v2``.
        :param repeatable: whether a timed-out call may be sent again (default: for a GET only).
        :param kwargs: what ``requests`` takes (``json``, ``params``, ``headers``).
        """
        repeatable = method == "GET" if repeatable is None else repeatable
        locked_until = time.monotonic() + LOCK_PATIENCE
        patient_until = time.monotonic() + TIMEOUT_PATIENCE
        while True:
            try:
                answer = self.session.request(
                    method, f"{self.url}/api/v2{path}", timeout=CALL_TIMEOUT, **kwargs
                )
            except requests.Timeout:
                if not repeatable or time.monotonic() > patient_until:
                    raise
                continue
            if not (db_was_busy(answer) and time.monotonic() < locked_until):
                break
            time.sleep(2)  # SQLite: the scheduler holds the DB for a moment; the call was rolled back
        assert answer.ok, f"{method} {path}: {answer.status_code} {answer.text[:500]}"
        return answer.json() if answer.content else None

    # -- DAGs ---------------------------------------------------------------------------------------

    def wait_until_parsed(self, dag_id: str, timeout: float = 180) -> None:
        """Wait until the dag processor has parsed ``dag_id``.

        :param dag_id: the DAG.
        :param timeout: seconds.
        """
        deadline = time.monotonic() + timeout
        while not self.api("GET", "/dags", params={"dag_id_pattern": dag_id})["dags"]:
            assert time.monotonic() < deadline, f"{dag_id} was not parsed in {timeout:.0f} s"
            time.sleep(2)

    def unpause(self, dag_id: str) -> None:
        """Wait until the dag processor has parsed ``dag_id``, then unpause it.

        :param dag_id: the DAG.
        """
        self.wait_until_parsed(dag_id)
        self.api("PATCH", f"/dags/{dag_id}", json={"is_paused": False}, repeatable=True)

    def pause(self, dag_id: str) -> None:
        """Pause ``dag_id``.

        :param dag_id: the DAG.
        """
        self.api("PATCH", f"/dags/{dag_id}", json={"is_paused": True}, repeatable=True)

    def forget_runs(self, timeout: float = 240) -> None:
        """
        Pause every DAG and delete all their runs (with their task instances, XComs and task state), so the
        next tests see the DAGs as on a fresh metadata DB. Storage and the emulator keep what they have.

        Runs and backfills of unpaused DAGs still going get ``timeout`` seconds to end (once paused, a
        running run would never end); then running runs are marked failed and backfills cancelled.

        :param timeout: seconds for runs and backfills still going to end.
        """
        dags = self.api("GET", "/dags", params={"limit": 1000})["dags"]
        deadline = time.monotonic() + timeout
        for dag_id in [dag["dag_id"] for dag in dags if not dag["is_paused"]]:
            while self._going(dag_id) and time.monotonic() < deadline:
                time.sleep(3)
        for dag_id in [dag["dag_id"] for dag in dags]:
            self.pause(dag_id)
            for backfill in self._running_backfills(dag_id):
                self.api("PUT", f"/backfills/{backfill['id']}/cancel", repeatable=True)
            for run in self.runs(dag_id):
                if run["state"] == "running":
                    print(f"forget_runs: {dag_id} {run['dag_run_id']} is still running: marked failed")
                    self.api(
                        "PATCH",
                        f"/dags/{dag_id}/dagRuns/{run['dag_run_id']}",
                        json={"state": "failed"},
                        repeatable=True,
                    )
                self._delete_run(dag_id, run["dag_run_id"])
            assert self.runs(dag_id) == [], f"runs of {dag_id} are left after deleting them all"

    def _going(self, dag_id: str) -> bool:
        """Whether ``dag_id`` has a run not yet ended or a backfill not yet completed."""
        return bool(self._running_backfills(dag_id)) or any(
            run["state"] not in ENDED for run in self.runs(dag_id)
        )

    def _running_backfills(self, dag_id: str) -> list[dict[str, Any]]:
        backfills = self.api("GET", "/backfills", params={"dag_id": dag_id})["backfills"]
        return [b for b in backfills if b["completed_at"] is None]

    def _delete_run(self, dag_id: str, run_id: str) -> None:
        """Delete one run; a 404 means an earlier try got through (a timed-out DELETE is sent again)."""
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}"
        deadline = time.monotonic() + LOCK_PATIENCE
        while True:
            try:
                answer = self.session.delete(f"{self.url}{path}", timeout=CALL_TIMEOUT)
            except requests.Timeout:
                assert time.monotonic() < deadline, f"DELETE {path} timed out for {LOCK_PATIENCE} s"
                continue
            if answer.ok or answer.status_code == 404:
                return
            assert db_was_busy(answer) and time.monotonic() < deadline, (
                f"DELETE {path}: {answer.status_code} {answer.text[:500]}"
            )
            time.sleep(2)

    # -- runs ---------------------------------------------------------------------------------------

    def runs(self, dag_id: str, **params: Any) -> list[dict[str, Any]]:
        """The runs of ``dag_id`` (``params``: the API's filters, e.g. ``run_type``).

        :param dag_id: the DAG.
        :param params: query parameters of ``GET /dags/{dag_id}/dagRuns``.
        """
        return list(self.api("GET", f"/dags/{dag_id}/dagRuns", params={"limit": 1000, **params})["dag_runs"])

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        """``POST /dags/{dag_id}/dagRuns`` as the Trigger dialog does (logical date now); return the run id.

        :param dag_id: the DAG.
        :param conf: the run's conf.
        """
        body = {"logical_date": datetime.now(UTC).isoformat(), "conf": conf or {}}
        return str(self.api("POST", f"/dags/{dag_id}/dagRuns", json=body)["dag_run_id"])

    def wait_for_run(
        self, dag_id: str, run_id: str, timeout: float, *, expect: str | None = None
    ) -> dict[str, Any]:
        """Wait until the run ``run_id`` has ended; return it (or fail with a diagnosis).

        :param dag_id: the DAG.
        :param run_id: the run.
        :param timeout: seconds.
        :param expect: the state the run must end in; otherwise fail, showing the failed tasks' logs.
        """
        deadline = time.monotonic() + timeout
        while True:
            run = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")
            if run["state"] in ENDED:
                if expect is not None and run["state"] != expect:
                    pytest.fail(
                        self.failed_run_diagnosis(dag_id, run_id, f"run {run_id} ended {run['state']}")
                    )
                return dict(run)
            if time.monotonic() > deadline:
                pytest.fail(
                    self.diagnosis(dag_id, f"run {run_id} of {dag_id} did not end in {timeout:.0f} s")
                )
            time.sleep(3)

    def wait_for_runs(self, dag_id: str, count: int, timeout: float, **params: Any) -> list[dict[str, Any]]:
        """
        Wait until ``count`` runs of ``dag_id`` have ended and none is going; return them. On timeout, fail
        with what every run and task was doing and the end of the deployment's logs, so a CI failure
        explains itself.

        :param dag_id: the DAG.
        :param count: how many runs must have ended.
        :param timeout: seconds.
        :param params: the API's filters (e.g. ``run_type="backfill"``).
        """
        deadline = time.monotonic() + timeout
        while True:
            runs = self.runs(dag_id, **params)
            if len(runs) >= count and all(r["state"] in ENDED for r in runs):
                return runs
            if time.monotonic() > deadline:
                pytest.fail(
                    self.diagnosis(dag_id, f"{count} run(s) of {dag_id} did not end in {timeout:.0f} s")
                )
            time.sleep(3)

    # -- backfills ----------------------------------------------------------------------------------

    def plan_backfill(self, body: dict[str, Any]) -> list[str]:
        """``POST /backfills/dry_run``: the logical dates (``YYYY-MM-DD``) a backfill would create runs for.

        :param body: the backfill, as the UI's form sends it.
        """
        planned = self.api("POST", "/backfills/dry_run", json=body)["backfills"]
        return sorted(b["logical_date"][:10] for b in planned if b["logical_date"])

    def create_backfill(self, body: dict[str, Any]) -> None:
        """
        ``POST /backfills``, sent again after SQLite's 503 without leaving an empty backfill behind (see
        :mod:`tests.integration.backfill_requests`); a 409 is a failure. Airflow runs one backfill per DAG at
        a time, so an earlier backfill of the DAG (say, a fixture's) is waited for first.

        :param body: the backfill, as the UI's form sends it.
        """
        from tests.integration.backfill_requests import create_backfill

        self.wait_for_backfills_to_complete(str(body["dag_id"]), timeout=300)
        create_backfill(self.session, self.url, body)

    def wait_for_backfills_to_complete(self, dag_id: str, timeout: float = 120) -> None:
        """Wait until no backfill of ``dag_id`` is running (one running backfill per DAG: the next gets 409).

        :param dag_id: the DAG.
        :param timeout: seconds.
        """
        deadline = time.monotonic() + timeout
        while self._running_backfills(dag_id):
            assert time.monotonic() < deadline, f"a backfill of {dag_id} did not complete in {timeout:.0f} s"
            time.sleep(2)

    def wait_for_asset_state(self, asset_name: str, key: str, timeout: float = 180) -> None:
        """Wait until the asset's state store holds ``key`` (e.g. an asset watcher's first scan).

        :param asset_name: the asset's name.
        :param key: the state-store key.
        :param timeout: seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            assets = self.api("GET", "/assets", params={"name_pattern": asset_name})["assets"]
            stored = [
                entry["key"]
                for asset in assets
                for entry in self.api("GET", f"/assets/{asset['id']}/state-store")["asset_state_store"]
            ]
            if key in stored:
                return
            assert time.monotonic() < deadline, (
                f"{asset_name}'s state store has no {key!r} after {timeout:.0f} s: {stored}"
            )
            time.sleep(2)

    # -- tasks --------------------------------------------------------------------------------------

    def wait_for_executor_release(
        self, dag_id: str, run_id: str, task_id: str, try_number: int, timeout: float
    ) -> None:
        """Wait until the scheduler has seen the executor finish the worker process of a parked task.

        A task that pauses (``awaiting_input``, or deferred) does so *before* its worker process exits.
        Airflow 3.3's scheduler fails a task whose old worker process it sees exit while the task is
        already ``queued`` again ("state mismatch"), so a resume that comes within that window (an answer
        given within seconds) loses the task. A person is slower; a test waits for the scheduler's
        "Received executor event" line of that try in the deployment's logs.

        :param dag_id: the DAG.
        :param run_id: the run.
        :param task_id: the parked task.
        :param try_number: its try.
        :param timeout: seconds.
        """
        seen = re.compile(
            r"Received executor event with state \w+ for task instance TaskInstanceKey\("
            + re.escape(
                f"dag_id='{dag_id}', task_id='{task_id}', run_id='{run_id}', try_number={try_number},"
            )
        )
        deadline = time.monotonic() + timeout
        while not any(
            seen.search(log.read_text(errors="replace"))
            for log in Path(self.deployment.log_dir).glob("*.log")
        ):
            if time.monotonic() > deadline:
                pytest.fail(
                    self.diagnosis(
                        dag_id, f"the scheduler never saw the worker of {task_id} (try {try_number}) exit"
                    )
                )
            time.sleep(1)

    def clear_tasks(self, dag_id: str, run_id: str, task_ids: list[str]) -> None:
        """What the UI's Clear dialog does with its defaults: clear the tasks and everything downstream.

        :param dag_id: the DAG.
        :param run_id: the run.
        :param task_ids: the tasks to clear.
        """
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

    def task_instance(self, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
        """One task instance of a run (state, try_number, hostname...).

        :param dag_id: the DAG.
        :param run_id: the run.
        :param task_id: the task.
        """
        return dict(self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}"))

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """The task instances of one run.

        :param dag_id: the DAG.
        :param run_id: the run.
        """
        return list(self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"])

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str]:
        """Task id to state of one run.

        :param dag_id: the DAG.
        :param run_id: the run.
        """
        return {ti["task_id"]: ti["state"] for ti in self.task_instances(dag_id, run_id)}

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        """An XCom value of one task of one run.

        :param dag_id: the DAG.
        :param run_id: the run.
        :param task_id: the task.
        :param key: the XCom key.
        """
        return self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}")[
            "value"
        ]

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1) -> str:
        """The text of one try's log as the UI shows it: each line's event, and a logged exception's type
        and message.

        :param dag_id: the DAG.
        :param run_id: the run.
        :param task_id: the task.
        :param try_number: the try.
        """
        answer = self.api(
            "GET",
            f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}",
            params={"full_content": "true"},
            headers={"Accept": "application/json"},
        )
        content = answer.get("content") if isinstance(answer, dict) else answer
        if not isinstance(content, list):
            return str(content)
        lines = []
        for line in content:
            if not isinstance(line, dict):
                lines.append(str(line))
                continue
            lines.append(str(line.get("event", line)))
            lines.extend(f"{e.get('exc_type')}: {e.get('exc_value')}" for e in line.get("error_detail") or [])
        return "\n".join(lines)

    def extra_links(self, dag_id: str, run_id: str, task_id: str) -> dict[str, str | None]:
        """The task's extra links, name to URL, as the UI shows them.

        :param dag_id: the DAG.
        :param run_id: the run.
        :param task_id: the task.
        """
        answer = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/links")
        return dict(answer.get("extra_links", answer))

    # -- when something goes wrong ------------------------------------------------------------------

    def failed_run_diagnosis(self, dag_id: str, run_id: str, headline: str) -> str:
        """:meth:`diagnosis`, then the last try's log of each failed task of ``run_id``.

        :param dag_id: the DAG.
        :param run_id: the run.
        :param headline: what went wrong.
        """
        lines = [self.diagnosis(dag_id, headline)]
        for ti in self.task_instances(dag_id, run_id):
            if ti["state"] in ("failed", "upstream_failed"):
                lines.append(f"log of {ti['task_id']}, try {ti['try_number']} ({ti['state']}):")
                try:
                    lines.append(
                        self.task_log(dag_id, run_id, ti["task_id"], max(1, ti["try_number"]))[-6000:]
                    )
                except Exception as error:  # the diagnosis must not hide the failure it explains
                    lines.append(f"(no log: {error})")
        return "\n".join(lines)

    def diagnosis(self, dag_id: str, headline: str) -> str:
        """Every run of ``dag_id`` with its task states, and the deployment logs' last warnings and errors.

        :param dag_id: the DAG.
        :param headline: what went wrong.
        """
        lines = [headline]
        for run in self.runs(dag_id):
            lines.append(
                f"{run['dag_run_id']} ({run['run_type']}): {run['state']} {self.task_states(dag_id, run['dag_run_id'])}"
            )
        for log_file in sorted(Path(self.deployment.log_dir).glob("*.log")):
            log = log_file.read_text(errors="replace").splitlines()
            noteworthy = [
                line for line in log if re.search(r"\b(error|warning|exception|traceback)\b", line, re.I)
            ]
            lines.append(f"last warnings and errors of {log_file.name}:")
            lines.extend(line[:400] for line in noteworthy[-25:])
        return "\n".join(lines)
