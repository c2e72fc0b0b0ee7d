"""Hooks for an Azure ML Studio (classic) web service: BES jobs, with a sync and an async transport."""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow_provider_amlretrain.api.bes import (
    CANNOT_START_JOB,
    BatchJobState,
    BesApi,
    normalize_api_location,
)
from airflow_provider_amlretrain.api.polling import JobPollingRules, PollDecision
from airflow_provider_amlretrain.api.retry import RetryPolicy
from airflow_provider_amlretrain.connection_forms import STUDIO_FORM
from airflow_provider_amlretrain.exceptions import AzureMLApiError, AzureMLConfigError, AzureMLNotFoundError
from airflow_provider_amlretrain.hooks.async_clients import AzureMLAsyncHttpMixin
from airflow_provider_amlretrain.hooks.default_connections import STUDIO_CONN_ID
from airflow_provider_amlretrain.hooks.http_settings import (
    DEFAULT_REQUEST_TIMEOUT,
    HttpSettings,
    bearer_headers,
    http_tuning,
)
from airflow_provider_amlretrain.hooks.sync_client import AzureMLHttpHook
from airflow_provider_amlretrain.links.job_page import check_job_page_template, job_page_url
from airflow_provider_amlretrain.redaction import redact

if TYPE_CHECKING:
    from collections.abc import Hashable

    from airflow.providers.common.compat.sdk import Connection


@dataclass(frozen=True)
class StudioConnectionSettings:
    """
    What an ``azureml_studio`` connection holds.

    :param conn_id: The Airflow connection id, for messages.
    :param api_location: The web service base URL (``.../workspaces/{ws}/services/{id}``).
    :param api_key: The web service API key (secret).
    :param request_timeout: Seconds before one HTTP call is abandoned.
    :param retry_policy: How failed calls are retried.
    :param job_page_url: The ``job_page_url`` extra: a page template for the job link (see
        :mod:`airflow_provider_amlretrain.links.job_page`), or ``None`` for the Web Services portal.
    """

    conn_id: str
    api_location: str
    api_key: str = field(repr=False)
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT
    retry_policy: RetryPolicy = field(default_factory=RetryPolicy)
    job_page_url: str | None = None

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
        timeout, policy = http_tuning(conn_id, extras)
        page = extras.get("job_page_url")
        return cls(
            conn_id=conn_id,
            api_location=normalize_api_location(host),
            api_key=conn.password,
            request_timeout=timeout,
            retry_policy=policy,
            job_page_url=check_job_page_template(conn_id, str(page)) if page else None,
        )

    def headers(self) -> dict[str, str]:
        """Request headers, the API key included (never log them)."""
        return bearer_headers(self.api_key)

    def http(self) -> HttpSettings:
        """These settings as the shared request path takes them."""
        return HttpSettings(self.headers(), self.request_timeout, self.retry_policy, (self.api_key,))

    @cached_property
    def shared_http(self) -> HttpSettings:
        """:meth:`http`, built once for these settings (the async hook's every request reads it; nobody changes it)."""
        return self.http()

    @cached_property
    def bes_api(self) -> BesApi:
        """The request builder of this service's BES API, built once for these settings."""
        return BesApi(self.api_location)


_SHARED_ASYNC_SETTINGS: weakref.WeakValueDictionary[StudioConnectionSettings, StudioConnectionSettings] = (
    weakref.WeakValueDictionary()
)
"""Equal connection settings as one object, for async hooks: a thousand triggers of one connection hold one copy
(and one set of headers and one request builder, built once), not a thousand equal ones."""


class AzureMLStudioHook(AzureMLHttpHook):
    """
    Calls one Azure ML Studio (classic) web service: its Batch Execution Service.

    The connection's host is the service's API location and its password the API key; optional
    extras ``request_timeout``, ``max_retries`` and ``retry_backoff`` tune the HTTP calls.

    :param azureml_conn_id: The ``azureml_studio`` connection id.
    :param retry_policy: Overrides the retry policy the connection defines.
    """

    conn_name_attr = "azureml_conn_id"
    default_conn_name = STUDIO_CONN_ID
    conn_type = "azureml_studio"
    hook_name = "Azure ML Studio (classic) web service"

    def __init__(
        self, azureml_conn_id: str = default_conn_name, retry_policy: RetryPolicy | None = None
    ) -> None:
        super().__init__()
        self.azureml_conn_id = azureml_conn_id
        self._retry_policy_override = retry_policy

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Form layout of the connection in the Airflow UI."""
        return STUDIO_FORM

    @cached_property
    def settings(self) -> StudioConnectionSettings:
        """The checked connection settings."""
        conn = self.get_connection(self.azureml_conn_id)
        return self._with_override(StudioConnectionSettings.from_connection(conn, conn.extra_dejson))

    def _with_override(self, settings: StudioConnectionSettings) -> StudioConnectionSettings:
        if self._retry_policy_override is None:
            return settings
        return StudioConnectionSettings(
            conn_id=settings.conn_id,
            api_location=settings.api_location,
            api_key=settings.api_key,
            request_timeout=settings.request_timeout,
            retry_policy=self._retry_policy_override,
            job_page_url=settings.job_page_url,
        )

    def http_settings(self) -> HttpSettings:
        """API-key auth for every call."""
        return self.settings.http()

    @property
    def bes(self) -> BesApi:
        """Request builder for this service's BES API."""
        return BesApi(self.settings.api_location)

    def submit_job(self, body: dict[str, Any]) -> str:
        """
        Create a BES job without starting it; return its id.

        :param body: The request body (see :func:`~airflow_provider_amlretrain.api.bes.build_batch_request`).
        """
        return self.bes.parse_job_id(self.call(self.bes.submit(body)), self.settings.api_key)

    def start_job(self, job_id: str, *, own_job: bool = False) -> bool:
        """
        Start a created job; ``False`` when the service says it was already started (for the caller's own job).

        A start whose answer was lost (a dropped connection, a timeout, a crash before the caller noted
        it) may have reached the service: sent again, it is answered 400 ``CannotStartJob`` ("The job
        cannot be started because it is in Running state"). For a job the caller submitted itself, whose
        id nobody else has, that means the earlier start worked; for any other job it is an error.

        :param job_id: The job id.
        :param own_job: Whether the caller submitted this job itself (and so started it, if anyone did).
        :raises AzureMLApiError: when the start is refused (also "already started", unless ``own_job``).
        """
        try:
            self.call(self.bes.start(job_id))
        except AzureMLApiError as err:
            if not own_job or err.status_code != 400 or err.error_code != CANNOT_START_JOB:
                raise
            self.log.info(
                "BES job %s was already started (%s): an earlier start reached the service.", job_id, err
            )
            return False
        return True

    def get_job(self, job_id: str) -> BatchJobState:
        """
        Read a job's status, results and details.

        :param job_id: The job id.
        """
        request = self.bes.get(job_id)
        return self.bes.parse_job_answer(job_id, request, self.call_raw(request), self.settings.api_key)

    def cancel_job(self, job_id: str) -> None:
        """
        Cancel a job; a job that has already ended or no longer exists is not an error.

        :param job_id: The job id.
        """
        try:
            self.call(self.bes.cancel(job_id))
        except AzureMLApiError as err:
            if not _cancel_is_moot(err):
                raise
            self.log.info("BES job %s was not cancelled (%s): it has ended or no longer exists.", job_id, err)

    def wait_for_job(self, job_id: str, rules: JobPollingRules) -> BatchJobState:
        """
        Poll a job until it ends or the rules' deadline passes.

        :param job_id: The job id.
        :param rules: Poll intervals and deadline (a wait without ``started_at`` counts from its own start).
        :return: The last state read; not terminal when the deadline passed.
        """
        rules = rules.started()
        while True:
            state = self.get_job(job_id)
            if rules.decide(state.status) is not PollDecision.WAIT:
                return state
            rules = rules.observed(state.status)
            wait = rules.sleep_seconds(retry_after=state.retry_after)
            self.log.info("BES job %s is %s; next check in %.0f s.", job_id, state.status.value, wait)
            self._sleep(wait)

    def job_url(self, job_id: str) -> str:
        """
        The job's status URL (no secret in it, but it answers only with the API key).

        :param job_id: The job id.
        """
        return self.bes.job_url(job_id)

    def job_page_url(self, job_id: str) -> str:
        """
        A page a person can open for the job without the API key (the task's extra link).

        :param job_id: The job id.
        """
        return job_page_url(self.settings.api_location, job_id, self.settings.job_page_url)

    def test_connection(self) -> tuple[bool, str]:
        """Check that the service answers and accepts the API key, without creating a job."""
        try:
            self.get_job("0" * 32)
        except AzureMLNotFoundError as err:
            if err.error_code and "service" in err.error_code.lower():
                return False, str(err)
            return True, "The web service answered and accepted the API key."
        except Exception as err:
            return False, redact(str(err))
        return True, "The web service answered and accepted the API key."


class AzureMLStudioAsyncHook(AzureMLAsyncHttpMixin, AzureMLStudioHook):
    """
    The async twin of :class:`AzureMLStudioHook` for triggers: same requests, parsing, states and
    retry rules; only the transport (aiohttp, one client per event loop and connection) differs.

    :param azureml_conn_id: The ``azureml_studio`` connection id.
    :param retry_policy: Overrides the retry policy the connection defines.
    """

    def __init__(
        self,
        azureml_conn_id: str = AzureMLStudioHook.default_conn_name,
        retry_policy: RetryPolicy | None = None,
    ):
        super().__init__(azureml_conn_id=azureml_conn_id, retry_policy=retry_policy)
        self._async_settings: StudioConnectionSettings | None = None

    async def aget_settings(self) -> StudioConnectionSettings:
        """The checked connection settings, read without blocking the event loop."""
        if self._async_settings is None:
            from airflow.providers.common.compat.connection import (
                get_async_connection,
                get_async_extra_dejson,
            )

            conn = await get_async_connection(self.azureml_conn_id)
            extras = await get_async_extra_dejson(conn)
            settings = self._with_override(StudioConnectionSettings.from_connection(conn, extras))
            self._async_settings = _SHARED_ASYNC_SETTINGS.setdefault(settings, settings)
        return self._async_settings

    async def ahttp_settings(self) -> HttpSettings:
        """API-key auth, read without blocking the event loop."""
        return (await self.aget_settings()).shared_http

    def async_client_key(self, settings: HttpSettings) -> Hashable:
        """
        Hooks of one connection with one timeout and retry policy share a client.

        :param settings: The connection's HTTP settings.
        """
        return (type(self).__name__, self.azureml_conn_id, settings.request_timeout, settings.retry_policy)

    async def aget_job(self, job_id: str) -> BatchJobState:
        """
        Async :meth:`AzureMLStudioHook.get_job`.

        :param job_id: The job id.
        """
        settings = await self.aget_settings()
        api = settings.bes_api
        request = api.get(job_id)
        return api.parse_job_answer(job_id, request, await self.acall_raw(request), settings.api_key)

    async def acancel_job(self, job_id: str) -> None:
        """
        Async :meth:`AzureMLStudioHook.cancel_job`, equally tolerant of ended jobs.

        :param job_id: The job id.
        """
        settings = await self.aget_settings()
        try:
            await self.acall(settings.bes_api.cancel(job_id))
        except AzureMLApiError as err:
            if not _cancel_is_moot(err):
                raise
            self.log.info("BES job %s was not cancelled (%s): it has ended or no longer exists.", job_id, err)


def _cancel_is_moot(err: AzureMLApiError) -> bool:
    """Whether a failed cancel means the job has already ended or is gone (404, or 400/409)."""
    return isinstance(err, AzureMLNotFoundError) or err.status_code in (400, 409)
