"""The BES operator on the real hook with HTTP mocked by ``responses``: resume, reattach, timeout, defer, kill."""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

import pytest

from airflow_provider_amlretrain.exceptions import (
    AzureMLError,
    BatchJobFailedError,
    BatchJobTimeoutError,
)
from airflow_provider_amlretrain.operators.batch_execution import AzureMLBatchExecutionOperator
from airflow_provider_amlretrain.triggers.batch_job import AzureMLBatchJobTrigger
from tests.unit.support import (
    ACCOUNT_KEY,
    API_KEY,
    CONN_ID,
    JOB_ID,
    JOBS_URL,
    SAS_SIG,
    SAS_TOKEN,
    finished_results,
    job_url,
    set_connection,
    status_body,
)

JOB_2 = "fedcba9876543210fedcba9876543210"
RESULT_SIG = "RESULTsig987secret"
ID_KEY = AzureMLBatchExecutionOperator.external_id_key
STARTED_KEY = AzureMLBatchExecutionOperator.started_at_key
CLEAR_KEY = AzureMLBatchExecutionOperator.clear_number_key


def started_record(at: float, job_id: str = JOB_ID) -> dict[str, object]:
    """What the operator stores when it starts a job."""
    return {"job_id": job_id, "started_at": at}


SECRETS = (API_KEY, ACCOUNT_KEY, SAS_SIG, RESULT_SIG)


class Journal(list):
    """Everything that happened, in order: store writes, XCom pushes and HTTP calls."""


class StoreStub:
    """``task_state_store``: a dict with get/set, writes journaled."""

    def __init__(self, journal: Journal, initial: dict[str, Any] | None = None) -> None:
        self.data: dict[str, Any] = dict(initial or {})
        self.journal = journal

    def get(self, key: str) -> Any:
        return self.data.get(key)

    def set(self, key: str, value: Any) -> None:
        self.journal.append(("store.set", key, value))
        self.data[key] = value

    def delete(self, key: str) -> None:
        self.journal.append(("store.delete", key))
        self.data.pop(key, None)


class TiStub:
    """The task instance: records XCom pushes."""

    stats_tags: dict[str, str] = {}

    def __init__(self, journal: Journal, try_number: int = 1) -> None:
        self.xcom: dict[str, Any] = {}
        self.journal = journal
        self.try_number = try_number

    def xcom_push(self, key: str, value: Any) -> None:
        self.journal.append(("xcom", key, value))
        self.xcom[key] = value


class DagRunStub:
    """The DAG run: how many times it was cleared."""

    def __init__(self, clear_number: int) -> None:
        self.clear_number = clear_number


@pytest.fixture
def journal() -> Journal:
    return Journal()


@pytest.fixture
def wasb_conn(monkeypatch):
    cs = f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={ACCOUNT_KEY};EndpointSuffix=core.windows.net"
    set_connection(monkeypatch, "blob_test", conn_type="wasb", extra={"connection_string": cs})
    return cs


@pytest.fixture
def make_context(journal):
    def make(
        stored: dict[str, Any] | None = None, *, clear_number: int = 0, try_number: int = 1
    ) -> dict[str, Any]:
        return {
            "ti": TiStub(journal, try_number),
            "task_state_store": StoreStub(journal, stored),
            "dag_run": DagRunStub(clear_number),
        }

    return make


@pytest.fixture
def make_operator(azureml_conn, wasb_conn, sleeps):
    def make(**kwargs: Any) -> AzureMLBatchExecutionOperator:
        params: dict[str, Any] = {
            "task_id": "retrain",
            "azureml_conn_id": azureml_conn,
            "inputs": {"input1": {"wasb_conn_id": "blob_test", "container": "data", "blob": "train.csv"}},
            "outputs": {
                "output1": {
                    "base_location": "https://acct.blob.core.windows.net/",
                    "relative_location": "models/runs/x/model.ilearner",
                    "sas_token": SAS_TOKEN,
                },
                "output2": {"wasb_conn_id": "blob_test", "path": "models/runs/x/evaluation.csv"},
            },
            "global_parameters": {"Data URI": "https://acct.blob.core.windows.net/data/d1.csv"},
            "poll_interval": 5,
            "deferrable": False,
        }
        params.update(kwargs)
        op = AzureMLBatchExecutionOperator(**params)
        op.hook._sleep = sleeps
        return op

    return make


@pytest.fixture
def http(rsps, journal):
    """``responses`` with start/submit/cancel calls journaled in order with the store writes."""

    def journaled(name: str, status: int, body: Any = None):
        def callback(request):
            journal.append(("http", name, request.url))
            return status, {}, "" if body is None else json.dumps(body)

        return callback

    class Http:
        mock = rsps

        def submit(self, job_id: str = JOB_ID) -> None:
            rsps.add_callback("POST", JOBS_URL, callback=journaled("submit", 200, job_id))

        def start(self, job_id: str = JOB_ID) -> None:
            rsps.add_callback("POST", job_url(job_id, "/start"), callback=journaled("start", 204))

        def cancel(self, job_id: str = JOB_ID, status: int = 204) -> None:
            rsps.add_callback("DELETE", job_url(job_id), callback=journaled("cancel", status))

        def statuses(self, job_id: str, *bodies: Any) -> None:
            for body in bodies:
                if isinstance(body, int):
                    rsps.add(
                        "GET",
                        job_url(job_id),
                        status=body,
                        json={"error": {"code": "JobNotFound", "message": "gone"}},
                    )
                else:
                    rsps.add("GET", job_url(job_id), json=body)

        def calls(self, method: str | None = None, job_id: str | None = None) -> list[str]:
            return [
                c.request.url
                for c in rsps.calls
                if (method is None or c.request.method == method)
                and (job_id is None or job_id in c.request.url)
            ]

    return Http()


def _finished(job_id: str = JOB_ID) -> dict[str, Any]:
    return status_body("Finished", results=finished_results(RESULT_SIG))


def _assert_summary(summary: dict[str, Any], job_id: str = JOB_ID) -> None:
    assert summary["job_id"] == job_id
    assert summary["status"] == "Finished"
    assert (
        summary["outputs"]["output1"]["uri"]
        == "https://acct.blob.core.windows.net/models/runs/x/model.ilearner"
    )
    assert summary["outputs"]["output2"]["relative_location"] == "models/runs/x/evaluation.csv"
    text = json.dumps(summary)
    for secret in SECRETS:
        assert secret not in text
    assert "sig=" not in text and "AccountKey" not in text


# -- fresh run -------------------------------------------------------------------------------------


def test_fresh_run_persists_the_job_id_before_starting_it(make_operator, make_context, http, journal, sleeps):
    http.submit()
    http.statuses(
        JOB_ID, status_body("NotStarted"), status_body("Running"), status_body("Running"), _finished()
    )
    http.start()
    op = make_operator()
    context = make_context()

    summary = op.execute(context)

    _assert_summary(summary)
    assert summary["duration_seconds"] is not None and summary["duration_seconds"] >= 0
    store = context["task_state_store"]
    assert store.data[ID_KEY] == JOB_ID
    assert store.data[STARTED_KEY]["job_id"] == JOB_ID and isinstance(
        store.data[STARTED_KEY]["started_at"], float
    )

    events = [e[:2] for e in journal]
    assert (
        events.index(("http", "submit"))
        < events.index(("store.set", ID_KEY))
        < events.index(("http", "start"))
    )
    assert sleeps.delays == [5]
    assert len(http.calls("POST", JOBS_URL)) == 1

    ti = context["ti"]
    assert ti.xcom["job_id"] == JOB_ID
    assert ti.xcom["azureml_bes_job_url"] == "https://services.azureml.net/"  # no job_page_url extra


def test_submitted_body_carries_inputs_outputs_and_parameters(make_operator, make_context, http, wasb_conn):
    http.submit()
    http.statuses(JOB_ID, status_body("NotStarted"), _finished())
    http.start()

    make_operator(azure_batch_pool_id="pool-1").execute(make_context())

    body = json.loads(http.mock.calls[0].request.body)
    assert "AccountKey" not in json.dumps(body) and ACCOUNT_KEY not in json.dumps(body)
    minted = {"input1": body["Inputs"]["input1"], "output2": body["Outputs"]["output2"]}
    for port, permission in (("input1", "sp=r&"), ("output2", "sp=cw&")):
        assert permission in minted[port]["SasBlobToken"] and "sr=b" in minted[port]["SasBlobToken"], port
    assert body == {
        "Inputs": {
            "input1": {
                "BaseLocation": "https://acct.blob.core.windows.net/",
                "RelativeLocation": "data/train.csv",
                "SasBlobToken": minted["input1"]["SasBlobToken"],
            }
        },
        "Outputs": {
            "output1": {
                "BaseLocation": "https://acct.blob.core.windows.net/",
                "RelativeLocation": "models/runs/x/model.ilearner",
                "SasBlobToken": SAS_TOKEN,
            },
            "output2": {
                "BaseLocation": "https://acct.blob.core.windows.net/",
                "RelativeLocation": "models/runs/x/try-1/evaluation.csv",
                "SasBlobToken": minted["output2"]["SasBlobToken"],
            },
        },
        "GlobalParameters": {"Data URI": "https://acct.blob.core.windows.net/data/d1.csv"},
        "AzureBatchPoolId": "pool-1",
    }


def _submitted_outputs(http: Any) -> dict[str, str]:
    body = json.loads(next(c.request.body for c in http.mock.calls if c.request.url == JOBS_URL))
    return {port: ref["RelativeLocation"] for port, ref in body["Outputs"].items()}


def test_each_attempt_writes_its_outputs_in_its_own_folder(make_operator, make_context, http):
    http.submit()
    http.statuses(JOB_ID, status_body("NotStarted"), _finished())
    http.start()
    container_sas = "?sv=2020-08-04&sr=c&sig=abc&sp=rw"
    output1 = {
        "base_location": "https://acct.blob.core.windows.net/",
        "relative_location": "models/m.ilearner",
    }

    make_operator(outputs={"output1": {**output1, "sas_token": container_sas}}).execute(
        make_context(try_number=3)
    )

    assert _submitted_outputs(http) == {"output1": "models/try-3/m.ilearner"}


def test_outputs_per_attempt_off_writes_the_rendered_names(make_operator, make_context, http):
    http.submit()
    http.statuses(JOB_ID, status_body("NotStarted"), _finished())
    http.start()

    make_operator(outputs_per_attempt=False).execute(make_context(try_number=2))

    assert _submitted_outputs(http) == {
        "output1": "models/runs/x/model.ilearner",
        "output2": "models/runs/x/evaluation.csv",
    }


def test_an_output_with_a_sas_for_that_one_blob_keeps_its_name_and_says_why(
    make_operator, make_context, http, log_text
):
    http.submit()
    http.statuses(JOB_ID, status_body("NotStarted"), _finished())
    http.start()

    make_operator().execute(make_context(try_number=2))

    assert _submitted_outputs(http) == {
        "output1": "models/runs/x/model.ilearner",
        "output2": "models/runs/x/try-2/evaluation.csv",
    }
    assert "sr=b" in log_text() and "container SAS" in log_text()
    assert SAS_SIG not in log_text()


def test_failed_job_raises_with_its_details(make_operator, make_context, http, log_text):
    details = f"Error 0003: column 'income' not found; output DefaultEndpointsProtocol=https;AccountName=a;AccountKey={ACCOUNT_KEY}"
    http.submit()
    http.statuses(
        JOB_ID, status_body("NotStarted"), status_body("Running"), status_body("Failed", details=details)
    )
    http.start()

    with pytest.raises(BatchJobFailedError) as info:
        make_operator().execute(make_context())

    err = info.value
    assert "column 'income' not found" in str(err)
    assert err.job_id == JOB_ID and err.status == "Failed"
    assert "column 'income' not found" in err.details
    for text in (str(err), err.details, log_text()):
        assert ACCOUNT_KEY not in text


def test_cancelled_job_raises(make_operator, make_context, http):
    http.submit()
    http.statuses(JOB_ID, status_body("NotStarted"), status_body("Cancelled"))
    http.start()

    with pytest.raises(BatchJobFailedError, match="Cancelled"):
        make_operator().execute(make_context())


def test_job_timeout_cancels_the_job(make_operator, make_context, http, journal):
    http.submit()
    http.statuses(JOB_ID, status_body("NotStarted"), status_body("Running"))
    http.start()
    http.cancel()

    with pytest.raises(BatchJobTimeoutError) as info:
        make_operator(job_timeout=0).execute(make_context())

    assert info.value.job_id == JOB_ID and info.value.status == "Running"
    assert ("http", "cancel", job_url()) in journal


def test_timeout_counts_from_the_stored_start_time_on_reattach(make_operator, make_context, http, journal):
    from datetime import timedelta

    http.statuses(JOB_ID, status_body("Running"))
    http.cancel()
    context = make_context({ID_KEY: JOB_ID, STARTED_KEY: started_record(time.time() - 3600)})

    with pytest.raises(BatchJobTimeoutError):
        make_operator(job_timeout=timedelta(minutes=10)).execute(context)

    assert ("http", "cancel", job_url()) in journal
    assert http.calls("POST") == []


def test_no_task_state_store_still_runs(make_operator, http, journal):
    http.submit()
    http.statuses(JOB_ID, status_body("NotStarted"), _finished())
    http.start()

    summary = make_operator().execute({"ti": TiStub(journal)})

    _assert_summary(summary)


# -- retries of the task ---------------------------------------------------------------------------


def test_retry_with_a_running_job_reattaches_without_submitting(make_operator, make_context, http, sleeps):
    http.statuses(JOB_ID, status_body("Running"), status_body("Running"), status_body("Running"), _finished())
    context = make_context({ID_KEY: JOB_ID, STARTED_KEY: started_record(time.time() - 60)})
    op = make_operator()

    summary = op.execute(context)

    assert http.calls("POST") == []
    _assert_summary(summary)
    assert op.job_id == JOB_ID
    assert context["ti"].xcom["job_id"] == JOB_ID
    # The job started 60 s ago in an earlier try: the wait grows from then (half the elapsed time), not 5 s.
    assert sleeps.delays == [pytest.approx(30, abs=3)]


def test_reattached_job_that_fails_raises(make_operator, make_context, http):
    http.statuses(
        JOB_ID, status_body("Running"), status_body("Running"), status_body("Failed", details="out of memory")
    )
    context = make_context({ID_KEY: JOB_ID})

    with pytest.raises(BatchJobFailedError, match="out of memory"):
        make_operator().execute(context)

    assert http.calls("POST") == []


def test_retry_with_a_finished_job_returns_without_submitting_or_polling(
    make_operator, make_context, http, sleeps
):
    http.statuses(JOB_ID, _finished())
    context = make_context({ID_KEY: JOB_ID})

    summary = make_operator().execute(context)

    _assert_summary(summary)
    assert http.calls("POST") == []
    assert sleeps.delays == []
    assert len(http.calls("GET")) <= 2


@pytest.mark.parametrize("old", [status_body("Failed", details="bad"), status_body("Cancelled"), 404])
def test_retry_with_a_failed_or_unknown_job_submits_a_new_one(
    make_operator, make_context, http, journal, old
):
    http.statuses(JOB_ID, old)
    http.submit(JOB_2)
    http.statuses(JOB_2, status_body("NotStarted"), _finished(JOB_2))
    http.start(JOB_2)
    context = make_context({ID_KEY: JOB_ID})

    summary = make_operator().execute(context)

    _assert_summary(summary, JOB_2)
    assert context["task_state_store"].data[ID_KEY] == JOB_2
    assert len(http.calls("POST", JOBS_URL)) == 1
    events = [e[:2] for e in journal]
    assert events.index(("store.set", ID_KEY)) < events.index(("http", "start"))
    assert not http.calls("POST", JOB_ID)


def test_retry_with_a_queued_job_this_operator_started_does_not_start_it_again(
    make_operator, make_context, http, journal
):
    # BES keeps a started job NotStarted while it waits in the queue.
    started = time.time() - 5
    http.statuses(JOB_ID, status_body("NotStarted"), status_body("NotStarted"), _finished())
    context = make_context({ID_KEY: JOB_ID, STARTED_KEY: started_record(started)})

    summary = make_operator().execute(context)

    _assert_summary(summary)
    assert not any(event[:2] == ("http", "start") for event in journal)
    assert context["task_state_store"].data[STARTED_KEY]["started_at"] == started
    assert summary["duration_seconds"] >= 5


def test_retry_with_a_not_started_job_starts_it(make_operator, make_context, http, journal):
    http.statuses(JOB_ID, status_body("NotStarted"), status_body("NotStarted"), _finished())
    http.start()
    context = make_context({ID_KEY: JOB_ID})

    summary = make_operator().execute(context)

    _assert_summary(summary)
    assert ("http", "start", job_url(suffix="/start")) in journal
    assert http.calls("POST", JOBS_URL) == []
    assert STARTED_KEY in context["task_state_store"].data


# -- clears of the DAG run -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "cancelled"),
    [(_finished(), False), (status_body("Running"), True), (status_body("NotStarted"), True)],
)
def test_a_clear_submits_a_new_job_and_cancels_the_old_one_if_it_still_runs(
    make_operator, make_context, http, journal, caplog, old, cancelled
):
    http.statuses(JOB_ID, old)  # asked once, to cancel it: a job of an earlier clear is not reattached to
    http.cancel(JOB_ID)
    http.submit(JOB_2)
    http.statuses(JOB_2, status_body("NotStarted"), _finished(JOB_2))
    http.start(JOB_2)
    stored = {
        ID_KEY: JOB_ID,
        CLEAR_KEY: {"job_id": JOB_ID, "clear_number": 0},
        STARTED_KEY: started_record(1.0),
    }
    context = make_context(stored, clear_number=1, try_number=2)

    summary = make_operator().execute(context)

    _assert_summary(summary, JOB_2)
    assert len(http.calls("POST", JOBS_URL)) == 1
    assert http.calls("POST", JOB_ID) == [] and len(http.calls("GET", JOB_ID)) == 1
    assert len(http.calls("DELETE", JOB_ID)) == (1 if cancelled else 0)
    data = context["task_state_store"].data
    assert data[ID_KEY] == JOB_2
    assert data[CLEAR_KEY] == {"job_id": JOB_2, "clear_number": 1}
    events = [e[:2] for e in journal]
    assert (
        events.index(("store.set", CLEAR_KEY))
        < events.index(("store.set", ID_KEY))
        < events.index(("http", "start"))
    )
    if cancelled:
        assert events.index(("http", "cancel")) < events.index(("http", "submit"))
        assert f"Cancelling BES job {JOB_ID} (still {old['StatusCode']})" in caplog.text
    else:
        assert "Cancelling" not in caplog.text


def test_a_clear_leaves_the_old_job_running_without_cancel_on_kill(make_operator, make_context, http):
    http.submit(JOB_2)
    http.statuses(JOB_2, status_body("NotStarted"), _finished(JOB_2))
    http.start(JOB_2)
    stored = {ID_KEY: JOB_ID, CLEAR_KEY: {"job_id": JOB_ID, "clear_number": 0}}

    summary = make_operator(cancel_on_kill=False).execute(make_context(stored, clear_number=1))

    _assert_summary(summary, JOB_2)
    assert http.calls(job_id=JOB_ID) == []


def test_a_clear_whose_old_job_is_gone_submits_a_new_job(make_operator, make_context, http):
    http.statuses(JOB_ID, 404)
    http.submit(JOB_2)
    http.statuses(JOB_2, status_body("NotStarted"), _finished(JOB_2))
    http.start(JOB_2)
    stored = {ID_KEY: JOB_ID, CLEAR_KEY: {"job_id": JOB_ID, "clear_number": 0}}

    summary = make_operator().execute(make_context(stored, clear_number=1))

    _assert_summary(summary, JOB_2)
    assert http.calls("DELETE", JOB_ID) == []


@pytest.mark.parametrize("clear_number", [0, 2])
def test_a_retry_of_the_same_clear_reattaches(make_operator, make_context, http, clear_number):
    http.statuses(JOB_ID, status_body("Running"), status_body("Running"), _finished())
    stored = {ID_KEY: JOB_ID, CLEAR_KEY: {"job_id": JOB_ID, "clear_number": clear_number}}
    context = make_context(stored, clear_number=clear_number, try_number=5)

    summary = make_operator().execute(context)

    _assert_summary(summary)
    assert http.calls("POST") == []
    assert context["task_state_store"].data[ID_KEY] == JOB_ID


@pytest.mark.parametrize(("clear_number", "reattaches"), [(0, True), (1, False)])
def test_a_job_stored_without_its_clear_number_is_this_clears_only_if_the_run_was_never_cleared(
    make_operator, make_context, http, clear_number, reattaches
):
    http.statuses(JOB_ID, _finished())
    http.submit(JOB_2)
    http.statuses(JOB_2, status_body("NotStarted"), _finished(JOB_2))
    http.start(JOB_2)

    summary = make_operator().execute(make_context({ID_KEY: JOB_ID}, clear_number=clear_number))

    _assert_summary(summary, JOB_ID if reattaches else JOB_2)
    assert len(http.calls("POST", JOBS_URL)) == (0 if reattaches else 1)


def test_a_stored_id_older_than_the_last_submission_is_not_reattached(make_operator, make_context, http):
    # The last try created JOB_2 and recorded it, then died before its id was saved: JOB_ID is older.
    http.statuses(JOB_ID, status_body("Running"))
    http.cancel(JOB_ID)
    http.submit(JOB_2)
    http.statuses(JOB_2, status_body("NotStarted"), _finished(JOB_2))
    http.start(JOB_2)
    stored = {ID_KEY: JOB_ID, CLEAR_KEY: {"job_id": JOB_2, "clear_number": 0}}

    summary = make_operator().execute(make_context(stored))

    _assert_summary(summary, JOB_2)
    assert http.calls("POST", JOB_ID) == []  # neither started nor reattached to; cancelled as it still ran
    assert len(http.calls("DELETE", JOB_ID)) == 1


# -- deferrable ------------------------------------------------------------------------------------


def test_deferrable_defers_with_a_deadline(make_operator, make_context, http):
    from airflow.providers.common.compat.sdk import TaskDeferred

    http.submit()
    http.statuses(JOB_ID, status_body("NotStarted"), status_body("Running"))
    http.start()
    context = make_context()

    with pytest.raises(TaskDeferred) as info:
        make_operator(deferrable=True, job_timeout=600, poll_interval=20, cancel_on_kill=False).execute(
            context
        )

    trigger = info.value.trigger
    assert isinstance(trigger, AzureMLBatchJobTrigger)
    assert info.value.method_name == "execute_complete"
    started = context["task_state_store"].data[STARTED_KEY]["started_at"]
    assert trigger.deadline == pytest.approx(started + 600)
    _, kwargs = trigger.serialize()
    assert kwargs == {
        "azureml_conn_id": CONN_ID,
        "job_id": JOB_ID,
        "poll_interval": 20.0,
        "deadline": trigger.deadline,
        "cancel_on_kill": False,
        "max_poll_interval": None,
        # The trigger's waits grow from the job's start, saved by the operator (and kept across retries).
        "started_at": started,
        "end_from_trigger": False,
    }
    assert context["task_state_store"].data[ID_KEY] == JOB_ID


def test_end_from_trigger_is_handed_to_the_trigger(make_operator, make_context, http):
    from airflow.providers.common.compat.sdk import TaskDeferred

    http.submit()
    http.statuses(JOB_ID, status_body("NotStarted"), status_body("Running"))
    http.start()

    with pytest.raises(TaskDeferred) as info:
        make_operator(deferrable=True, end_from_trigger=True).execute(make_context())

    assert info.value.trigger.serialize()[1]["end_from_trigger"] is True


def test_a_first_try_reads_the_job_start_from_the_store_once(make_operator, make_context, http):
    """Every task state store read is a round trip to Airflow's API server: the start is read once, not thrice."""
    from airflow.providers.common.compat.sdk import TaskDeferred

    http.submit()
    http.statuses(JOB_ID, status_body("NotStarted"), status_body("Running"))
    http.start()
    context = make_context()
    store, reads = context["task_state_store"], Counter()
    read = store.get
    store.get = lambda key: reads.update([key]) or read(key)

    with pytest.raises(TaskDeferred) as info:
        make_operator(deferrable=True, job_timeout=600).execute(context)

    # The job id: once to drop a job of an earlier clear, once by Airflow's mixin to reattach.
    assert reads == {ID_KEY: 2, STARTED_KEY: 1}
    started = store.data[STARTED_KEY]["started_at"]
    assert info.value.trigger.started_at == started
    assert info.value.trigger.deadline == pytest.approx(started + 600)


def test_deferrable_without_timeout_has_no_deadline(make_operator, make_context, http):
    from airflow.providers.common.compat.sdk import TaskDeferred

    http.submit()
    http.statuses(JOB_ID, status_body("NotStarted"), status_body("Running"))
    http.start()

    with pytest.raises(TaskDeferred) as info:
        make_operator(deferrable=True).execute(make_context())

    assert info.value.trigger.deadline is None


def test_deferrable_does_not_defer_a_job_that_already_ended(make_operator, make_context, http):
    http.submit()
    http.statuses(JOB_ID, status_body("NotStarted"), _finished())
    http.start()

    _assert_summary(make_operator(deferrable=True).execute(make_context()))


def _event(outcome: str, status: str | None, message: str | None = None) -> dict[str, Any]:
    return {"job_id": JOB_ID, "outcome": outcome, "status": status, "message": message}


def test_execute_complete_finished(make_operator, make_context, http):
    http.statuses(JOB_ID, _finished())
    context = make_context({STARTED_KEY: started_record(time.time() - 30)})

    summary = make_operator().execute_complete(context, _event("ended", "Finished"))

    _assert_summary(summary)
    assert summary["duration_seconds"] >= 30


@pytest.mark.parametrize("status", ["Failed", "Cancelled"])
def test_execute_complete_failed(make_operator, make_context, http, status):
    http.statuses(JOB_ID, status_body(status, details="Error 0001: no column"))

    with pytest.raises(BatchJobFailedError, match="Error 0001") as info:
        make_operator().execute_complete(make_context(), _event("ended", status, "Error 0001: no column"))
    assert info.value.status == status


def test_execute_complete_timed_out_cancels(make_operator, make_context, http, journal):
    http.statuses(JOB_ID, status_body("Running"))
    http.cancel()

    with pytest.raises(BatchJobTimeoutError):
        make_operator(job_timeout=60).execute_complete(make_context(), _event("timed_out", "Running", "late"))

    assert ("http", "cancel", job_url()) in journal


def test_execute_complete_timed_out_but_finished_meanwhile(make_operator, make_context, http, journal):
    http.statuses(JOB_ID, _finished())

    summary = make_operator().execute_complete(make_context(), _event("timed_out", "Running", "late"))

    _assert_summary(summary)
    assert not [e for e in journal if e[:2] == ("http", "cancel")]


def test_execute_complete_error_event(make_operator, make_context, http):
    with pytest.raises(AzureMLError, match="could not read"):
        make_operator().execute_complete(make_context(), _event("error", None, "could not read the job"))
    assert http.calls() == []


@pytest.mark.parametrize(
    "event",
    [
        None,
        {"job_id": JOB_ID, "outcome": "ended", "status": "Running"},
        {"outcome": "ended"},
        {"job_id": JOB_ID, "outcome": "done"},
    ],
)
def test_execute_complete_rejects_invalid_events(make_operator, make_context, http, event):
    with pytest.raises(AzureMLError):
        make_operator().execute_complete(make_context(), event)
    assert http.calls() == []


# -- kill ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [204, 200, 400, 404, 409])
def test_on_kill_cancels_and_tolerates_an_ended_job(make_operator, http, journal, status):
    op = make_operator()
    op.job_id = JOB_ID
    http.cancel(status=status)

    op.on_kill()

    assert ("http", "cancel", job_url()) in journal


def test_on_kill_after_a_run_cancels_that_job(make_operator, make_context, http, journal):
    http.submit()
    http.statuses(JOB_ID, status_body("NotStarted"), _finished())
    http.start()
    http.cancel(status=400)
    op = make_operator()
    op.execute(make_context())

    op.on_kill()

    assert journal[-1] == ("http", "cancel", job_url())


def test_on_kill_without_a_job_or_without_cancel_on_kill_does_nothing(make_operator, http):
    make_operator().on_kill()
    op = make_operator(cancel_on_kill=False)
    op.job_id = JOB_ID
    op.on_kill()

    assert http.calls() == []


# -- construction -------------------------------------------------------------------------------------


def test_constructor_touches_nothing(monkeypatch, rsps):
    monkeypatch.delenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", raising=False)
    op = AzureMLBatchExecutionOperator(
        task_id="t",
        outputs={"output1": "{{ var.value.not_rendered }}"},
        azureml_conn_id=CONN_ID,
        job_timeout=None,
    )
    assert op.outputs == {"output1": "{{ var.value.not_rendered }}"}
    assert len(rsps.calls) == 0
    assert set(op.template_fields) >= {"inputs", "outputs", "global_parameters"}


def test_request_errors_surface_before_anything_is_submitted(make_operator, make_context, http, journal):
    # The service would accept a submission: any call the operator made would be recorded.
    http.submit()
    http.start()
    op = make_operator(outputs={})

    with pytest.raises(AzureMLError, match="at least one output"):
        op.execute(make_context())

    # No HTTP call at all, and nothing stored or pushed (no job id to resume from).
    assert http.calls() == []
    assert journal == []
    assert op.job_id is None


def test_deferrable_retry_reattaches_and_defers_without_submitting(make_operator, make_context, http):
    from airflow.providers.common.compat.sdk import TaskDeferred

    http.statuses(JOB_ID, status_body("Running"))
    started = time.time() - 120
    context = make_context({ID_KEY: JOB_ID, STARTED_KEY: started_record(started)})

    with pytest.raises(TaskDeferred) as info:
        make_operator(deferrable=True, job_timeout=600).execute(context)

    assert info.value.trigger.job_id == JOB_ID
    assert info.value.trigger.deadline == pytest.approx(started + 600)
    assert http.calls("POST") == []


def _cannot_start(state: str = "Running") -> dict[str, Any]:
    return {
        "error": {
            "code": "CannotStartJob",
            "message": f"The job cannot be started because it is in {state} state.",
        }
    }


def test_retry_whose_earlier_start_reached_the_service_treats_cannot_start_as_started(
    make_operator, make_context, http, journal
):
    # The earlier try's start was processed, but the try died before it saved the start time.
    http.statuses(
        JOB_ID, status_body("NotStarted"), status_body("NotStarted"), status_body("Running"), _finished()
    )
    http.mock.add("POST", job_url(suffix="/start"), status=400, json=_cannot_start())
    context = make_context({ID_KEY: JOB_ID})

    summary = make_operator().execute(context)

    _assert_summary(summary)
    assert http.calls("POST", JOBS_URL) == [], "no second job"
    assert len(http.calls("POST", JOB_ID)) == 1, "one start, not repeated"
    assert STARTED_KEY in context["task_state_store"].data


def test_lost_start_answer_retried_into_cannot_start_is_started(make_operator, make_context, http):
    http.submit()
    http.statuses(JOB_ID, status_body("NotStarted"), status_body("Running"), _finished())
    http.mock.add("POST", job_url(suffix="/start"), status=503, json={"error": {"code": "RequestThrottled"}})
    http.mock.add("POST", job_url(suffix="/start"), status=400, json=_cannot_start())
    context = make_context()

    _assert_summary(make_operator().execute(context))
    assert len(http.calls("POST", JOBS_URL)) == 1
    assert STARTED_KEY in context["task_state_store"].data


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (400, {"error": {"code": "BadArgument", "message": "The job cannot be started: bad input."}}),
        (409, _cannot_start()),
    ],
    ids=["other-400", "cannot-start-not-400"],
)
def test_other_start_refusals_still_fail(make_operator, make_context, http, status, body):
    from airflow_provider_amlretrain.exceptions import AzureMLApiError

    http.submit()
    # Were the refusal taken for a start, the job would be polled and end Failed (not an API error).
    http.statuses(JOB_ID, status_body("NotStarted"), status_body("Failed", details="never started"))
    http.mock.add("POST", job_url(suffix="/start"), status=status, json=body)
    context = make_context()

    with pytest.raises(AzureMLApiError):
        make_operator().execute(context)
    assert STARTED_KEY not in context["task_state_store"].data


def test_the_sas_of_a_wasb_output_is_minted_for_its_blob_in_the_attempt_folder(
    make_operator, make_context, http
):
    from types import SimpleNamespace

    from tests.unit.test_batch_request import _assert_verifies

    http.submit()
    http.statuses(JOB_ID, status_body("NotStarted"), _finished())
    http.start()

    make_operator().execute(make_context(try_number=2))

    body = json.loads(next(c.request.body for c in http.mock.calls if c.request.url == JOBS_URL))
    output2 = body["Outputs"]["output2"]
    assert output2["RelativeLocation"] == "models/runs/x/try-2/evaluation.csv"
    minted = SimpleNamespace(connection_string=None, sas_token=output2["SasBlobToken"])
    _assert_verifies(
        minted, "acct", ACCOUNT_KEY, "models/runs/x/try-2/evaluation.csv"
    )  # the blob the job writes
