"""
``end_from_trigger`` in a real ``airflow standalone`` (the session's local Airflow, deferrable waits on): the
many-endpoints DAG's ``retrain`` tasks end in the triggerer when their BES jobs finish. Each ``retrain`` runs
on a worker once (no resumption), its result is the task's XCom as a dict (what ``evaluate`` reads), and
the downstream tasks of every endpoint run on it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from tests.integration.conftest import dump, seeded_dates

if TYPE_CHECKING:
    from tests.integration.airflow_support import AirflowClient

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]
WAIT = 480

DAG_ID = "amlretrain_many_endpoints"
ENDPOINTS = 3
#: Logged once each time a worker starts a task process (a try, or a resumption after a deferral).
WORKER_START = "Worker startup parse complete"


def test_finished_jobs_end_their_retrain_tasks_in_the_triggerer(
    standalone: AirflowClient, seed: dict[str, Any]
) -> None:
    day = seeded_dates(seed)[-1]
    standalone.unpause(DAG_ID)
    # Retrain and gate only: the endpoints (and their deployment records) stay as the other tests left them.
    run_id = str(
        standalone.api(
            "POST",
            f"/dags/{DAG_ID}/dagRuns",
            json={"logical_date": f"{day}T00:00:00Z", "conf": {"skip_promotion": True}},
        )["dag_run_id"]
    )
    standalone.wait_for_run(DAG_ID, run_id, WAIT, expect="success")

    base = f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/retrain_and_promote"
    job_ids = set()
    for index in range(ENDPOINTS):
        ti = standalone.api("GET", f"{base}.retrain/{index}")
        assert (ti["state"], ti["try_number"]) == ("success", 1), dump(ti)
        log = standalone.api(
            "GET",
            f"{base}.retrain/logs/1",
            params={"map_index": index, "full_content": "true"},
            headers={"Accept": "application/json"},
        )
        text = str(log.get("content") if isinstance(log, dict) else log)
        # It deferred, and its worker ran once: the trigger ended it, with the job's outputs in its log.
        assert text.count("Pausing task as DEFERRED") == 1, text[-3000:]
        assert text.count(WORKER_START) == 1, f"retrain[{index}] resumed on a worker: {text[-3000:]}"

        result = standalone.api(
            "GET", f"{base}.retrain/xcomEntries/return_value", params={"map_index": index}
        )["value"]
        # A dict, as a worker would have stored it (not the JSON text TaskSuccessEvent(xcoms=...) stores).
        assert isinstance(result, dict), dump(result)
        assert result["status"] == "Finished" and result["duration_seconds"] > 0, dump(result)
        assert set(result["outputs"]) == {"output1", "output2"}, dump(result)
        assert "sig=" not in str(result), "no SAS in the task's result"
        job_ids.add(result["job_id"])

        evaluate = standalone.api("GET", f"{base}.evaluate/{index}")
        assert evaluate["state"] == "success", dump(evaluate)
    assert len(job_ids) == ENDPOINTS, "one BES job per endpoint"
