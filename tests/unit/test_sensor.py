"""The BES job sensor: poke outcomes, deferral, and the trigger event on resume."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from airflow_provider_amlretrain.exceptions import AzureMLError, BatchJobFailedError
from airflow_provider_amlretrain.sensors.batch_job import AzureMLBatchJobSensor
from airflow_provider_amlretrain.triggers.batch_job import AzureMLBatchJobTrigger
from tests.unit.support import CONN_ID, JOB_ID, job_url, status_body


class TiStub:
    stats_tags: dict[str, str] = {}

    def __init__(self) -> None:
        self.xcom: dict[str, object] = {}

    def xcom_push(self, key: str, value: object) -> None:
        self.xcom[key] = value


@pytest.fixture
def sensor(azureml_conn, sleeps):
    def make(**kwargs):
        s = AzureMLBatchJobSensor(task_id="wait", job_id=JOB_ID, azureml_conn_id=azureml_conn, **kwargs)
        s.hook._sleep = sleeps
        return s

    return make


@pytest.mark.parametrize(
    ("status", "done"), [("Finished", True), (4, True), ("Running", False), ("NotStarted", False), (0, False)]
)
def test_poke(sensor, rsps, status, done):
    rsps.add("GET", job_url(), json=status_body(status))

    assert sensor().poke({}) is done


@pytest.mark.parametrize("status", ["Failed", "Cancelled", 2, 3])
def test_poke_raises_when_the_job_did_not_finish(sensor, rsps, status):
    rsps.add("GET", job_url(), json=status_body(status, details="Error 0018: bad data"))

    with pytest.raises(BatchJobFailedError, match="Error 0018") as info:
        sensor().poke({})
    assert info.value.job_id == JOB_ID


def test_poke_raises_on_unknown_status(sensor, rsps):
    rsps.add("GET", job_url(), json=status_body("Succeeded"))

    with pytest.raises(AzureMLError):
        sensor().poke({})


def test_deferrable_defers_to_the_trigger(sensor, rsps):
    from airflow.providers.common.compat.sdk import TaskDeferred

    rsps.add("GET", job_url(), json=status_body("Running"))
    ti = TiStub()
    before = time.time()

    with pytest.raises(TaskDeferred) as info:
        sensor(deferrable=True, poke_interval=45, timeout=3600).execute({"ti": ti})

    trigger = info.value.trigger
    assert isinstance(trigger, AzureMLBatchJobTrigger)
    assert info.value.method_name == "execute_complete"
    _, kwargs = trigger.serialize()
    assert kwargs["azureml_conn_id"] == CONN_ID and kwargs["job_id"] == JOB_ID
    assert kwargs["poll_interval"] == 45.0
    assert kwargs["cancel_on_kill"] is False  # the sensor did not start the job: never cancel it
    assert before + 3600 <= kwargs["deadline"] <= time.time() + 3600
    assert info.value.timeout == timedelta(seconds=3600), "Airflow ends the deferral too"
    assert ti.xcom["azureml_bes_job_url"] == "https://services.azureml.net/"  # no job_page_url extra


def test_deferrable_does_not_defer_a_finished_job(sensor, rsps):
    rsps.add("GET", job_url(), json=status_body("Finished"))

    assert sensor(deferrable=True).execute({"ti": TiStub()}) is None


def test_deferrable_raises_at_once_for_a_failed_job(sensor, rsps):
    rsps.add("GET", job_url(), json=status_body("Failed", details="boom"))

    with pytest.raises(BatchJobFailedError, match="boom"):
        sensor(deferrable=True).execute({"ti": TiStub()})


def _event(outcome, status, message=None):
    return {"job_id": JOB_ID, "outcome": outcome, "status": status, "message": message}


def test_execute_complete(sensor):
    assert sensor().execute_complete({}, _event("ended", "Finished")) is None


@pytest.mark.parametrize(
    ("event", "error", "match"),
    [
        (_event("ended", "Failed", "Error 0018"), BatchJobFailedError, "Error 0018"),
        (_event("ended", "Cancelled"), BatchJobFailedError, "Cancelled"),
        (_event("error", None, "401 from service"), AzureMLError, "401 from service"),
        ({"job_id": JOB_ID, "outcome": "ended", "status": "Running"}, AzureMLError, "ended"),
        ("garbage", AzureMLError, "not a BES job event"),
    ],
)
def test_execute_complete_failures(sensor, event, error, match):
    with pytest.raises(error, match=match):
        sensor().execute_complete({}, event)


def test_deferred_timeout_is_a_sensor_timeout_as_in_poke_mode(sensor):
    from airflow.providers.common.compat.sdk import AirflowSensorTimeout

    with pytest.raises(AirflowSensorTimeout, match="did not end within the sensor's timeout"):
        sensor(deferrable=True, timeout=60).execute_complete({}, _event("timed_out", "Running", "late"))


def test_deferral_timeout_from_airflow_is_a_sensor_timeout(sensor):
    from airflow.providers.common.compat.sdk import AirflowSensorTimeout
    from airflow.sdk.bases.operator import TRIGGER_FAIL_REPR, TriggerFailureReason

    with pytest.raises(AirflowSensorTimeout):
        sensor(deferrable=True, timeout=60).resume_execution(
            TRIGGER_FAIL_REPR, {"error": TriggerFailureReason.TRIGGER_TIMEOUT}, {}
        )


def test_deferred_timeout_with_soft_fail_skips(sensor):
    from airflow.providers.common.compat.sdk import AirflowSkipException

    with pytest.raises(AirflowSkipException):
        sensor(deferrable=True, timeout=60, soft_fail=True).resume_execution(
            "execute_complete", {"event": _event("timed_out", "Running", "late")}, {}
        )
