"""The BES hooks against a mocked transport: requests, parsing, error mapping, retries."""

from __future__ import annotations

import asyncio
import json

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_amlretrain.api.bes import BesApi
from airflow_provider_amlretrain.api.states import BatchJobStatus
from airflow_provider_amlretrain.exceptions import (
    AzureMLApiError,
    AzureMLAuthError,
    AzureMLNotFoundError,
    AzureMLRequestRejectedError,
    AzureMLResponseError,
    AzureMLTransportError,
)
from tests.unit.support import (
    API_KEY,
    BASE,
    JOB_ID,
    JOBS_URL,
    SAS_SIG,
    finished_results,
    job_url,
    status_body,
)

BODY = {
    "Inputs": {
        "input1": {
            "ConnectionString": "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=k;",
            "RelativeLocation": "c/train.csv",
        }
    },
    "Outputs": {
        "output1": {
            "ConnectionString": "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=k;",
            "RelativeLocation": "c/m.ilearner",
        }
    },
    "GlobalParameters": {},
}


def _auth_ok(request: dict) -> None:
    headers = {k.lower(): v for k, v in request["headers"].items()}
    assert headers["authorization"] == f"Bearer {API_KEY}"
    assert headers["content-type"] == "application/json"


# -- submit / start ----------------------------------------------------------------------------------


def test_submit_returns_job_id_from_json_string(hook, rsps):
    rsps.add("POST", JOBS_URL, json=JOB_ID)

    assert hook.submit_job(BODY) == JOB_ID

    (call,) = rsps.calls
    assert call.request.url == JOBS_URL
    assert json.loads(call.request.body) == BODY
    _auth_ok({"headers": dict(call.request.headers)})


def test_async_call_sends_the_same_submit_request(async_hook, aio):
    aio.post(JOBS_URL, status=200, body=json.dumps(JOB_ID))

    answer = asyncio.run(async_hook.acall(BesApi(BASE).submit(BODY)))

    assert BesApi.parse_job_id(answer) == JOB_ID
    (((method, url), calls),) = aio.requests.items()
    assert (method, str(url)) == ("POST", JOBS_URL)
    assert json.loads(calls[0].kwargs["data"]) == BODY
    assert calls[0].kwargs["headers"]["Authorization"] == f"Bearer {API_KEY}"


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param({"json": {"JobId": JOB_ID}}, id="json-object"),
        pytest.param({"json": [JOB_ID]}, id="json-list"),
        pytest.param({"json": 12345678901}, id="json-number"),
        pytest.param({"json": None}, id="json-null"),
        pytest.param({"json": "not a job id!"}, id="json-string-not-an-id"),
        pytest.param({"body": "<html>Service Unavailable</html>"}, id="not-json"),
        pytest.param({"body": ""}, id="empty"),
    ],
)
def test_submit_rejects_an_answer_that_is_not_a_job_id(hook, rsps, answer):
    rsps.add("POST", JOBS_URL, status=200, **answer)

    with pytest.raises(AzureMLResponseError):
        hook.submit_job(BODY)


def test_start_posts_an_empty_body_to_the_start_url(hook, rsps):
    rsps.add("POST", job_url(suffix="/start"), status=204)

    hook.start_job(JOB_ID)

    (call,) = rsps.calls
    assert call.request.method == "POST"
    assert call.request.url == f"{BASE}/jobs/{JOB_ID}/start?api-version=2.0"
    assert not call.request.body
    _auth_ok({"headers": dict(call.request.headers)})


@pytest.mark.parametrize("status", [200, 202, 204])
def test_start_accepts_the_documented_success_codes(hook, rsps, status):
    rsps.add("POST", job_url(suffix="/start"), status=status)
    assert hook.start_job(JOB_ID) is True


CANNOT_START = {
    "error": {
        "code": "CannotStartJob",
        "message": "The job cannot be started because it is in Running state.",
    }
}


def test_already_started_is_started_for_the_callers_own_job_and_an_error_otherwise(hook, rsps):
    from airflow_provider_amlretrain.exceptions import AzureMLApiError

    rsps.add("POST", job_url(suffix="/start"), status=400, json=CANNOT_START)
    assert hook.start_job(JOB_ID, own_job=True) is False, (
        "an earlier start of its own job reached the service"
    )
    with pytest.raises(AzureMLApiError, match="CannotStartJob"):
        hook.start_job(JOB_ID)  # someone else's job: who started it is not known


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (400, {"error": {"code": "BadArgument", "message": "The job cannot be started: bad input."}}),
        (409, CANNOT_START),
    ],
    ids=["other-400", "cannot-start-not-400"],
)
def test_other_start_refusals_fail_even_for_the_callers_own_job(hook, rsps, status, body):
    from airflow_provider_amlretrain.exceptions import AzureMLApiError

    rsps.add("POST", job_url(suffix="/start"), status=status, json=body)
    with pytest.raises(AzureMLApiError):
        hook.start_job(JOB_ID, own_job=True)


def test_job_ids_that_could_change_the_url_are_refused_before_sending(hook, rsps):
    from airflow_provider_amlretrain.exceptions import AzureMLConfigError

    for bad in ("../../other", "abc", "a" * 32 + "/start", ""):
        with pytest.raises(AzureMLConfigError):
            hook.get_job(bad)
    assert len(rsps.calls) == 0


# -- get / cancel URLs, both transports ------------------------------------------------------------


def test_get_sends_get_with_api_version_and_bearer_key(transport):
    transport.add("GET", job_url(), json_body=status_body("Running"))

    state = transport.run("get_job", JOB_ID)

    assert state.job_id == JOB_ID
    assert state.status is BatchJobStatus.RUNNING
    (request,) = transport.sent()
    assert request["method"] == "GET"
    assert request["url"] == f"{BASE}/jobs/{JOB_ID}?api-version=2.0"
    _auth_ok(request)


@pytest.mark.parametrize("status", [200, 202, 204])
def test_cancel_sends_delete_with_api_version_and_bearer_key(transport, status):
    transport.add("DELETE", job_url(), status=status)

    transport.run("cancel_job", JOB_ID)

    (request,) = transport.sent()
    assert request["method"] == "DELETE"
    assert request["url"] == f"{BASE}/jobs/{JOB_ID}?api-version=2.0"
    _auth_ok(request)


# -- status parsing ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("NotStarted", BatchJobStatus.NOT_STARTED),
        ("Running", BatchJobStatus.RUNNING),
        ("Failed", BatchJobStatus.FAILED),
        ("Cancelled", BatchJobStatus.CANCELLED),
        ("Finished", BatchJobStatus.FINISHED),
        (0, BatchJobStatus.NOT_STARTED),
        (1, BatchJobStatus.RUNNING),
        (2, BatchJobStatus.FAILED),
        (3, BatchJobStatus.CANCELLED),
        (4, BatchJobStatus.FINISHED),
        ("4", BatchJobStatus.FINISHED),
        ("running", BatchJobStatus.RUNNING),
    ],
)
def test_get_parses_every_status_code(transport, raw, expected):
    transport.add("GET", job_url(), json_body=status_body(raw))

    assert transport.run("get_job", JOB_ID).status is expected


@pytest.mark.parametrize(
    "raw",
    [5, -1, "Succeeded", "Completed", "", None, True, False, 4.0, {"Code": "Finished"}, ["Finished"]],
)
def test_get_refuses_unknown_status_codes(transport, raw):
    transport.add("GET", job_url(), json_body=status_body(raw))

    with pytest.raises(AzureMLResponseError, match="StatusCode"):
        transport.run("get_job", JOB_ID)


@pytest.mark.parametrize("body", [{"Results": {}}, [], "Finished", None])
def test_get_refuses_an_answer_without_status_code(transport, body):
    transport.add("GET", job_url(), json_body=body)

    with pytest.raises(AzureMLResponseError):
        transport.run("get_job", JOB_ID)


@pytest.mark.parametrize("status", list(BatchJobStatus))
def test_results_are_read_only_when_finished(transport, status):
    transport.add("GET", job_url(), json_body=status_body(status.value, results=finished_results()))

    state = transport.run("get_job", JOB_ID)

    if status is BatchJobStatus.FINISHED:
        assert set(state.results) == {"output1", "output2"}
        model = state.results["output1"]
        assert model.relative_location == "models/runs/x/model.ilearner"
        assert model.uri == "https://acct.blob.core.windows.net/models/runs/x/model.ilearner"
        assert model.signed_url.endswith(f"sig={SAS_SIG}&se=2030-01-01&sp=r")
        assert SAS_SIG not in json.dumps(state.to_summary())
    else:
        assert state.results == {}


def test_finished_without_results_has_no_outputs(transport):
    transport.add("GET", job_url(), json_body={"StatusCode": "Finished", "Results": None})

    state = transport.run("get_job", JOB_ID)

    assert state.status is BatchJobStatus.FINISHED
    assert state.results == {}


def test_failed_job_carries_its_details(transport):
    details = "Error 0003: Inputs 'Dataset' is null or empty. (module: Train Model)"
    transport.add("GET", job_url(), json_body=status_body("Failed", details=details))

    state = transport.run("get_job", JOB_ID)

    assert state.status is BatchJobStatus.FAILED
    assert state.details == details
    assert state.to_summary()["details"] == details


def test_malformed_results_are_a_response_error(transport):
    transport.add(
        "GET", job_url(), json_body={"StatusCode": "Finished", "Results": {"output1": {"BaseLocation": "x"}}}
    )

    with pytest.raises(AzureMLResponseError, match="RelativeLocation"):
        transport.run("get_job", JOB_ID)


# -- error mapping -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error_class"),
    [(401, AzureMLAuthError), (403, AzureMLAuthError), (404, AzureMLNotFoundError)],
)
def test_client_errors_map_to_typed_exceptions_without_retry(transport, sleeps, status, error_class):
    transport.add("GET", job_url(), status=status, json_body={"error": {"code": "Nope", "message": "no"}})

    with pytest.raises(error_class) as info:
        transport.run("get_job", JOB_ID)

    assert info.value.status_code == status
    assert info.value.method == "GET"
    assert info.value.url == f"{BASE}/jobs/{JOB_ID}"
    assert len(transport.sent()) == 1
    assert sleeps.delays == []


def test_400_error_body_becomes_an_api_error_with_its_data(transport, sleeps):
    transport.add(
        "GET",
        job_url(),
        status=400,
        json_body={"error": {"code": "BadArgument", "message": "Output 'output3' is not defined."}},
        headers={"x-ms-request-id": "req-42"},
    )

    with pytest.raises(AzureMLApiError) as info:
        transport.run("get_job", JOB_ID)

    err = info.value
    assert type(err) is AzureMLRequestRejectedError
    assert isinstance(err, AirflowFailException)  # a refused request is not retried by Airflow either
    assert (err.status_code, err.error_code, err.request_id) == (400, "BadArgument", "req-42")
    assert err.service_message == "Output 'output3' is not defined."
    assert "BadArgument" in str(err) and "output3" in str(err) and "req-42" in str(err)
    assert "?api-version" not in str(err)
    assert len(transport.sent()) == 1
    assert sleeps.delays == []


def test_plain_text_error_body_is_kept_in_the_message(transport):
    transport.add("GET", job_url(), status=400, body="Bad Request: malformed job id")

    with pytest.raises(AzureMLApiError, match="malformed job id") as info:
        transport.run("get_job", JOB_ID)
    assert info.value.error_code is None


# -- retries -------------------------------------------------------------------------------------------


def test_429_honours_retry_after(transport, sleeps):
    transport.add("GET", job_url(), status=429, headers={"Retry-After": "7"})
    transport.add("GET", job_url(), json_body=status_body("Running"))

    assert transport.run("get_job", JOB_ID).status is BatchJobStatus.RUNNING

    assert sleeps.delays == [7.0]
    assert len(transport.sent()) == 2


def test_a_status_answer_carries_its_retry_after(transport, sleeps):
    transport.add("GET", job_url(), json_body=status_body("Running"), headers={"Retry-After": "45"})
    transport.add("GET", job_url(), json_body=status_body("Running"))

    assert transport.run("get_job", JOB_ID).retry_after == 45.0
    assert transport.run("get_job", JOB_ID).retry_after is None
    assert sleeps.delays == []  # a 200 is not retried: the waiter decides what to do with the hint


def test_the_sync_wait_honours_a_status_answers_retry_after(hook, rsps, sleeps):
    from airflow_provider_amlretrain.api.polling import JobPollingRules

    rsps.add("GET", job_url(), json=status_body("Running"), headers={"Retry-After": "33"})
    rsps.add("GET", job_url(), json=status_body("Running"))
    rsps.add("GET", job_url(), json=status_body("Finished", results={}))

    state = hook.wait_for_job(JOB_ID, JobPollingRules(poll_interval=4))

    assert state.status is BatchJobStatus.FINISHED
    assert sleeps.delays[0] == 33.0
    assert sleeps.delays[1] == pytest.approx(4.0, abs=0.5)  # back to the policy (the wait began just now)


def test_the_sync_wait_grows_from_when_a_queued_job_starts_running(hook, rsps, sleeps):
    import time

    from airflow_provider_amlretrain.api.polling import JobPollingRules

    for status in ("NotStarted", "Running", "Running"):
        rsps.add("GET", job_url(), json=status_body(status))
    rsps.add("GET", job_url(), json=status_body("Finished", results={}))

    # Started 100 s ago, queued since: half the elapsed time is 50 s until the job is seen running.
    hook.wait_for_job(JOB_ID, JobPollingRules(poll_interval=4, started_at=time.time() - 100))

    assert sleeps.delays[0] == pytest.approx(50, abs=1)
    assert sleeps.delays[1:] == [pytest.approx(4.0, abs=0.5)] * 2


def test_retry_after_is_capped(transport, sleeps):
    transport.add("GET", job_url(), status=503, headers={"Retry-After": "86400"})
    transport.add("GET", job_url(), json_body=status_body("Running"))

    transport.run("get_job", JOB_ID)

    assert sleeps.delays == [120.0]


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_retryable_statuses_are_retried(transport, sleeps, status):
    transport.add("GET", job_url(), status=status, body="busy")
    transport.add("GET", job_url(), json_body=status_body("Finished"))

    assert transport.run("get_job", JOB_ID).status is BatchJobStatus.FINISHED

    assert len(transport.sent()) == 2
    assert sleeps.delays == [0.0]  # retry_backoff: 0 in the test connection


@pytest.mark.parametrize("kind", ["connection", "timeout"])
def test_transport_failures_are_retried(transport, sleeps, kind):
    exc = transport.connection_error() if kind == "connection" else transport.timeout_error()
    transport.add("GET", job_url(), exc=exc)
    transport.add("GET", job_url(), json_body=status_body("Running"))

    assert transport.run("get_job", JOB_ID).status is BatchJobStatus.RUNNING
    assert sleeps.delays == [0.0]


def test_gives_up_after_max_attempts_with_the_last_error(transport, sleeps):
    for _ in range(3):
        transport.add("GET", job_url(), status=503, body="busy")
    transport.add(
        "GET", job_url(), status=500, json_body={"error": {"code": "InternalError", "message": "boom"}}
    )

    with pytest.raises(AzureMLApiError) as info:
        transport.run("get_job", JOB_ID)

    assert info.value.status_code == 500
    assert info.value.error_code == "InternalError"
    assert len(transport.sent()) == 4  # max_retries: 3 in the test connection
    assert sleeps.delays == [0.0, 0.0, 0.0]


def test_gives_up_on_connection_errors_with_a_transport_error(transport, sleeps):
    for _ in range(4):
        transport.add("GET", job_url(), exc=transport.connection_error())

    with pytest.raises(AzureMLTransportError, match="after 4 attempt") as info:
        transport.run("get_job", JOB_ID)

    assert info.value.url == f"{BASE}/jobs/{JOB_ID}"
    assert len(sleeps.delays) == 3


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422])
def test_non_retryable_statuses_fail_at_once(transport, sleeps, status):
    transport.add("GET", job_url(), status=status, body="no")
    transport.add("GET", job_url(), json_body=status_body("Running"))

    with pytest.raises(AzureMLApiError):
        transport.run("get_job", JOB_ID)

    assert len(transport.sent()) == 1
    assert sleeps.delays == []


def test_backoff_doubles_between_retries(monkeypatch, rsps, sleeps):
    from airflow_provider_amlretrain.api.retry import RetryPolicy
    from airflow_provider_amlretrain.hooks.studio import AzureMLStudioHook

    hook = AzureMLStudioHook(
        "azureml_test", retry_policy=RetryPolicy(max_attempts=4, backoff_base=2, jitter=False)
    )
    from tests.unit.support import set_connection

    set_connection(monkeypatch, "azureml_test", conn_type="azureml_studio", host=BASE, password=API_KEY)
    hook._sleep = sleeps
    for _ in range(3):
        rsps.add("GET", job_url(), status=502)
    rsps.add("GET", job_url(), json=status_body("Running"))

    hook.get_job(JOB_ID)

    assert sleeps.delays == [2.0, 4.0, 8.0]


# -- cancel tolerance ------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [404, 400, 409])
def test_cancel_tolerates_a_job_that_is_gone_or_ended(transport, sleeps, status):
    transport.add(
        "DELETE",
        job_url(),
        status=status,
        json_body={"error": {"code": "JobNotCancellable", "message": "ended"}},
    )

    assert transport.run("cancel_job", JOB_ID) is None
    assert len(transport.sent()) == 1


@pytest.mark.parametrize("status", [401, 403])
def test_cancel_still_raises_on_auth_errors(transport, status):
    transport.add("DELETE", job_url(), status=status)

    with pytest.raises(AzureMLAuthError):
        transport.run("cancel_job", JOB_ID)


def test_cancel_raises_after_retries_on_server_errors(transport, sleeps):
    for _ in range(4):
        transport.add("DELETE", job_url(), status=500)

    with pytest.raises(AzureMLApiError) as info:
        transport.run("cancel_job", JOB_ID)
    assert info.value.status_code == 500
    assert len(sleeps.delays) == 3


# -- misc --------------------------------------------------------------------------------------------


def test_job_url_has_no_key(hook):
    assert hook.job_url(JOB_ID) == f"{BASE}/jobs/{JOB_ID}?api-version=2.0"
    assert API_KEY not in hook.job_url(JOB_ID)


@pytest.mark.parametrize(
    ("answer", "ok"),
    [
        ({"status": 404, "json": {"error": {"code": "JobNotFound", "message": "no job"}}}, True),
        ({"status": 404, "json": {"error": {"code": "WebServiceNotFound", "message": "no service"}}}, False),
        ({"status": 401, "json": {"error": {"code": "Unauthorized", "message": "bad key"}}}, False),
    ],
)
def test_test_connection(hook, rsps, answer, ok):
    rsps.add("GET", job_url("0" * 32), **answer)

    result, message = hook.test_connection()

    assert result is ok
    assert API_KEY not in message


def test_request_timeout_extra_reaches_the_transport(hook, rsps):
    rsps.add("GET", job_url(), json=status_body("Running"))
    hook.get_job(JOB_ID)
    assert rsps.calls[0].request.req_kwargs["timeout"] == (5.0, 5.0)  # (connect, read)


# -- requests that cannot be sent ----------------------------------------------------------------------


@pytest.mark.parametrize("url", ["notaurl/jobs", "http://", "ftp://example.com/jobs"])
def test_a_malformed_url_is_a_config_error_naming_the_host_to_fix(hook, rsps, sleeps, url):
    from airflow_provider_amlretrain.api.http import ApiRequest
    from airflow_provider_amlretrain.exceptions import AzureMLConfigError

    with pytest.raises(
        AzureMLConfigError, match=r"Could not get job: GET .* cannot be sent .*connection's host"
    ):
        hook.call(ApiRequest("GET", url, operation="get job"))
    assert sleeps.delays == [], "a request that cannot be sent is not retried"


def test_a_malformed_url_is_a_config_error_on_the_async_path_too(async_hook):
    from airflow_provider_amlretrain.api.http import ApiRequest
    from airflow_provider_amlretrain.exceptions import AzureMLConfigError

    with pytest.raises(AzureMLConfigError, match=r"Could not get job: GET notaurl/jobs cannot be sent"):
        asyncio.run(async_hook.acall(ApiRequest("GET", "notaurl/jobs", operation="get job")))
