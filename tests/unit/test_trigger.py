"""The BES job trigger: serialization, one event per wait, deadline, errors, cancel on kill."""

from __future__ import annotations

import importlib
import json
import time
from types import SimpleNamespace

import pytest

from airflow_provider_amlretrain.triggers.batch_job import AzureMLBatchJobTrigger
from tests.unit.support import API_KEY, CONN_ID, JOB_ID, SAS_SIG, finished_results, job_url, status_body


@pytest.fixture
def recorded_sleeps(monkeypatch, sleeps):
    """Let the trigger build its real async hook, with the hook's waits recorded instead of slept."""
    original = AzureMLBatchJobTrigger._hook

    def _hook(self):
        hook = original(self)
        hook._asleep = sleeps.asleep
        return hook

    monkeypatch.setattr(AzureMLBatchJobTrigger, "_hook", _hook)
    return sleeps


def _trigger(**kwargs) -> AzureMLBatchJobTrigger:
    params = {"azureml_conn_id": CONN_ID, "job_id": JOB_ID, "poll_interval": 15}
    params.update(kwargs)
    return AzureMLBatchJobTrigger(**params)


async def _only_event(trigger: AzureMLBatchJobTrigger) -> dict:
    gen = trigger.run()
    event = await anext(gen)
    with pytest.raises(StopAsyncIteration):
        await anext(gen)
    return event.payload


def _get_calls(aio) -> int:
    return sum(len(calls) for (method, _), calls in aio.requests.items() if method == "GET")


# -- serialize ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("deadline", [None, 1_900_000_000.5])
@pytest.mark.parametrize("cancel_on_kill", [True, False])
@pytest.mark.parametrize("end_from_trigger", [True, False])
def test_serialize_round_trip(deadline, cancel_on_kill, end_from_trigger):
    trigger = _trigger(
        poll_interval=12,
        deadline=deadline,
        cancel_on_kill=cancel_on_kill,
        max_poll_interval=90,
        started_at=1_800_000_000.25,
        end_from_trigger=end_from_trigger,
    )

    classpath, kwargs = trigger.serialize()

    assert classpath == "airflow_provider_amlretrain.triggers.batch_job.AzureMLBatchJobTrigger"
    assert json.loads(json.dumps(kwargs)) == kwargs  # plain data only
    module, _, name = classpath.rpartition(".")
    clone = getattr(importlib.import_module(module), name)(**kwargs)
    assert clone.serialize() == (classpath, kwargs)
    assert kwargs == {
        "azureml_conn_id": CONN_ID,
        "job_id": JOB_ID,
        "poll_interval": 12.0,
        "deadline": deadline,
        "cancel_on_kill": cancel_on_kill,
        "max_poll_interval": 90.0,
        "started_at": 1_800_000_000.25,
        "end_from_trigger": end_from_trigger,
    }


def test_constructor_does_not_touch_the_network(aio):
    _trigger()
    assert aio.requests == {}


# -- run ---------------------------------------------------------------------------------------------


async def test_polls_until_finished_then_yields_one_event(azureml_conn, aio, recorded_sleeps):
    aio.get(job_url(), payload=status_body("NotStarted"))
    aio.get(job_url(), payload=status_body("Running"))
    aio.get(job_url(), payload=status_body("Finished", results={}))

    payload = await _only_event(_trigger(poll_interval=15))

    assert payload == {"job_id": JOB_ID, "outcome": "ended", "status": "Finished", "message": None}
    assert recorded_sleeps.delays == [15.0, 15.0]
    assert _get_calls(aio) == 3


@pytest.fixture
def stored_xcoms(monkeypatch):
    """XComs the trigger stores through the task SDK (recorded: the triggerer's supervisor is not running)."""
    from airflow.sdk.execution_time.xcom import XCom

    stored: list[dict] = []

    async def aset(key, value, **where):
        stored.append({"key": key, "value": value, **where})

    monkeypatch.setattr(XCom, "aset", aset)
    return stored


def _ending_trigger(**kwargs) -> AzureMLBatchJobTrigger:
    trigger = _trigger(end_from_trigger=True, **kwargs)
    # The triggerer gives each trigger its task instance; dag.test()'s inline triggers get none.
    trigger.task_instance = SimpleNamespace(dag_id="d", task_id="g.retrain", run_id="r", map_index=3)
    return trigger


async def test_end_from_trigger_ends_a_finished_job_with_the_operators_result(
    azureml_conn, aio, recorded_sleeps, stored_xcoms, caplog
):
    from airflow.triggers.base import TaskSuccessEvent

    aio.get(job_url(), payload=status_body("Running"))
    aio.get(job_url(), payload=status_body("Finished", results=finished_results()))
    trigger = _ending_trigger(poll_interval=15, started_at=time.time() - 40)

    with caplog.at_level("INFO"):
        gen = trigger.run()
        event = await anext(gen)
        with pytest.raises(StopAsyncIteration):
            await anext(gen)

    # The task ends here, in success, with what the operator would have returned on a worker stored as the
    # mapped task instance's return_value (not in the event: Airflow 3.3 would store that as JSON text).
    assert isinstance(event, TaskSuccessEvent) and event.xcoms is None
    [stored] = stored_xcoms
    result = stored.pop("value")
    assert stored == {
        "key": "return_value",
        "dag_id": "d",
        "task_id": "g.retrain",
        "run_id": "r",
        "map_index": 3,
    }
    assert json.loads(json.dumps(result)) == result  # plain data
    assert result["job_id"] == JOB_ID and result["status"] == "Finished"
    assert result["outputs"]["output1"]["relative_location"] == "models/runs/x/model.ilearner"
    assert result["duration_seconds"] >= 40
    assert SAS_SIG not in json.dumps(result) and SAS_SIG not in caplog.text
    assert (
        f"BES job {JOB_ID} wrote output1: https://acct.blob.core.windows.net/models/runs/x/model.ilearner"
        in (caplog.text)
    )


async def test_end_from_trigger_without_a_task_instance_resumes_the_task(
    azureml_conn, aio, recorded_sleeps, stored_xcoms
):
    """dag.test() runs triggers inline without a task instance: the task resumes and stores its result."""
    aio.get(job_url(), payload=status_body("Finished", results=finished_results()))

    payload = await _only_event(_trigger(end_from_trigger=True))

    assert payload == {"job_id": JOB_ID, "outcome": "ended", "status": "Finished", "message": None}
    assert stored_xcoms == []


async def test_a_result_the_triggerer_cannot_store_resumes_the_task_to_store_it(
    azureml_conn, aio, recorded_sleeps, monkeypatch, caplog
):
    from airflow.sdk.execution_time.xcom import XCom

    async def refused(*args, **kwargs):
        raise RuntimeError(f"API server said 503 to https://x/?sig={SAS_SIG}")

    monkeypatch.setattr(XCom, "aset", refused)
    aio.get(job_url(), payload=status_body("Finished", results=finished_results()))

    with caplog.at_level("WARNING"):
        payload = await _only_event(_ending_trigger())

    assert payload["outcome"] == "ended" and payload["status"] == "Finished"
    assert "resumes on a worker" in caplog.text and SAS_SIG not in caplog.text


@pytest.mark.parametrize("status", ["Failed", "Cancelled"])
async def test_end_from_trigger_resumes_the_task_when_the_job_did_not_finish(
    azureml_conn, aio, recorded_sleeps, status
):
    """A failed or cancelled job resumes the task on a worker, which fails it (and retries, if it may)."""
    aio.get(job_url(), payload=status_body(status, details="Error 0001"))

    payload = await _only_event(_ending_trigger())

    assert payload == {"job_id": JOB_ID, "outcome": "ended", "status": status, "message": "Error 0001"}


async def test_end_from_trigger_resumes_the_task_after_its_deadline(azureml_conn, aio, recorded_sleeps):
    aio.get(job_url(), payload=status_body("Running"))

    payload = await _only_event(_ending_trigger(deadline=time.time() - 1))

    assert payload["outcome"] == "timed_out"


async def test_a_status_is_logged_when_it_changes_not_on_every_poll(
    azureml_conn, aio, recorded_sleeps, caplog
):
    for status in ("NotStarted", "Running", "Running", "Running", "Running"):
        aio.get(job_url(), payload=status_body(status))
    aio.get(job_url(), payload=status_body("Finished", results={}))

    with caplog.at_level("INFO"):
        payload = await _only_event(_trigger(poll_interval=15))

    assert payload["status"] == "Finished"
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith(f"BES job {JOB_ID} is")]
    assert lines == [f"BES job {JOB_ID} is NotStarted.", f"BES job {JOB_ID} is Running."]


async def test_waits_grow_from_the_jobs_start_and_honour_retry_after(azureml_conn, aio, recorded_sleeps):
    aio.get(job_url(), payload=status_body("Running"))
    aio.get(job_url(), payload=status_body("Running"), headers={"Retry-After": "100"})
    aio.get(job_url(), payload=status_body("Finished", results={}))

    # The job started 40 s before the trigger did (in the operator, or before a triggerer restart).
    payload = await _only_event(_trigger(poll_interval=5, max_poll_interval=90, started_at=time.time() - 40))

    assert payload["status"] == "Finished"
    first, second = recorded_sleeps.delays
    assert first == pytest.approx(20, abs=2)  # half the elapsed time, not the 5 s floor
    assert second == 90  # the service's Retry-After, up to the ceiling


async def test_the_waits_grow_from_when_a_queued_job_starts_running(azureml_conn, aio, recorded_sleeps):
    for status in ("NotStarted", "Running", "Running"):
        aio.get(job_url(), payload=status_body(status))
    aio.get(job_url(), payload=status_body("Finished", results={}))

    payload = await _only_event(_trigger(poll_interval=5, max_poll_interval=90, started_at=time.time() - 100))

    assert payload["status"] == "Finished"
    assert recorded_sleeps.delays[0] == pytest.approx(50, abs=1)  # queued: from the start call
    assert (
        recorded_sleeps.delays[1:] == [pytest.approx(5, abs=0.5)] * 2
    )  # running: from its first Running read


async def test_failed_job_event_carries_details(azureml_conn, aio, recorded_sleeps):
    aio.get(job_url(), payload=status_body(1))
    aio.get(job_url(), payload=status_body(2, details="Error 0018: Dataset contains invalid data."))

    payload = await _only_event(_trigger())

    assert payload["outcome"] == "ended"
    assert payload["status"] == "Failed"
    assert payload["message"] == "Error 0018: Dataset contains invalid data."


async def test_cancelled_job_event(azureml_conn, aio, recorded_sleeps):
    aio.get(job_url(), payload=status_body("Cancelled"))

    payload = await _only_event(_trigger())

    assert (payload["outcome"], payload["status"]) == ("ended", "Cancelled")
    assert recorded_sleeps.delays == []


async def test_deadline_passed_yields_timed_out(azureml_conn, aio, recorded_sleeps):
    aio.get(job_url(), payload=status_body("Running"))

    payload = await _only_event(_trigger(deadline=time.time() - 1))

    assert (payload["outcome"], payload["status"]) == ("timed_out", "Running")
    assert payload["message"]
    assert recorded_sleeps.delays == []


async def test_sleep_is_cut_to_meet_the_deadline(azureml_conn, aio, recorded_sleeps):
    aio.get(job_url(), payload=status_body("Running"))
    aio.get(job_url(), payload=status_body("Finished"))

    payload = await _only_event(_trigger(poll_interval=600, deadline=time.time() + 20))

    assert payload["status"] == "Finished"
    (delay,) = recorded_sleeps.delays
    assert 15 < delay <= 20


async def test_job_that_ended_before_the_deadline_is_ended_not_timed_out(azureml_conn, aio, recorded_sleeps):
    aio.get(job_url(), payload=status_body("Finished"))

    payload = await _only_event(_trigger(deadline=time.time() - 100))

    assert payload["outcome"] == "ended"


@pytest.mark.parametrize(
    ("status", "words"),
    [(401, "API key"), (404, "404")],
)
async def test_service_errors_yield_an_error_event(azureml_conn, aio, recorded_sleeps, status, words):
    aio.get(
        job_url(),
        status=status,
        payload={"error": {"code": "Denied", "message": f"key {API_KEY} is invalid"}},
    )

    payload = await _only_event(_trigger())

    assert payload["outcome"] == "error"
    assert payload["status"] is None
    assert words in payload["message"]
    assert API_KEY not in payload["message"]


async def test_unknown_status_is_an_error_event_not_success(azureml_conn, aio, recorded_sleeps):
    aio.get(job_url(), payload=status_body("Succeeded"))

    payload = await _only_event(_trigger())

    assert payload["outcome"] == "error"
    assert "Succeeded" in payload["message"]


async def test_missing_connection_is_an_error_event(monkeypatch, aio, recorded_sleeps):
    from tests.unit.support import set_connection

    set_connection(
        monkeypatch, "azureml_nokey", conn_type="azureml_studio", host="https://h/workspaces/w/services/s"
    )

    payload = await _only_event(_trigger(azureml_conn_id="azureml_nokey"))

    assert payload["outcome"] == "error"
    assert "azureml_nokey" in payload["message"]
    assert aio.requests == {}


async def test_transient_errors_are_retried_inside_the_trigger(azureml_conn, aio, recorded_sleeps):
    aio.get(job_url(), status=503)
    aio.get(job_url(), status=429, headers={"Retry-After": "4"})
    aio.get(job_url(), payload=status_body("Finished"))

    payload = await _only_event(_trigger())

    assert payload["status"] == "Finished"
    assert recorded_sleeps.delays == [0.0, 4.0]


# -- on_kill -------------------------------------------------------------------------------------------


async def test_on_kill_cancels_the_job(azureml_conn, aio):
    aio.delete(job_url(), status=204)

    await _trigger().on_kill()

    (((method, url), calls),) = aio.requests.items()
    assert (method, str(url)) == ("DELETE", job_url())
    assert calls[0].kwargs["headers"]["Authorization"] == f"Bearer {API_KEY}"


async def test_on_kill_tolerates_an_ended_job(azureml_conn, aio):
    aio.delete(job_url(), status=400, payload={"error": {"code": "JobAlreadyFinished", "message": "done"}})

    await _trigger().on_kill()

    assert len(aio.requests) == 1


async def test_on_kill_does_nothing_without_cancel_on_kill(azureml_conn, aio):
    await _trigger(cancel_on_kill=False).on_kill()

    assert aio.requests == {}
