"""The azure-core transport: what is repeated (and what never is), the shared async client, redacted logs."""

from __future__ import annotations

import asyncio
import logging

import pytest

from airflow_provider_amlretrain.api.bes import BesApi
from airflow_provider_amlretrain.api.http import ApiRequest
from airflow_provider_amlretrain.api.states import BatchJobStatus
from airflow_provider_amlretrain.exceptions import AzureMLApiError, AzureMLTransportError
from airflow_provider_amlretrain.hooks import async_clients
from airflow_provider_amlretrain.triggers.batch_job import AzureMLBatchJobTrigger
from tests.unit.support import API_KEY, BASE, CONN_ID, JOB_ID, JOBS_URL, SAS_SIG, job_url, status_body

BODY = {"Inputs": {}, "Outputs": {}, "GlobalParameters": {}}


def _read_timeout(transport):
    """A timeout while waiting for the answer: the request was sent."""
    if transport.kind == "sync":
        import requests

        return requests.ReadTimeout("Read timed out. (read timeout=5)")
    return TimeoutError()


def _hung_up(transport):
    """The server closed the connection after the request went out."""
    if transport.kind == "sync":
        import requests
        from urllib3.exceptions import ProtocolError

        return requests.ConnectionError(
            ProtocolError("Connection aborted.", ConnectionResetError(104, "reset"))
        )
    import aiohttp

    return aiohttp.ServerDisconnectedError()


def _refused(transport):
    """The connection could not be made: nothing was sent."""
    if transport.kind == "sync":
        import requests

        return requests.ConnectionError(
            "Failed to establish a new connection: [Errno 111] Connection refused"
        )
    import aiohttp
    from aiohttp.client_reqrep import ConnectionKey

    key = ConnectionKey("ussouthcentral.services.azureml.net", 443, True, True, None, None, None, None)
    return aiohttp.ClientConnectorError(key, ConnectionRefusedError(111, "Connection refused"))


def _submit(transport):
    """Send the BES submit request (the async hook has no submit method: through ``acall``)."""
    request = BesApi(BASE).submit(BODY)
    if transport.kind == "sync":
        return transport.hook.call(request)
    return asyncio.run(transport.hook.acall(request))


# -- idempotent requests -------------------------------------------------------------------------------


def test_get_is_retried_on_503_after_its_retry_after(transport, sleeps):
    transport.add("GET", job_url(), status=503, headers={"Retry-After": "3"}, body="RequestThrottled")
    transport.add("GET", job_url(), json_body=status_body("Running"))

    assert transport.run("get_job", JOB_ID).status is BatchJobStatus.RUNNING

    assert sleeps.delays == [3.0]
    assert len(transport.sent()) == 2


def test_a_retry_after_on_a_final_answer_does_not_make_it_retryable(transport, sleeps):
    transport.add("GET", job_url(), status=400, headers={"Retry-After": "3"}, body="bad")
    transport.add("GET", job_url(), json_body=status_body("Running"))

    with pytest.raises(AzureMLApiError):
        transport.run("get_job", JOB_ID)

    assert len(transport.sent()) == 1
    assert sleeps.delays == []


def test_get_is_retried_after_a_read_timeout(transport, sleeps):
    transport.add("GET", job_url(), exc=_read_timeout(transport))
    transport.add("GET", job_url(), json_body=status_body("Running"))

    assert transport.run("get_job", JOB_ID).status is BatchJobStatus.RUNNING
    assert len(transport.sent()) == 2


# -- submit: never repeated once it may have reached the service --------------------------------------


@pytest.mark.parametrize("failure", [_read_timeout, _hung_up], ids=["read-timeout", "hung-up"])
def test_submit_is_not_repeated_after_it_may_have_been_sent(transport, sleeps, failure):
    transport.add("POST", JOBS_URL, exc=failure(transport))
    transport.add("POST", JOBS_URL, json_body=JOB_ID)

    with pytest.raises(AzureMLTransportError, match="may have processed the request, so it was not repeated"):
        _submit(transport)

    assert len(transport.sent()) == 1
    assert sleeps.delays == []


@pytest.mark.parametrize("status", [500, 502, 504, 408])
def test_submit_is_not_repeated_after_a_server_error(transport, sleeps, status):
    transport.add(
        "POST", JOBS_URL, status=status, json_body={"error": {"code": "InternalError", "message": "boom"}}
    )
    transport.add("POST", JOBS_URL, json_body=JOB_ID)

    with pytest.raises(
        AzureMLApiError, match=f"answered {status} InternalError.*was not repeated automatically"
    ):
        _submit(transport)

    assert len(transport.sent()) == 1
    assert sleeps.delays == []


@pytest.mark.parametrize("status", [429, 503])
def test_submit_is_repeated_after_a_throttling_answer(transport, sleeps, status):
    transport.add("POST", JOBS_URL, status=status, headers={"Retry-After": "2"}, body="RequestThrottled")
    transport.add("POST", JOBS_URL, json_body=JOB_ID)

    assert _submit(transport) == JOB_ID

    assert len(transport.sent()) == 2
    assert sleeps.delays == [2.0]


def test_submit_is_repeated_after_a_connect_error(transport, sleeps):
    transport.add("POST", JOBS_URL, exc=_refused(transport))
    transport.add("POST", JOBS_URL, json_body=JOB_ID)

    assert _submit(transport) == JOB_ID

    assert len(transport.sent()) == 2
    assert sleeps.delays == [0.0]


def test_start_is_repeated_after_a_read_timeout_its_repeat_is_refused_not_run_twice(hook, rsps, sleeps):
    # A start is safe to send again: the service refuses a second start (400 CannotStartJob), and the
    # BES operator takes that answer as "already started" for its own job.
    import requests

    rsps.add("POST", job_url(suffix="/start"), body=requests.ReadTimeout("Read timed out."))
    rsps.add("POST", job_url(suffix="/start"), status=200)

    hook.start_job(JOB_ID)
    assert len(rsps.calls) == 2


def test_an_unsendable_submit_is_a_config_error_not_a_maybe_processed_one(hook, sleeps):
    from airflow_provider_amlretrain.exceptions import AzureMLConfigError

    with pytest.raises(AzureMLConfigError, match="cannot be sent"):
        hook.call(ApiRequest("POST", "notaurl/jobs", json_body=BODY, operation="submit BES job"))
    assert sleeps.delays == []


# -- the shared async client ------------------------------------------------------------------------------


async def test_two_triggers_on_one_loop_share_one_client_closed_after_both(azureml_conn, aio, monkeypatch):
    built: list = []
    closed: list = []
    users_seen: list[int] = []
    original = async_clients.build_async_client

    def recording_build(settings):
        client = original(settings)
        close = client.close

        async def recording_close():
            closed.append(client)
            await close()

        client.close = recording_close
        built.append(client)
        return client

    monkeypatch.setattr(async_clients, "build_async_client", recording_build)
    other = "fedcba9876543210fedcba9876543210"
    for job in (JOB_ID, other):
        aio.get(job_url(job), payload=status_body("Running"))
        aio.get(job_url(job), payload=status_body("Finished"))

    hooks = []
    both_polling = asyncio.Barrier(2)
    original_hook = AzureMLBatchJobTrigger._hook

    def _hook(self):
        hook = original_hook(self)

        async def asleep(seconds):
            await both_polling.wait()  # each trigger's first wait ends when both have polled once
            users_seen.append(async_clients.SHARED_CLIENTS.users(hook._lease))

        hook._asleep = asleep
        hooks.append(hook)
        return hook

    monkeypatch.setattr(AzureMLBatchJobTrigger, "_hook", _hook)

    async def event(job):
        return [
            e
            async for e in AzureMLBatchJobTrigger(azureml_conn_id=CONN_ID, job_id=job, poll_interval=1).run()
        ]

    first, second = await asyncio.gather(event(JOB_ID), event(other))

    assert first[0].payload["status"] == second[0].payload["status"] == "Finished"
    assert len(built) == 1, "both triggers polled through one client"
    assert max(users_seen) == 2
    assert closed == built, "the last trigger to end closed the client"
    key = hooks[0].async_client_key(await hooks[0].ahttp_settings())
    assert async_clients.SHARED_CLIENTS.users(key) == 0


async def test_a_trigger_that_fails_still_releases_the_client(azureml_conn, aio, monkeypatch):
    aio.get(job_url(), status=401, body="no")
    trigger = AzureMLBatchJobTrigger(azureml_conn_id=CONN_ID, job_id=JOB_ID, poll_interval=1)
    hook = trigger._hook()
    monkeypatch.setattr(AzureMLBatchJobTrigger, "_hook", lambda self: hook)

    events = [e async for e in trigger.run()]

    assert events[0].payload["outcome"] == "error"
    assert async_clients.SHARED_CLIENTS.users(hook.async_client_key(await hook.ahttp_settings())) == 0


async def test_clients_are_per_event_loop(azureml_conn):
    from airflow_provider_amlretrain.hooks.studio import AzureMLStudioAsyncHook

    hook = AzureMLStudioAsyncHook(azureml_conn_id=CONN_ID)
    settings = await hook.ahttp_settings()
    key = hook.async_client_key(settings)
    here = async_clients.SHARED_CLIENTS.acquire(key, lambda: async_clients.build_async_client(settings))

    def elsewhere():
        async def take():
            client = async_clients.SHARED_CLIENTS.acquire(
                key, lambda: async_clients.build_async_client(settings)
            )
            await async_clients.SHARED_CLIENTS.release(key)
            return client

        return asyncio.run(take())

    try:
        assert await asyncio.to_thread(elsewhere) is not here
    finally:
        await async_clients.SHARED_CLIENTS.release(key)


# -- logging -----------------------------------------------------------------------------------------------


def test_http_log_lines_carry_no_key_and_no_sas(hook, rsps, caplog):
    caplog.set_level(logging.DEBUG)
    sas_url = f"{BASE}/jobs?api-version=2.0&sv=2020-08-04&sr=b&sig={SAS_SIG}&se=2030-01-01&sp=r"
    rsps.add(
        "GET",
        sas_url,
        json=status_body("Running"),
        headers={"x-ms-request-id": "req-1", "Set-Cookie": API_KEY},
    )

    hook.call(ApiRequest("GET", sas_url, operation="get job"))

    lines = [r.getMessage() for r in caplog.records if r.name == "airflow_provider_amlretrain.http"]
    text = "\n".join(lines) + repr([r.__dict__ for r in caplog.records])
    assert any("Request URL" in line for line in lines), "the request was logged"
    assert "api-version=2.0" in text and "req-1" in text
    assert API_KEY not in text and SAS_SIG not in text
    assert "sig=REDACTED" in text and "'Authorization': 'REDACTED'" in text


def test_the_triggerer_http_logger_stays_quiet_below_warning(async_hook, aio, caplog):
    caplog.set_level(logging.DEBUG, logger="airflow_provider_amlretrain")
    logging.getLogger(async_clients_logger()).setLevel(logging.NOTSET)
    aio.get(job_url(), payload=status_body("Running"))

    asyncio.run(async_hook.aget_job(JOB_ID))

    assert logging.getLogger(async_clients_logger()).getEffectiveLevel() == logging.WARNING
    assert not [r for r in caplog.records if r.name.startswith("airflow_provider_amlretrain.http")]


def async_clients_logger() -> str:
    from airflow_provider_amlretrain.hooks.pipeline import TRIGGER_HTTP_LOGGER

    return TRIGGER_HTTP_LOGGER
