"""The REST client of the real-Airflow tests: forgetting runs between modules, and a backfill sent twice."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace
from typing import Any

import pytest
import responses

URL = "http://127.0.0.1:1"


class FakeAirflow:
    """The few REST routes ``forget_runs`` uses, over DAGs, runs and backfills held in memory."""

    def __init__(self, dags: dict[str, dict[str, Any]], deletes: bool = True) -> None:
        self.dags = dags
        self.deletes = deletes
        self.calls: list[str] = []

    def route(self, mock: responses.RequestsMock) -> None:
        api = f"{re.escape(URL)}/api/v2"
        mock.add_callback(responses.GET, re.compile(rf"{api}/dags\?.*"), self.list_dags)
        mock.add_callback(responses.PATCH, re.compile(rf"{api}/dags/[^/]+$"), self.patch_dag)
        mock.add_callback(responses.GET, re.compile(rf"{api}/dags/[^/]+/dagRuns\?.*"), self.list_runs)
        mock.add_callback(responses.PATCH, re.compile(rf"{api}/dags/[^/]+/dagRuns/[^/]+$"), self.patch_run)
        mock.add_callback(responses.DELETE, re.compile(rf"{api}/dags/[^/]+/dagRuns/[^/]+$"), self.delete_run)
        mock.add_callback(responses.GET, re.compile(rf"{api}/backfills\?.*"), self.list_backfills)
        mock.add_callback(responses.PUT, re.compile(rf"{api}/backfills/\d+/cancel$"), self.cancel)

    @staticmethod
    def _parts(request: Any) -> list[str]:
        return request.path_url.split("?")[0].split("/")[3:]

    def list_dags(self, request: Any) -> tuple[int, dict[str, str], str]:
        dags = [{"dag_id": d, "is_paused": v["paused"]} for d, v in self.dags.items()]
        return 200, {}, json.dumps({"dags": dags})

    def patch_dag(self, request: Any) -> tuple[int, dict[str, str], str]:
        dag_id = self._parts(request)[1]
        self.dags[dag_id]["paused"] = json.loads(request.body)["is_paused"]
        self.calls.append(f"pause {dag_id}")
        return 200, {}, "{}"

    def list_runs(self, request: Any) -> tuple[int, dict[str, str], str]:
        runs = [{"dag_run_id": r, "state": s} for r, s in self.dags[self._parts(request)[1]]["runs"].items()]
        return 200, {}, json.dumps({"dag_runs": runs})

    def patch_run(self, request: Any) -> tuple[int, dict[str, str], str]:
        _, dag_id, _, run_id = self._parts(request)
        self.dags[dag_id]["runs"][run_id] = json.loads(request.body)["state"]
        self.calls.append(f"mark {run_id} failed")
        return 200, {}, "{}"

    def delete_run(self, request: Any) -> tuple[int, dict[str, str], str]:
        _, dag_id, _, run_id = self._parts(request)
        runs = self.dags[dag_id]["runs"]
        if runs[run_id] == "running":  # as Airflow: a running run cannot be deleted
            return 409, {}, json.dumps({"detail": "cannot be deleted in running state"})
        if self.deletes:
            del runs[run_id]
        self.calls.append(f"delete {run_id}")
        return 204, {}, ""

    def list_backfills(self, request: Any) -> tuple[int, dict[str, str], str]:
        dag_id = request.params["dag_id"]
        backfills = [
            {"id": number, "completed_at": None if running else "2026-12-01T00:00:00Z"}
            for number, running in self.dags[dag_id].get("backfills", {}).items()
        ]
        return 200, {}, json.dumps({"backfills": backfills})

    def cancel(self, request: Any) -> tuple[int, dict[str, str], str]:
        number = int(self._parts(request)[1])
        for dag in self.dags.values():
            if number in dag.get("backfills", {}):
                dag["backfills"][number] = False
        self.calls.append(f"cancel backfill {number}")
        return 200, {}, "{}"


def client() -> Any:
    from tests.integration.airflow_support import AirflowClient

    return AirflowClient(SimpleNamespace(url=URL, home=None, password="p", log_dir="/nonexistent"))  # type: ignore[arg-type]


def test_forget_runs_pauses_every_dag_and_deletes_every_run_ending_what_still_runs_first() -> None:
    airflow = FakeAirflow(
        {
            "daily": {"paused": False, "runs": {"r1": "success", "r2": "running"}, "backfills": {7: True}},
            "data": {"paused": True, "runs": {"r3": "queued", "r4": "failed"}},
        }
    )
    with responses.RequestsMock() as mock:
        airflow.route(mock)
        client().forget_runs(timeout=0)

    assert {dag_id: (dag["paused"], dag["runs"]) for dag_id, dag in airflow.dags.items()} == {
        "daily": (True, {}),
        "data": (True, {}),
    }
    assert airflow.dags["daily"]["backfills"] == {7: False}
    assert airflow.calls.index("mark r2 failed") < airflow.calls.index("delete r2")
    assert airflow.calls.index("cancel backfill 7") < airflow.calls.index("delete r1")


def test_forget_runs_fails_when_runs_are_left() -> None:
    airflow = FakeAirflow({"daily": {"paused": True, "runs": {"r1": "success"}}}, deletes=False)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        airflow.route(mock)
        with pytest.raises(AssertionError, match="runs of daily are left after deleting them all"):
            client().forget_runs(timeout=0)
