"""Hooks for an Azure ML Studio (classic) web service: BES jobs, with a sync and an async transport."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseHook

from airflow_provider_amlretrain.api.bes import BatchJobState, BesApi, normalize_api_location
from airflow_provider_amlretrain.api.http import ApiRequest, ApiResponse, error_for
from airflow_provider_amlretrain.api.polling import JobPollingRules, PollDecision
from airflow_provider_amlretrain.api.retry import RetryPolicy
from airflow_provider_amlretrain.exceptions import (
    AzureMLApiError,
    AzureMLConfigError,
    AzureMLNotFoundError,
    AzureMLTransportError,
)
from airflow_provider_amlretrain.redaction import redact

if TYPE_CHECKING:
    import requests

    from airflow.providers.common.compat.sdk import Connection

DEFAULT_REQUEST_TIMEOUT = 60.0


@dataclass(frozen=True)
class StudioConnectionSettings:
    """
    What an ``azureml_studio`` connection holds.

    :param conn_id: The Airflow connection id, for messages.
    :param api_location: The web service base URL (``.../workspaces/{ws}/services/{id}``).
    :param api_key: The web service API key (secret).
    :param request_timeout: Seconds before one HTTP call is abandoned.
    :param retry_policy: How failed calls are retried.
    """

    conn_id: str
    api_location: str
    api_key: str = field(repr=False)
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT
    retry_policy: RetryPolicy = field(default_factory=RetryPolicy)

    @classmethod
    def from_connection(cls, conn: Connection, extras: dict[str, Any]) -> StudioConnectionSettings:
        """
        Read and check a connection.

        :param conn: The Airflow connection.
        :param extras: Its extra fields, already decoded.
        """
        conn_id = conn.conn_id or "<unnamed>"
        if not conn.host:
            raise AzureMLConfigError(
                f"Connection {conn_id!r} has no host: set it to the web service's API location, "
                "https://{region}.services.azureml.net/workspaces/{workspace}/services/{service}."
            )
        if not conn.password:
            raise AzureMLConfigError(
                f"Connection {conn_id!r} has no API key: put the web service's API key in its password field."
            )
        host = conn.host if "://" in conn.host else f"{conn.schema or 'https'}://{conn.host}"
        try:
            timeout = float(_extra(extras, "request_timeout", DEFAULT_REQUEST_TIMEOUT))
            max_attempts = int(_extra(extras, "max_retries", 4)) + 1
            backoff = float(_extra(extras, "retry_backoff", 1.0))
        except (TypeError, ValueError) as err:
            raise AzureMLConfigError(
                f"Connection {conn_id!r} has a non-numeric request_timeout, max_retries or retry_backoff extra: "
                "set them to numbers or leave them empty."
            ) from err
        if timeout <= 0 or max_attempts < 1 or backoff < 0:
            raise AzureMLConfigError(
                f"Connection {conn_id!r}: request_timeout must be > 0, max_retries >= 0, retry_backoff >= 0."
            )
        return cls(
            conn_id=conn_id,
            api_location=normalize_api_location(host),
            api_key=conn.password,
            request_timeout=timeout,
            retry_policy=RetryPolicy(max_attempts=max_attempts, backoff_base=backoff),
        )

    def headers(self) -> dict[str, str]:
        """Request headers, the API key included (never log them)."""
        return {
            "Authorization": f"Bearer {self.api_key}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        }


class AzureMLStudioHook(BaseHook):
    """
    Calls one Azure ML Studio (classic) web service: its Batch Execution Service.

    The connection's host is the service's API location and its password the API key; optional
    extras ``request_timeout``, ``max_retries`` and ``retry_backoff`` tune the HTTP calls.

    :param azureml_conn_id: The ``azureml_studio`` connection id.
    :param retry_policy: Overrides the retry policy the connection defines.
    """

    conn_name_attr = "azureml_conn_id"
    default_conn_name = "azureml_default"
    conn_type = "azureml_studio"
    hook_name = "Azure ML Studio (classic) web service"

    def __init__(self, azureml_conn_id: str = default_conn_name, retry_policy: RetryPolicy | None = None) -> None:
        super().__init__()
        self.azureml_conn_id = azureml_conn_id
        self._retry_policy_override = retry_policy
        self._sleep = time.sleep

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Form layout of the connection in the Airflow UI."""
        return {
            "hidden-fields": ["schema", "port", "login"],
            "relabeling": {"host": "API location (BES/RRS base URL)", "password": "API key"},
            "placeholders": {
                "host": "https://ussouthcentral.services.azureml.net/workspaces/<workspace>/services/<service>",
                "password": "web service API key",
            },
        }

    # -- connection -------------------------------------------------------------------------------

    @cached_property
    def settings(self) -> StudioConnectionSettings:
        """The checked connection settings."""
        conn = self.get_connection(self.azureml_conn_id)
        settings = StudioConnectionSettings.from_connection(conn, conn.extra_dejson)
        return self._with_override(settings)

    def _with_override(self, settings: StudioConnectionSettings) -> StudioConnectionSettings:
        if self._retry_policy_override is None:
            return settings
        return StudioConnectionSettings(
            conn_id=settings.conn_id,
            api_location=settings.api_location,
            api_key=settings.api_key,
            request_timeout=settings.request_timeout,
            retry_policy=self._retry_policy_override,
        )

    @property
    def bes(self) -> BesApi:
        """Request builder for this service's BES API."""
        return BesApi(self.settings.api_location)

    @cached_property
    def _session(self) -> requests.Session:
        import requests

        return requests.Session()

    # -- the one request path ---------------------------------------------------------------------

    def _send(self, request: ApiRequest) -> ApiResponse:
        answer = self._session.request(
            request.method,
            request.url,
            json=request.json_body,
            headers=self.settings.headers(),
            timeout=self.settings.request_timeout,
        )
        return ApiResponse(
            status_code=answer.status_code,
            headers={k.lower(): v for k, v in answer.headers.items()},
            text=answer.text,
        )

    def call(self, request: ApiRequest) -> Any:
        """
        Send ``request`` with retries and return the decoded JSON body (``None`` if empty).

        :param request: The request to send.
        :raises AzureMLApiError: (or a subclass) when the service answers an error.
        :raises AzureMLTransportError: when the service cannot be reached after every retry.
        """
        import requests

        policy = self.settings.retry_policy
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self._send(request)
            except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as err:
                delay = _transport_retry_delay(policy, attempt)
                if delay is None:
                    raise _transport_error(request, attempt, err, self.settings.api_key) from None
                self.log.warning(
                    "Could not %s (%s); retrying in %.1f s (attempt %d of %d).",
                    request.operation, type(err).__name__, delay, attempt + 1, policy.max_attempts,
                )
                self._sleep(delay)
                continue
            if response.status_code in request.expected:
                return response.json(request, self.settings.api_key)
            delay = _status_retry_delay(policy, attempt, response)
            if delay is None:
                raise error_for(request, response, self.settings.api_key)
            self.log.warning(
                "Azure ML answered %d to %s; retrying in %.1f s (attempt %d of %d).",
                response.status_code, request.operation, delay, attempt + 1, policy.max_attempts,
            )
            self._sleep(delay)

    # -- BES --------------------------------------------------------------------------------------

    def submit_job(self, body: dict[str, Any]) -> str:
        """
        Create a BES job without starting it; return its id.

        :param body: The request body (see :func:`~airflow_provider_amlretrain.api.bes.build_batch_request`).
        """
        return self.bes.parse_job_id(self.call(self.bes.submit(body)), self.settings.api_key)

    def start_job(self, job_id: str) -> None:
        """
        Start a created job.

        :param job_id: The job id.
        """
        self.call(self.bes.start(job_id))

    def get_job(self, job_id: str) -> BatchJobState:
        """
        Read a job's status, results and details.

        :param job_id: The job id.
        """
        return self.bes.parse_job_state(job_id, self.call(self.bes.get(job_id)), self.settings.api_key)

    def cancel_job(self, job_id: str) -> None:
        """
        Cancel a job; a job that has already ended or no longer exists is not an error.

        :param job_id: The job id.
        """
        try:
            self.call(self.bes.cancel(job_id))
        except AzureMLNotFoundError:
            self.log.info("BES job %s no longer exists; nothing to cancel.", job_id)
        except AzureMLApiError as err:
            if err.status_code in (400, 409):
                self.log.info("BES job %s was not cancelled (%s); it has most likely ended.", job_id, err)
                return
            raise

    def wait_for_job(self, job_id: str, rules: JobPollingRules) -> BatchJobState:
        """
        Poll a job until it ends or the rules' deadline passes.

        :param job_id: The job id.
        :param rules: Poll interval and deadline.
        :return: The last state read; not terminal when the deadline passed.
        """
        while True:
            state = self.get_job(job_id)
            decision = rules.decide(state.status)
            if decision is not PollDecision.WAIT:
                return state
            self.log.info("BES job %s is %s; next check in %.0f s.", job_id, state.status.value, rules.poll_interval)
            self._sleep(rules.sleep_seconds())

    def job_url(self, job_id: str) -> str:
        """
        The job's status URL (no secret in it).

        :param job_id: The job id.
        """
        return self.bes.job_url(job_id)

    def test_connection(self) -> tuple[bool, str]:
        """Check that the service answers and accepts the API key, without creating a job."""
        probe = "0" * 32
        try:
            self.get_job(probe)
        except AzureMLNotFoundError as err:
            if err.error_code and "service" in err.error_code.lower():
                return False, str(err)
            return True, "The web service answered and accepted the API key."
        except Exception as err:
            return False, redact(str(err))
        return True, "The web service answered and accepted the API key."


class AzureMLStudioAsyncHook(AzureMLStudioHook):
    """
    The async twin of :class:`AzureMLStudioHook` for triggers: same requests, parsing, states and
    retry policy; only the transport (aiohttp) differs.

    :param azureml_conn_id: The ``azureml_studio`` connection id.
    :param retry_policy: Overrides the retry policy the connection defines.
    """

    def __init__(self, azureml_conn_id: str = AzureMLStudioHook.default_conn_name, retry_policy: RetryPolicy | None = None):
        super().__init__(azureml_conn_id=azureml_conn_id, retry_policy=retry_policy)
        self._async_settings: StudioConnectionSettings | None = None
        self._asleep = asyncio.sleep

    async def aget_settings(self) -> StudioConnectionSettings:
        """The checked connection settings, read without blocking the event loop."""
        if self._async_settings is None:
            from airflow.providers.common.compat.connection import get_async_connection, get_async_extra_dejson

            conn = await get_async_connection(self.azureml_conn_id)
            extras = await get_async_extra_dejson(conn)
            self._async_settings = self._with_override(StudioConnectionSettings.from_connection(conn, extras))
        return self._async_settings

    async def _asend(self, request: ApiRequest, settings: StudioConnectionSettings) -> ApiResponse:
        import aiohttp

        timeout = aiohttp.ClientTimeout(total=settings.request_timeout)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.request(
                request.method, request.url, json=request.json_body, headers=settings.headers()
            ) as answer:
                text = await answer.text()
                return ApiResponse(
                    status_code=answer.status,
                    headers={k.lower(): v for k, v in answer.headers.items()},
                    text=text,
                )

    async def acall(self, request: ApiRequest) -> Any:
        """
        Async :meth:`AzureMLStudioHook.call`: same retries, same errors.

        :param request: The request to send.
        """
        import aiohttp

        settings = await self.aget_settings()
        policy = settings.retry_policy
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await self._asend(request, settings)
            except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, asyncio.TimeoutError) as err:
                delay = _transport_retry_delay(policy, attempt)
                if delay is None:
                    raise _transport_error(request, attempt, err, settings.api_key) from None
                self.log.warning(
                    "Could not %s (%s); retrying in %.1f s (attempt %d of %d).",
                    request.operation, type(err).__name__, delay, attempt + 1, policy.max_attempts,
                )
                await self._asleep(delay)
                continue
            if response.status_code in request.expected:
                return response.json(request, settings.api_key)
            delay = _status_retry_delay(policy, attempt, response)
            if delay is None:
                raise error_for(request, response, settings.api_key)
            self.log.warning(
                "Azure ML answered %d to %s; retrying in %.1f s (attempt %d of %d).",
                response.status_code, request.operation, delay, attempt + 1, policy.max_attempts,
            )
            await self._asleep(delay)

    async def aget_job(self, job_id: str) -> BatchJobState:
        """
        Async :meth:`AzureMLStudioHook.get_job`.

        :param job_id: The job id.
        """
        settings = await self.aget_settings()
        api = BesApi(settings.api_location)
        return api.parse_job_state(job_id, await self.acall(api.get(job_id)), settings.api_key)

    async def acancel_job(self, job_id: str) -> None:
        """
        Async :meth:`AzureMLStudioHook.cancel_job`, equally tolerant of ended jobs.

        :param job_id: The job id.
        """
        settings = await self.aget_settings()
        try:
            await self.acall(BesApi(settings.api_location).cancel(job_id))
        except AzureMLNotFoundError:
            self.log.info("BES job %s no longer exists; nothing to cancel.", job_id)
        except AzureMLApiError as err:
            if err.status_code not in (400, 409):
                raise
            self.log.info("BES job %s was not cancelled (%s); it has most likely ended.", job_id, err)


def _extra(extras: dict[str, Any], name: str, default: float) -> Any:
    """An optional numeric extra; unset, null (a cleared UI field) and "" mean the default."""
    value = extras.get(name)
    return default if value is None or value == "" else value


def _transport_retry_delay(policy: RetryPolicy, attempt: int) -> float | None:
    return policy.delay(attempt) if policy.can_retry(attempt) else None


def _status_retry_delay(policy: RetryPolicy, attempt: int, response: ApiResponse) -> float | None:
    if not policy.is_retryable_status(response.status_code) or not policy.can_retry(attempt):
        return None
    return policy.delay(attempt, response.headers.get("retry-after"))


def _transport_error(request: ApiRequest, attempts: int, err: BaseException, api_key: str) -> AzureMLTransportError:
    return AzureMLTransportError(
        f"Could not {request.operation}: {request.method} {request.safe_url} failed after {attempts} "
        f"attempt(s): {type(err).__name__}: {redact(str(err), api_key)}. Check that the host is "
        "reachable and the region in the connection's host is right.",
        method=request.method,
        url=request.safe_url,
    )
