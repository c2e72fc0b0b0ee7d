"""The one HTTP request path every Azure ML hook uses: timeouts, retries, error mapping, redaction."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseHook

from airflow_provider_amlretrain.api.http import ApiRequest, ApiResponse, error_for
from airflow_provider_amlretrain.api.retry import RetryPolicy
from airflow_provider_amlretrain.exceptions import AzureMLConfigError, AzureMLTransportError
from airflow_provider_amlretrain.redaction import redact

if TYPE_CHECKING:
    import requests

DEFAULT_REQUEST_TIMEOUT = 60.0


@dataclass(frozen=True)
class HttpSettings:
    """
    How to send requests to one Azure ML API.

    :param headers: Headers for every request, auth included (secret: never logged).
    :param request_timeout: Seconds before one HTTP call is abandoned.
    :param retry_policy: How failed calls are retried.
    :param secrets: Literal secrets to scrub from any service text that reaches a message.
    """

    headers: dict[str, str] = field(repr=False)
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT
    retry_policy: RetryPolicy = field(default_factory=RetryPolicy)
    secrets: tuple[str, ...] = field(default=(), repr=False)


def bearer_headers(token: str) -> dict[str, str]:
    """
    JSON request headers with ``Authorization: Bearer <token>``.

    :param token: An API key, workspace token or Azure AD access token.
    """
    return {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        "Accept": "application/json",
    }


def http_tuning(conn_id: str, extras: dict[str, Any]) -> tuple[float, RetryPolicy]:
    """
    Read the optional ``request_timeout``, ``max_retries`` and ``retry_backoff`` extras.

    :param conn_id: The connection id, for messages.
    :param extras: The connection's extras.
    """
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
    return timeout, RetryPolicy(max_attempts=max_attempts, backoff_base=backoff)


def _extra(extras: dict[str, Any], name: str, default: float) -> Any:
    """An optional numeric extra; unset, null (a cleared UI field) and "" mean the default."""
    value = extras.get(name)
    return default if value is None or value == "" else value


def transport_retry_delay(policy: RetryPolicy, attempt: int) -> float | None:
    """
    Seconds to wait after a connection error or timeout, or ``None`` to give up.

    :param policy: The retry policy.
    :param attempt: Tries made so far.
    """
    return policy.delay(attempt) if policy.can_retry(attempt) else None


def status_retry_delay(policy: RetryPolicy, attempt: int, response: ApiResponse) -> float | None:
    """
    Seconds to wait after an error answer, or ``None`` when it is final.

    :param policy: The retry policy.
    :param attempt: Tries made so far.
    :param response: The answer.
    """
    if not policy.is_retryable_status(response.status_code) or not policy.can_retry(attempt):
        return None
    return policy.delay(attempt, response.headers.get("retry-after"))


def invalid_request_error(
    request: ApiRequest, err: BaseException, secrets: tuple[str, ...]
) -> AzureMLConfigError:
    """
    The error raised when a request cannot even be sent (a malformed URL or header): a configuration fault.

    :param request: The request.
    :param err: The transport library's exception.
    :param secrets: Literal secrets to scrub.
    """
    return AzureMLConfigError(
        f"Could not {request.operation}: {request.method} {request.safe_url} cannot be sent "
        f"({type(err).__name__}: {redact(str(err), *secrets)}). Check the connection's host (a full "
        "https:// URL) and that its key has no line breaks or spaces."
    )


def transport_error(
    request: ApiRequest, attempts: int, err: BaseException, secrets: tuple[str, ...]
) -> AzureMLTransportError:
    """
    The error raised when the service could not be reached after every retry.

    :param request: The request.
    :param attempts: Tries made.
    :param err: The last transport exception.
    :param secrets: Literal secrets to scrub.
    """
    return AzureMLTransportError(
        f"Could not {request.operation}: {request.method} {request.safe_url} failed after {attempts} "
        f"attempt(s): {type(err).__name__}: {redact(str(err), *secrets)}. Check that the host is "
        "reachable and the region in the connection's host is right.",
        method=request.method,
        url=request.safe_url,
    )


class AzureMLHttpHook(BaseHook):
    """
    Base of the Azure ML hooks: subclasses say how to authenticate (:meth:`http_settings`);
    this class sends requests, retries what is retryable and raises typed, secret-free errors.
    """

    def __init__(self) -> None:
        super().__init__()
        self._sleep = time.sleep

    def http_settings(self) -> HttpSettings:
        """Headers, timeout, retry policy and secrets of this hook's API."""
        raise NotImplementedError

    @cached_property
    def _session(self) -> requests.Session:
        import requests

        return requests.Session()

    def _send(self, request: ApiRequest, settings: HttpSettings) -> ApiResponse:
        answer = self._session.request(
            request.method,
            request.url,
            json=request.json_body,
            headers=settings.headers,
            timeout=settings.request_timeout,
        )
        return ApiResponse(
            status_code=answer.status_code,
            headers={k.lower(): v for k, v in answer.headers.items()},
            text=answer.text,
        )

    def call_raw(self, request: ApiRequest, settings: HttpSettings | None = None) -> ApiResponse:
        """
        Send ``request`` with retries; return the successful answer (status in ``request.expected``).

        :param request: The request to send.
        :param settings: Other credentials for this call (e.g. an endpoint key); default :meth:`http_settings`.
        :raises AzureMLApiError: (or a subclass) when the service answers an error.
        :raises AzureMLTransportError: when the service cannot be reached after every retry.
        """
        import requests

        settings = settings or self.http_settings()
        policy = settings.retry_policy
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self._send(request, settings)
            except (
                requests.exceptions.InvalidURL,
                requests.exceptions.MissingSchema,
                requests.exceptions.InvalidSchema,
                requests.exceptions.InvalidHeader,
            ) as err:
                raise invalid_request_error(request, err, settings.secrets) from None
            except (
                requests.ConnectionError,
                requests.Timeout,
                requests.exceptions.ChunkedEncodingError,
            ) as err:
                delay = transport_retry_delay(policy, attempt)
                if delay is None:
                    raise transport_error(request, attempt, err, settings.secrets) from None
                self.log.warning(
                    "Could not %s (%s); retrying in %.1f s (attempt %d of %d).",
                    request.operation,
                    type(err).__name__,
                    delay,
                    attempt + 1,
                    policy.max_attempts,
                )
                self._sleep(delay)
                continue
            if response.status_code in request.expected:
                return response
            delay = status_retry_delay(policy, attempt, response)
            if delay is None:
                raise error_for(request, response, *settings.secrets)
            self.log.warning(
                "Azure ML answered %d to %s; retrying in %.1f s (attempt %d of %d).",
                response.status_code,
                request.operation,
                delay,
                attempt + 1,
                policy.max_attempts,
            )
            self._sleep(delay)

    def call(self, request: ApiRequest, settings: HttpSettings | None = None) -> Any:
        """
        Send ``request`` with retries and return the decoded JSON body (``None`` if empty).

        :param request: The request to send.
        :param settings: Other credentials for this call; default :meth:`http_settings`.
        """
        settings = settings or self.http_settings()
        return self.call_raw(request, settings).json(request, *settings.secrets)

    def with_key(self, key: str) -> HttpSettings:
        """
        This hook's timeout and retry policy with another bearer key (an endpoint or web service key).

        :param key: The key (secret).
        """
        base = self.http_settings()
        return HttpSettings(
            bearer_headers(key), base.request_timeout, base.retry_policy, (key, *base.secrets)
        )


class AzureMLAsyncHttpMixin:
    """The async transport twin of :class:`AzureMLHttpHook` (aiohttp), for triggers."""

    log: Any

    async def ahttp_settings(self) -> HttpSettings:
        """Headers, timeout, retry policy and secrets, read without blocking the event loop."""
        raise NotImplementedError

    async def _asleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def _asend(self, request: ApiRequest, settings: HttpSettings) -> ApiResponse:
        import aiohttp

        timeout = aiohttp.ClientTimeout(total=settings.request_timeout)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.request(
                request.method, request.url, json=request.json_body, headers=settings.headers
            ) as answer:
                text = await answer.text()
                return ApiResponse(
                    status_code=answer.status,
                    headers={k.lower(): v for k, v in answer.headers.items()},
                    text=text,
                )

    async def acall(self, request: ApiRequest) -> Any:
        """
        Async :meth:`AzureMLHttpHook.call`: same retries, same errors.

        :param request: The request to send.
        """
        import aiohttp

        settings = await self.ahttp_settings()
        policy = settings.retry_policy
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await self._asend(request, settings)
            except aiohttp.InvalidURL as err:  # not ValueError: a body that is not UTF-8 is no config fault
                raise invalid_request_error(request, err, settings.secrets) from None
            except (TimeoutError, aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as err:
                delay = transport_retry_delay(policy, attempt)
                if delay is None:
                    raise transport_error(request, attempt, err, settings.secrets) from None
                self.log.warning(
                    "Could not %s (%s); retrying in %.1f s (attempt %d of %d).",
                    request.operation,
                    type(err).__name__,
                    delay,
                    attempt + 1,
                    policy.max_attempts,
                )
                await self._asleep(delay)
                continue
            if response.status_code in request.expected:
                return response.json(request, *settings.secrets)
            delay = status_retry_delay(policy, attempt, response)
            if delay is None:
                raise error_for(request, response, *settings.secrets)
            self.log.warning(
                "Azure ML answered %d to %s; retrying in %.1f s (attempt %d of %d).",
                response.status_code,
                request.operation,
                delay,
                attempt + 1,
                policy.max_attempts,
            )
            await self._asleep(delay)
