"""
Approval before promotion in a real ``airflow standalone`` (the session's local Airflow): a clear pass
promotes without asking, a borderline model waits for a person, who answers through the REST API
(``.../hitlDetails``) as the UI does. Approve: the endpoint serves the new model. Reject: the endpoint keeps
its model and the run is green.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import pytest

from tests.integration.conftest import dump, seeded_dates
from tests.integration.test_promotion_flow import endpoint_model

if TYPE_CHECKING:
    from tests.integration.airflow_support import AirflowClient

# Three runs one after the other, on a deployment that shares 2 cores with everything else.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(1200)]
WAIT = 420

DAG_ID = "amlretrain_approve_borderline"
TARGET = "binary-classic-approved"
ENDPOINT = "approved"
# Any challenger is then within the margin of production (AUC lies in [0, 1]), and none is worse than allowed.
ALWAYS_BORDERLINE = {"tolerance": 1.0, "review_margin": 1.0}


def _trigger(standalone: AirflowClient, day: str, conf: dict[str, Any]) -> str:
    run = standalone.api(
        "POST", f"/dags/{DAG_ID}/dagRuns", json={"logical_date": f"{day}T00:00:00Z", "conf": conf}
    )
    return str(run["dag_run_id"])


def _wait_for_task_state(standalone: AirflowClient, run_id: str, task_id: str, state: str) -> None:
    deadline = time.monotonic() + WAIT
    while True:
        states = standalone.task_states(DAG_ID, run_id)  # a GET waits out a busy API server
        if states.get(task_id) == state:
            # Answer as a person would: after the parked task's worker process is gone.
            try_number = standalone.task_instance(DAG_ID, run_id, task_id)["try_number"]
            standalone.wait_for_executor_release(DAG_ID, run_id, task_id, try_number, WAIT)
            return
        assert "failed" not in states.values(), dump(states)
        assert states.get(task_id) not in ("success", "skipped", "upstream_failed"), (
            f"{task_id} of {run_id} ended without becoming {state}: {dump(states)}"
        )
        if time.monotonic() > deadline:
            pytest.fail(standalone.diagnosis(DAG_ID, f"{task_id} of {run_id} never became {state}"))
        time.sleep(3)


def _answer(standalone: AirflowClient, run_id: str, option: str) -> dict[str, Any]:
    path = f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/approve/-1/hitlDetails"
    asked = standalone.api("GET", path)
    answer = standalone.api("PATCH", path, json={"chosen_options": [option], "params_input": {}})
    assert answer["chosen_options"] == [option], dump(answer)
    return dict(asked)


def _served_by_run(run_id: str) -> bool:
    from airflow_provider_amlretrain.promotion.record import DeploymentRecordStore

    current = DeploymentRecordStore("azurite_default", "deployments").read(TARGET).record.current
    return current is not None and current["run_id"] == run_id


def test_a_person_approves_or_rejects_borderline_models(
    standalone: AirflowClient, seed: dict[str, Any]
) -> None:
    first_day, approved_day, rejected_day = seeded_dates(seed)[-3:]
    standalone.unpause(DAG_ID)

    # A first deployment has no production model to be close to: a clear pass, promoted without asking.
    first = _trigger(standalone, first_day, ALWAYS_BORDERLINE)
    standalone.wait_for_run(DAG_ID, first, WAIT, expect="success")
    states = standalone.task_states(DAG_ID, first)
    assert (states["approve"], states["promote"]) == ("skipped", "success"), dump(states)
    first_model = endpoint_model(seed, ENDPOINT)
    assert first_day in first_model and _served_by_run(first)

    # Borderline, approved: the new model is served.
    approved = _trigger(standalone, approved_day, ALWAYS_BORDERLINE)
    _wait_for_task_state(standalone, approved, "approve", "awaiting_input")
    asked = _answer(standalone, approved, "Approve")
    assert asked["options"] == ["Approve", "Reject"]
    assert asked["body"].startswith("**Gate outcome: review**"), asked["body"]
    assert "| AUC |" in asked["body"] and "borderline" in asked["body"], asked["body"]
    standalone.wait_for_run(DAG_ID, approved, WAIT, expect="success")
    states = standalone.task_states(DAG_ID, approved)
    assert (states["approve"], states["promote"]) == ("success", "success"), dump(states)
    approved_model = endpoint_model(seed, ENDPOINT)
    assert approved_model != first_model and approved_day in approved_model
    assert _served_by_run(approved)

    # Borderline, rejected: the endpoint keeps the approved model, and the run is green.
    rejected = _trigger(standalone, rejected_day, ALWAYS_BORDERLINE)
    _wait_for_task_state(standalone, rejected, "approve", "awaiting_input")
    _answer(standalone, rejected, "Reject")
    standalone.wait_for_run(DAG_ID, rejected, WAIT, expect="success")
    states = standalone.task_states(DAG_ID, rejected)
    assert (states["evaluate"], states["approve"], states["promote"]) == ("success", "success", "skipped"), (
        dump(states)
    )
    assert endpoint_model(seed, ENDPOINT) == approved_model
    assert _served_by_run(approved)
