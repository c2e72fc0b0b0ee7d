"""azure-core's retry loop (``RetryPolicyBase``), told what this provider may repeat and how long to wait.

There is one retry loop, azure-core's, shared by the sync and the async pipeline; this module only
answers its questions:

- which answers are retried: 408, 429, 500, 502, 503 and 504 (``Retry-After`` is honoured up to
  ``RetryPolicy.max_retry_after``, other answers are final
  even when they carry one);
- which requests: an idempotent request (GET, DELETE, the PUT/PATCH of a whole definition, RRS scoring)
  after a connection error, a timeout or a retryable answer; a request that is not (BES submit and
  start) only when the service cannot have processed it: the connection was never made, or the service
  answered 429/503 (throttled);
- how long to wait: :meth:`~airflow_provider_amlretrain.api.retry.RetryPolicy.delay` (backoff with jitter),
  through a sleep function tests replace (the policy's ``sleep`` argument, or a call's ``retry_sleep``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import ServiceRequestError
from azure.core.pipeline.policies import AsyncRetryPolicy as _AzureAsyncRetryPolicy
from azure.core.pipeline.policies import RetryPolicy as _AzureRetryPolicy
from azure.core.pipeline.policies._retry import RetryPolicyBase  # the loop both policies share

from airflow_provider_amlretrain.api.retry import RETRYABLE_STATUS_CODES, RetryPolicy

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from azure.core.pipeline import PipelineResponse

    from airflow_provider_amlretrain.api.http import ApiRequest

log = logging.getLogger(__name__)

THROTTLING_STATUS_CODES: frozenset[int] = frozenset({429, 503})
"""Answers that say the service refused the request before doing anything: safe to repeat any request."""

CALL_OPTION = "amlretrain_call"
"""The pipeline option (a keyword of ``send_request``) that carries the :class:`CallRecord` of one call."""

SLEEP_OPTION = "retry_sleep"
"""The pipeline option that replaces the policy's sleep function for one call (tests make waits zero)."""


@dataclass
class CallRecord:
    """
    What the retry policy needs to know about one call, and what it reports back.

    :param request: The request being sent (its operation name and whether it may be repeated).
    :param tries: Tries made so far (filled in by the policy).
    """

    request: ApiRequest
    tries: int = 0


class _RetryRules(RetryPolicyBase):
    """The answers :class:`RetryPolicyBase` asks of a policy, for this provider; no loop of its own."""

    def __init__(self, policy: RetryPolicy, **kwargs: Any) -> None:
        retries = policy.max_attempts - 1
        super().__init__(
            retry_total=retries,
            retry_connect=retries,
            retry_read=retries,
            retry_status=retries,
            **kwargs,
        )
        self.policy = policy

    def configure_retries(self, options: dict[str, Any]) -> dict[str, Any]:
        """azure-core's settings for one call, plus this call's record and sleep function."""
        settings = super().configure_retries(options)
        settings["call"] = options.pop(CALL_OPTION, None)
        settings["sleep"] = options.pop(SLEEP_OPTION, None)
        return settings

    @staticmethod
    def _request_is_repeatable(settings: dict[str, Any], method: str) -> bool:
        call: CallRecord | None = settings["call"]
        if call is not None:
            return call.request.safe_to_repeat
        return method.upper() != "POST"  # requests of azure-core's own (ARM polls) carry no record

    def _is_method_retryable(self, settings: dict[str, Any], request: Any, response: Any = None) -> bool:
        """
        Whether this request may be sent again (azure-core retries any POST on 500/503/504: not here).

        A transport error is judged in :meth:`increment`, which sees the error.
        """
        if response is None or self._request_is_repeatable(settings, request.method):
            return True
        return response.status_code in THROTTLING_STATUS_CODES

    def is_retry(self, settings: dict[str, Any], response: PipelineResponse[Any, Any]) -> bool:
        """Whether an answer is retried: a retryable status (with or without ``Retry-After``) this request may repeat."""
        status = response.http_response.status_code
        if status not in RETRYABLE_STATUS_CODES:
            return False
        return self._is_method_retryable(settings, response.http_request, response.http_response)

    @staticmethod
    def nothing_was_sent(error: BaseException) -> bool:
        """
        Whether a transport error proves the request never reached the service (no connection was made).

        :param error: The azure-core error the transport raised.
        """
        return isinstance(error, ServiceRequestError)

    def increment(
        self, settings: dict[str, Any], response: Any = None, error: Exception | None = None
    ) -> bool:
        """Count a failed try; ``False`` ends the loop (retries spent, or a repeat that is not safe)."""
        call: CallRecord | None = settings["call"]
        if call is not None:
            call.tries += 1
        settings["last_error"] = error
        if error is not None:
            if is_unsendable(error):
                return False
            method = response.http_request.method if response is not None else "GET"
            if not self._request_is_repeatable(settings, method) and not self.nothing_was_sent(error):
                return False
        return bool(super().increment(settings, response=response, error=error))

    def get_retry_after(self, response: PipelineResponse[Any, Any]) -> float | None:
        """The answer's ``Retry-After`` (or ``retry-after-ms``) in seconds; ``None`` when absent or unreadable."""
        try:
            return super().get_retry_after(response)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None

    def next_delay(self, settings: dict[str, Any], response: PipelineResponse[Any, Any] | None) -> float:
        """Seconds before the next try: the service's ``Retry-After`` (capped), else backoff with jitter."""
        hinted = self.get_retry_after(response) if response is not None else None
        return self.policy.delay(len(settings["history"]), hinted)

    def log_retry(self, settings: dict[str, Any], response: Any, delay: float) -> None:
        """One warning per retry, naming the call and the reason (never a header or body)."""
        call: CallRecord | None = settings["call"]
        operation = call.request.operation if call is not None else "call Azure ML"
        attempt = len(settings["history"]) + 1
        if response is not None:
            log.warning(
                "Azure ML answered %d to %s; retrying in %.1f s (attempt %d of %d).",
                response.http_response.status_code,
                operation,
                delay,
                attempt,
                self.policy.max_attempts,
            )
        else:
            log.warning(
                "Could not %s (%s); retrying in %.1f s (attempt %d of %d).",
                operation,
                type(_cause(settings["last_error"])).__name__,
                delay,
                attempt,
                self.policy.max_attempts,
            )


class AzureMLRetryPolicy(_RetryRules, _AzureRetryPolicy):
    """
    azure-core's sync retry loop with this provider's rules.

    :param policy: Attempts and backoff, from the connection.
    :param sleep: How to wait (default :func:`time.sleep`); a call's ``retry_sleep`` option overrides it.
    """

    def __init__(self, policy: RetryPolicy, sleep: Callable[[float], Any] = time.sleep) -> None:
        super().__init__(policy)
        self._sleep_function = sleep

    def sleep(self, settings: dict[str, Any], transport: Any, response: Any = None) -> None:
        """Wait before the next try (always through the sleep function, also for 0 s)."""
        delay = self.next_delay(settings, response)
        self.log_retry(settings, response, delay)
        (settings["sleep"] or self._sleep_function)(delay)


class AzureMLAsyncRetryPolicy(_RetryRules, _AzureAsyncRetryPolicy):
    """
    azure-core's async retry loop with this provider's rules (the same rules as :class:`AzureMLRetryPolicy`).

    :param policy: Attempts and backoff, from the connection.
    :param sleep: How to wait (default :func:`asyncio.sleep`); a call's ``retry_sleep`` option overrides it.
    """

    def __init__(self, policy: RetryPolicy, sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep) -> None:
        super().__init__(policy)
        self._sleep_function = sleep

    @staticmethod
    def nothing_was_sent(error: BaseException) -> bool:
        """
        Whether a transport error proves the request never reached the service.

        azure-core's aiohttp transport calls every ``aiohttp.ClientError`` a request error, also a
        server that hung up after reading the request; only a failed connect proves nothing was sent.

        :param error: The azure-core error the transport raised.
        """
        if not isinstance(error, ServiceRequestError):
            return False
        import aiohttp

        cause = _cause(error)
        return isinstance(cause, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError)

    async def sleep(self, settings: dict[str, Any], transport: Any, response: Any = None) -> None:  # type: ignore[override]
        """Wait before the next try (always through the sleep function, also for 0 s)."""
        delay = self.next_delay(settings, response)
        self.log_retry(settings, response, delay)
        await (settings["sleep"] or self._sleep_function)(delay)


def _cause(error: BaseException | None) -> BaseException | None:
    """The transport library's exception inside an azure-core error."""
    inner = getattr(error, "inner_exception", None)
    return inner if isinstance(inner, BaseException) else error


def is_unsendable(error: BaseException) -> bool:
    """
    Whether the request could not even be built (a malformed URL or header): a configuration fault,
    never retried.

    :param error: An azure-core transport error.
    """
    cause = _cause(error)
    if type(cause).__module__.startswith("requests"):
        import requests

        return isinstance(
            cause,
            requests.exceptions.InvalidURL
            | requests.exceptions.MissingSchema
            | requests.exceptions.InvalidSchema
            | requests.exceptions.InvalidHeader,
        )
    if type(cause).__module__.startswith("aiohttp"):
        import aiohttp

        # Not every ValueError: a body that is not UTF-8 is no configuration fault.
        return isinstance(cause, aiohttp.InvalidURL)
    return False
