"""The HTTP clients' connections: a few per host on a real loopback socket; proxies and ``.netrc`` only when a proxy is named."""

from __future__ import annotations

import asyncio
import json

import pytest

from airflow_provider_amlretrain.api.states import BatchJobStatus
from airflow_provider_amlretrain.hooks import async_clients
from tests.unit.support import API_KEY, JOB_ID, set_connection, status_body

CONN_ID = "azureml_loopback"


class CountingStatusServer:
    """A loopback HTTP/1.1 server answering every request with a BES status, counting the TCP connections."""

    def __init__(self, answer_delay: float) -> None:
        self.answer_delay = answer_delay
        self.connections = 0
        self.requests = 0
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> CountingStatusServer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        body = json.dumps(status_body("Running")).encode()
        try:
            while await reader.readuntil(b"\r\n\r\n"):  # a GET: headers only
                self.requests += 1
                await asyncio.sleep(self.answer_delay)  # the requests in flight pile up
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    + f"Content-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def _loopback_connection(monkeypatch: pytest.MonkeyPatch, port: int) -> None:
    set_connection(
        monkeypatch,
        CONN_ID,
        conn_type="azureml_studio",
        host=f"http://127.0.0.1:{port}/workspaces/ws1/services/svc1",
        password=API_KEY,
        extra={"retry_backoff": 0, "max_retries": 0, "request_timeout": 10},
    )


async def test_a_hundred_waits_polling_at_once_share_a_handful_of_connections(monkeypatch):
    from airflow_provider_amlretrain.hooks.studio import AzureMLStudioAsyncHook

    async with CountingStatusServer(answer_delay=0.02) as server:
        _loopback_connection(monkeypatch, server.port)
        hooks = [AzureMLStudioAsyncHook(azureml_conn_id=CONN_ID) for _ in range(100)]

        async def poll(hook: AzureMLStudioAsyncHook) -> BatchJobStatus:
            async with hook.ashared_client():
                return (await hook.aget_job(JOB_ID)).status

        statuses = await asyncio.gather(*(poll(hook) for hook in hooks))

    assert statuses == [BatchJobStatus.RUNNING] * 100, "every poll got its answer"
    assert server.requests == 100
    assert 1 <= server.connections <= async_clients.MAX_CONNECTIONS_PER_HOST


@pytest.mark.parametrize(
    ("environment", "trusts_environment"),
    [
        ({}, False),
        ({"HTTPS_PROXY": "http://proxy.example:3128"}, True),
        ({"http_proxy": "http://p:8080"}, True),
    ],
)
async def test_the_session_reads_proxies_and_netrc_only_when_the_environment_names_a_proxy(
    monkeypatch, environment, trusts_environment
):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "WS_PROXY", "WSS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    from airflow_provider_amlretrain.hooks.studio import AzureMLStudioAsyncHook

    _loopback_connection(monkeypatch, 9)
    client = async_clients.build_async_client(
        await AzureMLStudioAsyncHook(azureml_conn_id=CONN_ID).ahttp_settings()
    )
    try:
        session = client._pipeline._transport.session  # the aiohttp session the transport owns
        assert session.trust_env is trusts_environment
    finally:
        await client.close()


def test_a_netrc_entry_for_the_host_does_not_replace_the_api_key(monkeypatch, tmp_path, azureml_conn, rsps):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    netrc = tmp_path / "netrc"
    netrc.write_text("machine ussouthcentral.services.azureml.net login someone password elsewhere\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    from airflow_provider_amlretrain.hooks.studio import AzureMLStudioHook
    from tests.unit.support import job_url

    rsps.add("GET", job_url(), json=status_body("Running"))

    AzureMLStudioHook(azureml_conn_id=azureml_conn).get_job(JOB_ID)

    assert rsps.calls[0].request.headers["Authorization"] == f"Bearer {API_KEY}"


async def test_a_burst_of_polls_waits_for_a_slot_before_entering_the_pipeline(monkeypatch):
    """A thousand waits polling at once hold a future each, not a built request queued inside aiohttp."""
    from azure.core.pipeline.transport import AioHttpTransport

    from airflow_provider_amlretrain.hooks.studio import AzureMLStudioAsyncHook

    in_transport = {"now": 0, "most": 0}
    send = AioHttpTransport.send

    async def counting_send(self, request, **kwargs):
        in_transport["now"] += 1
        in_transport["most"] = max(in_transport["most"], in_transport["now"])
        try:
            return await send(self, request, **kwargs)
        finally:
            in_transport["now"] -= 1

    monkeypatch.setattr(AioHttpTransport, "send", counting_send)
    async with CountingStatusServer(answer_delay=0.01) as server:
        _loopback_connection(monkeypatch, server.port)
        hooks = [AzureMLStudioAsyncHook(azureml_conn_id=CONN_ID) for _ in range(60)]

        async def poll(hook: AzureMLStudioAsyncHook) -> BatchJobStatus:
            async with hook.ashared_client():
                return (await hook.aget_job(JOB_ID)).status

        statuses = await asyncio.gather(*(poll(hook) for hook in hooks))

    assert statuses == [BatchJobStatus.RUNNING] * 60
    assert in_transport["most"] == async_clients.MAX_CONNECTIONS_PER_HOST, in_transport


async def test_a_retry_sleeping_on_retry_after_gives_its_slot_to_other_polls(monkeypatch, aio):
    """One slot: the throttled poll's Retry-After wait lets another poll through, then it gets its answer."""
    from airflow_provider_amlretrain.hooks.studio import AzureMLStudioAsyncHook
    from tests.unit.support import BASE, job_url

    monkeypatch.setattr(async_clients, "MAX_CONNECTIONS_PER_HOST", 1)
    set_connection(
        monkeypatch,
        CONN_ID,
        conn_type="azureml_studio",
        host=BASE,
        password=API_KEY,
        extra={"retry_backoff": 0, "max_retries": 2},
    )
    other = "fedcba9876543210fedcba9876543210"
    aio.get(job_url(JOB_ID), status=503, headers={"Retry-After": "4"}, body="RequestThrottled")
    aio.get(job_url(JOB_ID), payload=status_body("Finished"))
    aio.get(job_url(other), payload=status_body("Running"))
    throttled, free = (
        AzureMLStudioAsyncHook(azureml_conn_id=CONN_ID),
        AzureMLStudioAsyncHook(azureml_conn_id=CONN_ID),
    )
    other_done = asyncio.Event()
    waits: list[float] = []

    async def retry_after_wait(seconds: float) -> None:
        waits.append(seconds)
        await asyncio.wait_for(other_done.wait(), 5)  # only ends if the other poll got the slot meanwhile

    throttled._asleep = retry_after_wait

    async def poll_other() -> BatchJobStatus:
        await asyncio.sleep(0)  # the throttled poll takes the one slot first
        async with free.ashared_client():
            status = (await free.aget_job(other)).status
        other_done.set()
        return status

    async def poll_throttled() -> BatchJobStatus:
        async with throttled.ashared_client():
            return (await throttled.aget_job(JOB_ID)).status

    first, second = await asyncio.gather(poll_throttled(), poll_other())

    assert (first, second) == (BatchJobStatus.FINISHED, BatchJobStatus.RUNNING)
    assert waits == [4.0], "the service's Retry-After was waited"


@pytest.mark.parametrize("cancelled_while", ["sleeping", "waiting for its slot back"])
async def test_a_call_cancelled_in_its_retry_wait_leaves_every_slot_free(cancelled_while):
    """Cancelled while it sleeps (it holds no slot) or while it waits to get one back: none is lost or doubled."""
    slots = async_clients.RequestSlots(1)
    slept, other_holds, other_may_go = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def backoff(seconds: float) -> None:
        slept.set()  # its slot is given up by now
        if cancelled_while == "sleeping":
            await asyncio.sleep(seconds)
        else:
            await other_holds.wait()  # the wait is over once the other call holds the slot

    async def call_that_retries() -> None:
        async with slots.held(backoff) as retry_sleep:
            await retry_sleep(60)

    async def other_call() -> None:
        async with slots.held(asyncio.sleep):
            other_holds.set()
            await other_may_go.wait()

    retrying = asyncio.create_task(call_that_retries())
    await slept.wait()
    other = asyncio.create_task(other_call())
    await other_holds.wait()  # the retrying call gave its slot up to sleep; the other call holds it
    for _ in range(3):
        await asyncio.sleep(0)  # in the second case the retrying call now waits for the slot
    retrying.cancel()
    with pytest.raises(asyncio.CancelledError):
        await retrying
    other_may_go.set()
    await other

    async with slots.held(asyncio.sleep):
        assert slots._free.locked(), "one slot, taken: the cancelled call gave none back twice"
    assert not slots._free.locked()
    assert slots._free._value == 1
