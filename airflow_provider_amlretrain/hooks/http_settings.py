"""How one Azure ML API is called: headers, timeout and retry policy, read from a connection's extras."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_amlretrain.api.retry import RetryPolicy
from airflow_provider_amlretrain.exceptions import AzureMLConfigError

DEFAULT_REQUEST_TIMEOUT = 60.0
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def environment_names_a_proxy() -> bool:
    """
    Whether ``HTTP_PROXY``/``HTTPS_PROXY``-style variables name an HTTP(S) proxy (read when a client is built).

    Only then does a client "trust the environment". Otherwise it reads neither proxies nor ``~/.netrc``:
    requests would let a ``.netrc`` entry for the host replace the request's own ``Authorization`` header
    (the API key) with basic auth, and aiohttp would look both up in a thread on every request.
    """
    from urllib.request import getproxies

    return any(scheme in ("http", "https") and url for scheme, url in getproxies().items())


@dataclass(frozen=True)
class HttpSettings:
    """
    How to send requests to one Azure ML API.

    :param headers: Headers for every request, auth included (secret: never logged).
    :param request_timeout: Seconds to connect, and seconds to wait for each read, before a try is abandoned.
    :param retry_policy: How failed calls are retried.
    :param secrets: Literal secrets to scrub from any service text that reaches a message.
    """

    headers: dict[str, str] = field(repr=False)
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT
    retry_policy: RetryPolicy = field(default_factory=RetryPolicy)
    secrets: tuple[str, ...] = field(default=(), repr=False)


def bearer_headers(token: str | None = None) -> dict[str, str]:
    """
    JSON request headers, with ``Authorization: Bearer <token>`` when a token is given.

    :param token: An API key, workspace token or Azure AD access token; ``None`` when a pipeline
        policy adds the ``Authorization`` header (ARM).
    """
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return headers


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


def is_loopback(url: str) -> bool:
    """
    Whether ``url`` names this machine (a local emulator), where plain http may carry a token.

    :param url: A URL.
    """
    return (urlsplit(url).hostname or "").lower() in LOOPBACK_HOSTS
