"""
A real deployment (the session's local Airflow, ``airflow standalone``: scheduler, LocalExecutor,
triggerer, API server) against the session's stack: a backfill through the REST API (what the UI's backfill
button calls), and data-aware retraining through an asset watcher in the real triggerer.

In the backfill, three days run at once with deferrable operators (waits happen in the real triggerer). Whatever
order they finish in, the endpoint must end up serving the model of the newest day: older runs
either lose the race for the deployment record and retry, or see newer data deployed and skip.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from tests.integration.conftest import dump, seeded_dates

if TYPE_CHECKING:
    from tests.integration.airflow_support import AirflowClient

# Starting the session's Airflow may count against the first test; the waits below fail with a
# diagnosis before this.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

DAG_ID = "amlretrain_retrain_and_promote"
TARGET = "binary-classic-retrained"


def test_backfill_from_the_api_ends_on_the_newest_model(
    standalone: AirflowClient, seed: dict[str, Any]
) -> None:
    from airflow_provider_amlretrain.promotion.record import DeploymentRecordStore

    dates = seeded_dates(seed)[-3:]
    backfill = {
        "dag_id": DAG_ID,
        "from_date": f"{dates[0]}T00:00:00Z",
        "to_date": f"{dates[-1]}T00:00:00Z",
        "max_active_runs": 3,
        "reprocess_behavior": "none",
    }
    # Backfill first, unpause second: runs of a paused DAG wait, so all three days start together once it is
    # unpaused (unpausing itself starts no run: the DAG's timetable has run_immediately=0).
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


def test_new_blob_triggers_a_retraining_run(
    standalone: AirflowClient, stack: Any, seed: dict[str, Any]
) -> None:
    from airflow.providers.microsoft.azure.hooks.wasb import WasbHook

    from airflow_provider_amlretrain.promotion.record import DeploymentRecordStore
    from airflow_provider_amlretrain.triggers.blob_arrival import WasbBlobArrivalTrigger

    dag_id = "amlretrain_on_new_data"
    watch = WasbBlobArrivalTrigger(
        wasb_conn_id="azurite_default", container="training-data", prefix="binary/", suffix="/train.csv"
    )
    wasb = WasbHook(wasb_conn_id="azurite_default")
    blobs_before = sorted(wasb.get_blobs_list("training-data"))
    standalone.unpause(dag_id)
    # The watcher's first scan is stored in the asset's state store.
    standalone.wait_for_asset_state("amlretrain_binary_training_data", watch.state_key)
    assert sorted(wasb.get_blobs_list("training-data")) == blobs_before, "the watcher writes nothing"
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
