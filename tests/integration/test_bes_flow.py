"""Real Airflow DAG runs against Azurite and the AML emulator: the BES retraining flow."""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

import pytest

from tests.conftest import REPO_ROOT
from tests.integration.conftest import EmulatorAdmin, dump, seeded_dates, utc

pytestmark = pytest.mark.integration

WASB = "azurite_default"
TRAINING = "azureml_train_binary"


def flow_dag(dag_id: str):
    """A DAG of ``tests/integration/dags/bes_test_dags.py``."""
    from amlretrain_devstack.dagrun import load_dag_file

    return load_dag_file(REPO_ROOT / "tests/integration/dags/bes_test_dags.py", dag_id)


@pytest.fixture
def date(seed: dict[str, Any]) -> str:
    dates = seeded_dates(seed)
    assert dates, f"the seed lists no binary training partitions: {dump(seed)}"
    return dates[-1]


def read_blob(container: str, blob: str) -> str:
    from airflow.providers.microsoft.azure.hooks.wasb import WasbHook

    return WasbHook(wasb_conn_id=WASB).read_file(container_name=container, blob_name=blob)


def test_example_dag_retrains_and_reports_metrics(run, date: str, stack: Any) -> None:
    from amlretrain_devstack.dagrun import load_dag_file

    outcome = run(load_dag_file(REPO_ROOT / "dags/amlretrain_bes_retrain.py"), utc(date))

    assert outcome.state == "success", dump(outcome.task_states)
    report = outcome.xcom("report")
    assert {"AUC", "Accuracy", "F-Score"} <= set(report["metrics"]), report
    assert 0.5 < report["metrics"]["AUC"] <= 1.0
    assert report["model_uri"].endswith("/model.ilearner") and "?" not in report["model_uri"]
    result = outcome.xcom("retrain")
    model = json.loads(read_blob(*result["outputs"]["output1"]["relative_location"].split("/", 1)))
    assert model, "the .ilearner blob is an empty document"
    serialized = json.dumps({f"{k[0]}:{k[1]}": v for k, v in outcome.xcoms.items()}, default=str)
    assert "sig=" not in serialized and "AccountKey" not in serialized
    rendered = rendered_fields(outcome.dag_id, outcome.run_id)
    assert "retrain" in rendered and "outputs" in rendered["retrain"]
    secrets = [
        stack.info["azurite"]["account_key"],
        json.loads(os.environ["AIRFLOW_CONN_AZUREML_TRAIN_BINARY"])["password"],
    ]
    for secret in secrets:
        assert secret not in serialized and secret not in json.dumps(rendered, default=str)


def rendered_fields(dag_id: str, run_id: str) -> dict[str, Any]:
    """Task id to the rendered template fields Airflow stored for a run (what the UI shows)."""
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.scalars(
            select(RenderedTaskInstanceFields).where(
                RenderedTaskInstanceFields.dag_id == dag_id, RenderedTaskInstanceFields.run_id == run_id
            )
        ).all()
        return {row.task_id: row.rendered_fields for row in rows}


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
def test_retrain_in_both_modes(run, date: str, deferrable: bool) -> None:
    outcome = run(flow_dag("bes_deferrable" if deferrable else "bes_sync"), utc(date))

    assert outcome.state == "success", dump(outcome.task_states)
    result = outcome.xcom("retrain")
    assert result["status"] == "Finished"
    assert set(result["outputs"]) == {"output1", "output2"}
    assert result["duration_seconds"] is not None and result["duration_seconds"] >= 0
    header = read_blob(*result["outputs"]["output2"]["relative_location"].split("/", 1)).splitlines()[0]
    assert "AUC" in header.split(",")


def test_failed_job_details_reach_the_task_log(run, date: str, capfd: pytest.CaptureFixture[str]) -> None:
    outcome = run(flow_dag("bes_missing_input"), utc(date))

    assert outcome.task_states["retrain"] == "failed"
    log = capfd.readouterr()
    text = log.out + log.err
    assert "ended Failed" in text
    assert "missing.csv" in text, "the job's Details (which name the missing input) must reach the task log"
    assert "AccountKey=" not in text.replace("AccountKey=***", "")


def test_throttling_and_unavailable_answers_are_survived(run, date: str, emulator: EmulatorAdmin) -> None:
    emulator.set_faults(
        {
            "rules": [
                {"method": "POST", "path": "/jobs$", "status": 429, "retry_after": 1, "times": 2},
                {"method": "GET", "path": "/jobs/[0-9a-f]{32}$", "status": 503, "times": 2},
            ]
        }
    )
    outcome = run(flow_dag("bes_faults"), utc(date))

    assert outcome.state == "success", dump(outcome.task_states)
    assert outcome.try_numbers["retrain"] == 1, "HTTP retries must absorb the faults without a task retry"
    remaining = [r for r in emulator.faults().get("rules", []) if r.get("times", 0) > 0]
    assert remaining == [], f"every injected fault must have been hit: {remaining}"


def test_a_start_whose_answer_is_lost_after_it_was_processed_runs_one_job(
    run, date: str, emulator: EmulatorAdmin
) -> None:
    import requests

    start = "/jobs/[0-9a-f]{32}/start$"
    emulator.set_faults(
        {
            "rules": [
                {"method": "POST", "path": start, "status": 503, "code": "RequestThrottled", "times": 1},
                {"method": "POST", "path": start, "drop_connection": True, "when": "after", "times": 1},
            ]
        }
    )
    before = {job["id"] for job in requests.get(f"{emulator.url}/_emulator/jobs", timeout=10).json()["jobs"]}

    outcome = run(flow_dag("bes_faults"), utc(date))

    assert outcome.state == "success", dump(outcome.task_states)
    assert [r for r in emulator.faults().get("rules", []) if r.get("times", 0) > 0] == [], "both faults hit"
    jobs = [
        job
        for job in requests.get(f"{emulator.url}/_emulator/jobs", timeout=10).json()["jobs"]
        if job["id"] not in before
    ]
    assert len(jobs) == 1, dump(jobs)
    assert jobs[0]["id"] == outcome.xcom("retrain")["job_id"] and jobs[0]["status"] == "Finished"


def test_a_submit_whose_answer_is_lost_after_the_job_was_created_starts_one_job(
    run, date: str, emulator: EmulatorAdmin
) -> None:
    import requests

    emulator.set_faults(
        {
            "rules": [
                {"method": "POST", "path": "/jobs$", "drop_connection": True, "when": "after", "times": 1}
            ]
        }
    )
    before = {job["id"] for job in requests.get(f"{emulator.url}/_emulator/jobs", timeout=10).json()["jobs"]}

    outcome = run(flow_dag("bes_lost_submit"), utc(date))

    assert outcome.state == "success", dump(outcome.task_states)
    assert [r for r in emulator.faults().get("rules", []) if r.get("times", 0) > 0] == [], "the fault hit"
    assert outcome.try_numbers["retrain"] == 2, "the lost answer failed the first try, not the task"
    jobs = [
        job
        for job in requests.get(f"{emulator.url}/_emulator/jobs", timeout=10).json()["jobs"]
        if job["id"] not in before
    ]
    assert len(jobs) == 2, f"the lost submit created a job, the retry another: {dump(jobs)}"
    started = [job for job in jobs if job["start_requested_at"]]
    assert [job["id"] for job in started] == [outcome.xcom("retrain")["job_id"]], dump(jobs)
    (orphan,) = [job for job in jobs if not job["start_requested_at"]]
    assert orphan["status"] == "NotStarted" and orphan["started_at"] is None, "the orphan is never started"


@pytest.mark.parametrize("dag_id", ["bes_timeout", "bes_timeout_deferrable"])
def test_job_timeout_cancels_the_remote_job(run, date: str, emulator: EmulatorAdmin, dag_id: str) -> None:
    from airflow_provider_amlretrain.hooks.studio import AzureMLStudioHook

    emulator.set_faults({"rules": [], "job_seconds": 30})
    outcome = run(flow_dag(dag_id), utc(date))

    assert outcome.task_states["retrain"] == "failed"
    job_id = outcome.xcom("retrain", "job_id")
    assert job_id
    assert AzureMLStudioHook(TRAINING).get_job(job_id).status.value == "Cancelled"


def test_retry_reattaches_to_the_running_job(run, date: str, emulator: EmulatorAdmin) -> None:
    from airflow_provider_amlretrain.hooks.studio import AzureMLStudioHook

    emulator.set_faults({"rules": [], "job_seconds": 7})
    jobs_before = emulator_job_count(emulator)
    outcome = run(flow_dag("bes_reattach"), utc(date))

    assert outcome.state == "success", dump(outcome.task_states)
    assert outcome.try_numbers["retrain"] == 2, "the first try must have timed out while the job ran"
    assert emulator_job_count(emulator) == jobs_before + 1, "the retry must reattach, not submit a second job"
    result = outcome.xcom("retrain")
    assert AzureMLStudioHook(TRAINING).get_job(result["job_id"]).status.value == "Finished"


def emulator_job_count(emulator: EmulatorAdmin) -> int:
    import requests

    answer = requests.get(f"{emulator.url}/_emulator/jobs", timeout=10)
    answer.raise_for_status()
    return len(answer.json()["jobs"])


def _submit_and_start(stack: Any, seed_name: str = "kill") -> str:
    """Submit and start a training job directly through the hook (a job 'started elsewhere')."""
    from airflow_provider_amlretrain.api.bes import build_batch_request
    from airflow_provider_amlretrain.api.references import BlobReference
    from airflow_provider_amlretrain.hooks.studio import AzureMLStudioHook

    hook = AzureMLStudioHook(TRAINING)
    cs = stack.connection_string
    body = build_batch_request(
        inputs={
            "input1": BlobReference(f"training-data/binary/dt={seeded_dates(stack.seed)[0]}/train.csv", cs)
        },
        outputs={
            "output1": BlobReference(f"models/tests/{seed_name}/model.ilearner", cs),
            "output2": BlobReference(f"models/tests/{seed_name}/evaluation.csv", cs),
        },
    )
    job_id = hook.submit_job(body)
    hook.start_job(job_id)
    return job_id


def test_kill_cancels_the_job_on_the_worker_and_in_the_triggerer(stack: Any, emulator: EmulatorAdmin) -> None:
    from airflow_provider_amlretrain.hooks.studio import AzureMLStudioHook
    from airflow_provider_amlretrain.operators.batch_execution import AzureMLBatchExecutionOperator
    from airflow_provider_amlretrain.triggers.batch_job import AzureMLBatchJobTrigger

    emulator.set_faults({"rules": [], "job_seconds": 30})
    hook = AzureMLStudioHook(TRAINING)

    worker_job = _submit_and_start(stack, "kill-worker")
    operator = AzureMLBatchExecutionOperator(task_id="k", azureml_conn_id=TRAINING, outputs={"o": {}})
    operator.job_id = worker_job
    operator.on_kill()
    assert hook.get_job(worker_job).status.value == "Cancelled"
    operator.on_kill()  # an ended job is tolerated

    deferred_job = _submit_and_start(stack, "kill-trigger")
    trigger = AzureMLBatchJobTrigger(azureml_conn_id=TRAINING, job_id=deferred_job, poll_interval=0.2)
    asyncio.run(trigger.on_kill())
    assert hook.get_job(deferred_job).status.value == "Cancelled"
    asyncio.run(trigger.on_kill())


@pytest.mark.parametrize("deferrable", [False, True], ids=["poke", "deferrable"])
def test_sensor_waits_for_a_job_started_elsewhere(run, stack: Any, date: str, deferrable: bool) -> None:
    job_id = _submit_and_start(stack, f"sensor-{deferrable}")
    outcome = run(
        flow_dag("bes_sensor_deferrable" if deferrable else "bes_sensor_poke"),
        utc(date),
        run_conf={"job_id": job_id},
    )
    assert outcome.state == "success", dump(outcome.task_states)


def test_connection_test_tells_good_key_bad_key_and_wrong_service(
    stack: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    from airflow_provider_amlretrain.hooks.studio import AzureMLStudioHook

    good = json.loads(os.environ["AIRFLOW_CONN_AZUREML_TRAIN_BINARY"])
    monkeypatch.setenv("AIRFLOW_CONN_BES_BAD_KEY", json.dumps({**good, "password": "not-the-key"}))
    wrong_service = good["host"].rsplit("/", 1)[0] + "/" + "f" * 32
    monkeypatch.setenv("AIRFLOW_CONN_BES_WRONG_SERVICE", json.dumps({**good, "host": wrong_service}))

    assert AzureMLStudioHook(TRAINING).test_connection()[0] is True
    ok, message = AzureMLStudioHook("bes_bad_key").test_connection()
    assert not ok and "401" in message and "API key" in message and "not-the-key" not in message
    ok, message = AzureMLStudioHook("bes_wrong_service").test_connection()
    assert not ok and "404" in message and "service" in message.lower()


class _ClearedRun:
    """What a task of a DAG run cleared once sees: its task state store (kept across the clear), try, run."""

    stats_tags: dict[str, str] = {}

    def __init__(self, stored: dict[str, Any], try_number: int) -> None:
        self.store = dict(stored)
        self.try_number = try_number
        self.clear_number = 1
        self.xcom: dict[str, Any] = {}

    def get(self, key: str) -> Any:
        return self.store.get(key)

    def set(self, key: str, value: Any) -> None:
        self.store[key] = value

    def delete(self, key: str) -> None:
        self.store.pop(key, None)

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value

    def context(self) -> dict[str, Any]:
        return {"ti": self, "task_state_store": self, "dag_run": self}


def test_a_clear_cancels_the_job_of_before_the_clear_that_still_runs(
    stack: Any, emulator: EmulatorAdmin, date: str
) -> None:
    """A task cleared while deferred leaves its job running: the new try cancels it and trains afresh."""
    from airflow_provider_amlretrain.hooks.studio import AzureMLStudioHook
    from airflow_provider_amlretrain.operators.batch_execution import AzureMLBatchExecutionOperator

    # Long enough that the earlier job still runs when the operator looks (it does so at once).
    emulator.set_faults({"rules": [], "job_seconds": 10})
    hook = AzureMLStudioHook(TRAINING)
    earlier = _submit_and_start(stack, "clear-earlier")
    deadline = time.monotonic() + 60
    while hook.get_job(earlier).status.value != "Running":
        assert time.monotonic() < deadline, "the emulator did not run the earlier job in 60 s"
        time.sleep(0.2)
    operator = AzureMLBatchExecutionOperator(
        task_id="retrain",
        azureml_conn_id=TRAINING,
        inputs={
            "input1": {
                "wasb_conn_id": WASB,
                "container": "training-data",
                "blob": f"binary/dt={date}/train.csv",
            }
        },
        outputs={
            "output1": {
                "wasb_conn_id": WASB,
                "container": "models",
                "blob": "tests/clear-later/model.ilearner",
            },
            "output2": {
                "wasb_conn_id": WASB,
                "container": "models",
                "blob": "tests/clear-later/evaluation.csv",
            },
        },
        poll_interval=0.5,
    )
    run = _ClearedRun(
        {
            operator.external_id_key: earlier,
            operator.clear_number_key: {"job_id": earlier, "clear_number": 0},
        },
        try_number=2,
    )
    jobs_before = emulator_job_count(emulator)

    result = operator.execute(run.context())  # type: ignore[arg-type]

    assert hook.get_job(earlier).status.value == "Cancelled"
    assert result["job_id"] != earlier and hook.get_job(result["job_id"]).status.value == "Finished"
    assert emulator_job_count(emulator) == jobs_before + 1
    assert run.store[operator.clear_number_key] == {"job_id": result["job_id"], "clear_number": 1}
