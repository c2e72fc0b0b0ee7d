"""Fixtures for the fast unit tests: connections from environment variables, transport mocks, recorders."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import airflow  # noqa: F401  (configures Airflow's logging first, so the fixture below can re-route it)
import pytest
import structlog

from tests.unit.support import API_KEY, BASE, CONN_ID, set_connection

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture(autouse=True)
def _stdlib_logging() -> Iterator[None]:
    """
    Route structlog (which Airflow's hooks, operators and triggers log through) into stdlib logging,
    so ``caplog`` sees every record the code under test writes.
    """
    saved = structlog.get_config()
    structlog.configure(
        processors=[structlog.stdlib.PositionalArgumentsFormatter(), structlog.stdlib.render_to_log_kwargs],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    yield
    structlog.configure(**saved)


@pytest.fixture
def azureml_conn(monkeypatch: pytest.MonkeyPatch) -> str:
    """The ``azureml_studio`` connection: no backoff wait, 3 retries (4 attempts)."""
    set_connection(
        monkeypatch,
        CONN_ID,
        conn_type="azureml_studio",
        host=BASE,
        password=API_KEY,
        extra={"retry_backoff": 0, "max_retries": 3, "request_timeout": 5},
    )
    return CONN_ID


class SleepRecorder:
    """Stands in for ``time.sleep`` / ``asyncio.sleep``: records the delays, waits for nothing."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)

    async def asleep(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture
def sleeps() -> SleepRecorder:
    """A recorder for the waits the hooks ask for."""
    return SleepRecorder()


@pytest.fixture
def hook(azureml_conn: str, sleeps: SleepRecorder):
    """The real sync hook on the test connection, its waits recorded instead of slept."""
    from airflow_provider_amlretrain.hooks.studio import AzureMLStudioHook

    h = AzureMLStudioHook(azureml_conn_id=azureml_conn)
    h._sleep = sleeps
    return h


@pytest.fixture
def async_hook(azureml_conn: str, sleeps: SleepRecorder):
    """The real async hook on the test connection, its waits recorded instead of slept."""
    from airflow_provider_amlretrain.hooks.studio import AzureMLStudioAsyncHook

    h = AzureMLStudioAsyncHook(azureml_conn_id=azureml_conn)
    h._asleep = sleeps.asleep
    return h


@pytest.fixture
def rsps() -> Iterator[Any]:
    """``responses`` mock for the requests transport; any unregistered call fails."""
    import responses

    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def aio(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """``aioresponses`` mock for the aiohttp transport."""
    import inspect

    import aioresponses.core as aioresponses_core
    from aiohttp import ClientResponse
    from aioresponses import aioresponses

    if "stream_writer" in inspect.signature(ClientResponse.__init__).parameters:
        # aioresponses 0.7.9 builds ClientResponse without the ``stream_writer`` that aiohttp 3.12+
        # requires; give it an already-finished writer so the mocked answers can be built.
        class _ClientResponse(ClientResponse):
            def __init__(self, *args: Any, stream_writer: Any = None, **kwargs: Any) -> None:
                super().__init__(*args, stream_writer=stream_writer or _FinishedWriter(), **kwargs)

        monkeypatch.setattr(aioresponses_core, "ClientResponse", _ClientResponse)

    with aioresponses() as mock:
        yield mock


class _FinishedWriter:
    output_size = 0


@pytest.fixture
def log_text(caplog: pytest.LogCaptureFixture):
    """All log output captured so far (records at DEBUG and above, with their extra fields)."""
    caplog.set_level(logging.DEBUG)

    def text() -> str:
        parts = []
        for record in caplog.records:
            parts.append(record.getMessage())
            parts.append(repr(record.__dict__))
        return "\n".join(parts)

    return text


@pytest.fixture(params=["sync", "async"])
def transport(request: pytest.FixtureRequest, azureml_conn: str, sleeps: SleepRecorder):
    """The sync hook behind ``responses`` and the async hook behind ``aioresponses``, in turn."""
    if request.param == "sync":
        from tests.unit.support import SyncTransport

        yield SyncTransport(request.getfixturevalue("hook"), request.getfixturevalue("rsps"))
    else:
        from tests.unit.support import AsyncTransport

        yield AsyncTransport(request.getfixturevalue("async_hook"), request.getfixturevalue("aio"))
