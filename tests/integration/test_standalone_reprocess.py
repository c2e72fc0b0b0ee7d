"""
What a person does in the Airflow UI does what they mean (issue 8, cases 1-4), in a real ``airflow standalone``
against the session's stack:

1. clearing a finished ``retrain`` (the Clear dialog's defaults: downstream too) trains a new model;
2. that model reaches the endpoint, and the deployment record names its job;
3. a backfill that reprocesses completed runs retrains every day;
4. in the data-aware DAG, a blob of an older day that lands after a newer one does not replace the newer model.

Each test asserts on the emulator's BES jobs, on the model the endpoint scores with (the emulator's record of
it, not the URI the endpoint was given) and on the deployment record. The tests of this module share one
``airflow standalone`` and run in order: the clear works on the scheduled run, and the backfill reprocesses it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from tests.integration.conftest import EmulatorAdmin, dump, seeded_dates

if TYPE_CHECKING:
    from tests.integration.airflow_support import AirflowClient as Standalone

# Starting the deployment counts against the first test; the waits below fail with a diagnosis before this.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

WASB = "azurite_default"
DAG_ID = "amlretrain_retrain_and_promote"
TARGET = "binary-classic-retrained"
ENDPOINT = "retrained"
ASSET_DAG_ID = "amlretrain_on_new_data"
ASSET_TARGET = "binary-classic-on-new-data"
ASSET_ENDPOINT = "on-new-data"


def _record(target: str):
    from airflow_provider_amlretrain.promotion.record import DeploymentRecordStore

    return DeploymentRecordStore(WASB, "deployments").read(target).record


def _forget_deployments(*targets: str) -> None:
    """Start from targets without a record (other modules of the session promote to them too)."""
    from airflow.providers.microsoft.azure.hooks.wasb import WasbHook

    from airflow_provider_amlretrain.promotion.record import DeploymentRecordStore

    store = DeploymentRecordStore(WASB, "deployments")
    for target in targets:
        WasbHook(wasb_conn_id=WASB).delete_file(
            "deployments", store.blob_name(target), ignore_if_missing=True
        )


def _web_service_id(seed: dict[str, Any]) -> str:
    return str(
        next(s for s in seed["services"] if s["kind"] == "predictive" and s["task"] == "binary")[
            "web_service_id"
        ]
    )


def _runs_by_day(standalone: Standalone, dag_id: str) -> dict[str, dict[str, Any]]:
    runs = standalone.api("GET", f"/dags/{dag_id}/dagRuns")["dag_runs"]
    return {r["logical_date"][:10]: r for r in runs}


def _job_of(standalone: Standalone, dag_id: str, run_id: str) -> dict[str, Any]:
    return dict(standalone.xcom(dag_id, run_id, "retrain"))


@pytest.fixture(scope="module")
def emulator_admin(stack: Any) -> EmulatorAdmin:
    return EmulatorAdmin(stack.emulator_url)


@pytest.fixture(scope="module")
def scheduled_run(
    standalone: Standalone, emulator_admin: EmulatorAdmin, seed: dict[str, Any]
) -> dict[str, Any]:
    """
    The newest seeded day's run, finished and promoted.

    Unpausing the daily DAG starts no run (its timetable runs nothing on first unpause, so a person's
    "unpause on trigger" trains a day once): the day's run comes from a one-day backfill, as from the UI.
    """
    emulator_admin.clear_faults()
    _forget_deployments(TARGET)
    standalone.unpause(DAG_ID)
    newest = seeded_dates(seed)[-1]
    standalone.create_backfill(
        {
            "dag_id": DAG_ID,
            "from_date": f"{newest}T00:00:00Z",
            "to_date": f"{newest}T00:00:00Z",
            "max_active_runs": 1,
            "reprocess_behavior": "none",
        }
    )
    runs = standalone.wait_for_runs(DAG_ID, 1, 300)
    standalone.wait_for_backfills_to_complete(DAG_ID)
    assert [r["state"] for r in runs] == ["success"], standalone.diagnosis(
        DAG_ID, "the newest day's run failed"
    )
    return runs[0]


def test_clearing_retrain_trains_and_serves_a_new_model(
    standalone: Standalone, emulator_admin: EmulatorAdmin, seed: dict[str, Any], scheduled_run: dict[str, Any]
) -> None:
    run_id = scheduled_run["dag_run_id"]
    first = _job_of(standalone, DAG_ID, run_id)
    assert emulator_admin.served_model(_web_service_id(seed), ENDPOINT)["job_id"] == first["job_id"]
    jobs_before = len(emulator_admin.jobs())

    standalone.clear_tasks(DAG_ID, run_id, ["retrain"])
    runs = standalone.wait_for_runs(DAG_ID, 1, 300)
    assert [r["state"] for r in runs] == ["success"], dump(runs)
    states = standalone.task_states(DAG_ID, run_id)
    assert states["retrain"] == states["evaluate"] == states["promote"] == "success", dump(states)

    # Case 1: the clear submitted a new job (it used to return the job of before the clear).
    second = _job_of(standalone, DAG_ID, run_id)
    assert len(emulator_admin.jobs()) == jobs_before + 1, dump(emulator_admin.jobs()[-3:])
    assert second["job_id"] != first["job_id"]
    # Case 2: the new job wrote elsewhere, the endpoint scores with its model, and the record names it.
    assert second["outputs"]["output1"]["uri"] != first["outputs"]["output1"]["uri"], dump([first, second])
    assert emulator_admin.served_model(_web_service_id(seed), ENDPOINT)["job_id"] == second["job_id"]
    record = _record(TARGET)
    assert record.current is not None and record.current["job_id"] == second["job_id"], dump(record.current)
    assert [e["job_id"] for e in record.history if e.get("outcome") == "replaced"] == [first["job_id"]]


def test_reprocessing_backfill_retrains_every_day(
    standalone: Standalone, emulator_admin: EmulatorAdmin, seed: dict[str, Any], scheduled_run: dict[str, Any]
) -> None:
    dates = seeded_dates(seed)[-3:]
    assert scheduled_run["logical_date"][:10] == dates[-1], dump(scheduled_run)
    backfill = {
        "dag_id": DAG_ID,
        "from_date": f"{dates[0]}T00:00:00Z",
        "to_date": f"{dates[-1]}T00:00:00Z",
        "max_active_runs": 3,
        "reprocess_behavior": "none",
    }
    standalone.create_backfill(backfill)  # the two older days (the newest has its run)
    standalone.wait_for_runs(DAG_ID, len(dates), 300)
    standalone.wait_for_backfills_to_complete(DAG_ID)
    before = {
        day: _job_of(standalone, DAG_ID, run["dag_run_id"])
        for day, run in _runs_by_day(standalone, DAG_ID).items()
    }
    assert sorted(before) == dates, dump(before)
    jobs_before = len(emulator_admin.jobs())

    reprocess = {**backfill, "reprocess_behavior": "completed"}  # the dialog's "All Runs"
    assert standalone.plan_backfill(reprocess) == dates  # Airflow reprocesses all three runs
    # The request clears the three runs (clear_number + 1); on SQLite a locked DB can roll it back and leave an
    # empty backfill behind, which create_backfill cancels before it retries (tests/integration/backfill_requests.py).
    standalone.create_backfill(reprocess)
    standalone.wait_for_backfills_to_complete(DAG_ID, timeout=300)
    runs = standalone.wait_for_runs(DAG_ID, len(dates), 300)
    assert {r["state"] for r in runs} == {"success"}, dump(runs)

    # Case 3: every day trained again (each used to return its old job).
    after = {
        day: _job_of(standalone, DAG_ID, run["dag_run_id"])
        for day, run in _runs_by_day(standalone, DAG_ID).items()
    }
    assert len(emulator_admin.jobs()) == jobs_before + len(dates), dump(emulator_admin.jobs()[-6:])
    assert all(after[day]["job_id"] != before[day]["job_id"] for day in dates), dump(
        {"before": before, "after": after}
    )
    # The newest day's new model serves (older days are not deployed over it).
    newest = after[dates[-1]]["job_id"]
    assert emulator_admin.served_model(_web_service_id(seed), ENDPOINT)["job_id"] == newest
    record = _record(TARGET)
    assert record.current is not None and record.current["job_id"] == newest, dump(record.current)


def test_older_data_landing_late_does_not_replace_newer(
    standalone: Standalone, emulator_admin: EmulatorAdmin, seed: dict[str, Any]
) -> None:
    from airflow.providers.microsoft.azure.hooks.wasb import WasbHook

    from airflow_provider_amlretrain.triggers.blob_arrival import WasbBlobArrivalTrigger

    watch = WasbBlobArrivalTrigger(
        wasb_conn_id=WASB, container="training-data", prefix="binary/", suffix="/train.csv"
    )
    wasb = WasbHook(wasb_conn_id=WASB)
    _forget_deployments(ASSET_TARGET)
    standalone.unpause(ASSET_DAG_ID)
    standalone.wait_for_asset_state("amlretrain_binary_training_data", watch.state_key)  # its first scan
    data = wasb.read_file("training-data", seed["services"][0]["blobs"][-1]["blob"])

    def land(day: str, runs: int) -> dict[str, Any]:
        """Land a day's training blob; return the run it triggered, once it ended."""
        known = {r["dag_run_id"] for r in standalone.api("GET", f"/dags/{ASSET_DAG_ID}/dagRuns")["dag_runs"]}
        wasb.load_string(data, "training-data", f"binary/dt={day}/train.csv", overwrite=True)
        # An older day lands below the newest name: the watcher's next full scan (60 s) sees it.
        ended = standalone.wait_for_runs(ASSET_DAG_ID, runs, 360)
        (new,) = [r for r in ended if r["dag_run_id"] not in known]
        assert new["state"] == "success", standalone.diagnosis(ASSET_DAG_ID, f"the run for {day} failed")
        return new

    newer = land("2030-01-02", 1)
    newer_job = _job_of(standalone, ASSET_DAG_ID, newer["dag_run_id"])["job_id"]
    assert emulator_admin.served_model(_web_service_id(seed), ASSET_ENDPOINT)["job_id"] == newer_job
    older = land("2030-01-01", 2)

    # Case 4: the model of the older day did not replace the newer one.
    states = standalone.task_states(ASSET_DAG_ID, older["dag_run_id"])
    assert states["retrain"] == "success" and states["promote"] == "skipped", dump(states)
    assert emulator_admin.served_model(_web_service_id(seed), ASSET_ENDPOINT)["job_id"] == newer_job
    record = _record(ASSET_TARGET)
    assert record.current is not None and record.current["run_id"] == newer["dag_run_id"], dump(
        record.current
    )
