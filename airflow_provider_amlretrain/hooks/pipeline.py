"""The azure-core pipeline every hook sends through, and the one translation to and from its types.

Policies, in azure-core's documented order: client request id, user agent, redirects, retries (this provider's rules on
azure-core's loop), authentication (ARM only), redacted HTTP logging, and the cleanup of sensitive
headers on a redirect to another host. Requests and answers cross this module as
:class:`~airflow_provider_amlretrain.api.http.ApiRequest` / :class:`~airflow_provider_amlretrain.api.http.ApiResponse`,
so no code above the hooks knows azure-core.
"""

from __future__ import annotations

import codecs
import json
import logging
import re
import uuid
from typing import TYPE_CHECKING, Any

from azure.core.pipeline.policies import (
    AsyncRedirectPolicy,
    HttpLoggingPolicy,
    RedirectPolicy,
    RequestIdPolicy,
    SensitiveHeaderCleanupPolicy,
    UserAgentPolicy,
)
from azure.core.rest import HttpRequest

from airflow_provider_amlretrain.api.http import ApiRequest, ApiResponse
from airflow_provider_amlretrain.exceptions import AzureMLConfigError, AzureMLTransportError
from airflow_provider_amlretrain.redaction import redact

if TYPE_CHECKING:
    from azure.core.pipeline.policies import HTTPPolicy, SansIOHTTPPolicy

    from airflow_provider_amlretrain.hooks.http_settings import HttpSettings

USER_AGENT = "airflow-provider-amlretrain"

HTTP_LOGGER = "airflow_provider_amlretrain.http"
"""The logger of every request and answer line (URL without query values but ``api-version``, no secret header)."""

TRIGGER_HTTP_LOGGER = "airflow_provider_amlretrain.http.triggerer"
"""The same lines from the async clients of triggers: at WARNING unless logging configuration says otherwise."""


class RedactingHttpLoggingPolicy(HttpLoggingPolicy):
    """
    azure-core's request/answer logging with nothing secret in it.

    Header values are logged only for a short allowlist (``Authorization``, ``api-key`` and every other
    header print as ``REDACTED``); query values only for ``api-version`` (a SAS ``sig``, ``se``, ``sp``...
    print as ``REDACTED``); bodies are never logged.

    Lines are written at DEBUG: turn them on with the ``airflow_provider_amlretrain.http`` logger.

    :param logger: Where the lines go.
    """

    DEFAULT_HEADERS_ALLOWLIST = {
        "x-ms-request-id",
        "x-ms-client-request-id",
        "x-ms-return-client-request-id",
        "Retry-After",
        "retry-after-ms",
        "x-ms-retry-after-ms",
        "Content-Type",
        "Content-Length",
        "Accept",
        "User-Agent",
        "Date",
        "Location",
        "Azure-AsyncOperation",
    }
    DEFAULT_QUERY_PARAMS_ALLOWLIST = {"api-version"}

    def __init__(self, logger: logging.Logger) -> None:
        super().__init__(logger=logger)
        # DEBUG: a task polling every few seconds would otherwise fill its log with request lines.
        self.http_logging_level = logging.DEBUG
        # Exactly the allowlists above: azure-core's defaults (which change between releases) are not added.
        self.allowed_header_names = type(self.allowed_header_names)(self.DEFAULT_HEADERS_ALLOWLIST)
        self.allowed_query_params = type(self.allowed_query_params)(self.DEFAULT_QUERY_PARAMS_ALLOWLIST)


def http_logger(*, in_triggerer: bool) -> logging.Logger:
    """
    The logger of the HTTP lines: quiet (WARNING) in the triggerer, where thousands of polls would flood it.

    :param in_triggerer: Whether the client serves triggers.
    """
    if not in_triggerer:
        return logging.getLogger(HTTP_LOGGER)
    logger = logging.getLogger(TRIGGER_HTTP_LOGGER)
    if logger.level == logging.NOTSET:  # a level set in logging configuration wins
        logger.setLevel(logging.WARNING)
    return logger


def pipeline_policies(
    retry: HTTPPolicy[Any, Any] | Any,
    *,
    logger: logging.Logger,
    authentication: HTTPPolicy[Any, Any] | SansIOHTTPPolicy[Any, Any] | None = None,
) -> list[Any]:
    """
    The policies of one client, in azure-core's documented order.

    :param retry: The retry policy (sync or async, with this provider's rules).
    :param logger: Where the redacted HTTP lines go.
    :param authentication: The credential policy (ARM), or ``None`` when requests carry their key.
    """
    from airflow_provider_amlretrain.hooks.retry import AzureMLAsyncRetryPolicy

    policies: list[Any] = [
        RequestIdPolicy(),  # x-ms-client-request-id: support correlates with it; ARMPolling repeats it
        UserAgentPolicy(base_user_agent=USER_AGENT),
        AsyncRedirectPolicy() if isinstance(retry, AzureMLAsyncRetryPolicy) else RedirectPolicy(),
        retry,
    ]
    if authentication is not None:
        policies.append(authentication)
    policies.extend([RedactingHttpLoggingPolicy(logger), SensitiveHeaderCleanupPolicy()])
    return policies


def to_http_request(request: ApiRequest, settings: HttpSettings) -> HttpRequest:
    """
    The azure-core request for an :class:`ApiRequest`.

    :param request: The request.
    :param settings: Headers (auth included) of the call.
    """
    body = None if request.json_body is None else json.dumps(request.json_body).encode("utf-8")
    # A random id (RequestIdPolicy keeps it): azure-core's own default, uuid1, costs more CPU per call.
    headers = {**settings.headers, "x-ms-client-request-id": str(uuid.uuid4())}
    return HttpRequest(request.method, request.url, headers=headers, content=body)


def to_api_response(response: Any) -> ApiResponse:
    """
    An azure-core answer (``azure.core.rest.HttpResponse`` or its async twin, body read) as an :class:`ApiResponse`.

    :param response: The answer.
    """
    headers = {k.lower(): v for k, v in response.headers.items()}
    return ApiResponse(
        status_code=response.status_code,
        headers=headers,
        text=(response.content or b"").decode(_charset(headers.get("content-type", "")), errors="replace"),
    )


def _charset(content_type: str) -> str:
    """The ``charset`` of a ``Content-Type`` (UTF-8, JSON's, when absent or unknown)."""
    match = _CHARSET.search(content_type)
    if match:
        try:
            return codecs.lookup(match.group(1)).name
        except LookupError:
            pass
    return "utf-8"


_CHARSET = re.compile(r"charset=[\"']?([\w.:-]+)", re.IGNORECASE)


def transport_failure(
    request: ApiRequest,
    err: BaseException,
    *,
    tries: int,
    nothing_sent: bool,
    unsendable: bool,
    secrets: tuple[str, ...],
) -> AzureMLConfigError | AzureMLTransportError:
    """
    The exception for a request that got no answer.

    :param request: The request.
    :param err: The azure-core error (its ``inner_exception`` is the transport library's).
    :param tries: Tries made.
    :param nothing_sent: Whether the request surely never reached the service.
    :param unsendable: Whether it could not even be built (a malformed URL or header).
    :param secrets: Literal secrets to scrub.
    """
    cause = getattr(err, "inner_exception", None) or err
    reason = f"{type(cause).__name__}: {redact(str(cause), *secrets)}"
    if unsendable:
        return AzureMLConfigError(
            f"Could not {request.operation}: {request.method} {request.safe_url} cannot be sent "
            f"({reason}). Check the connection's host (a full https:// URL) and that its key has no line "
            "breaks or spaces."
        )
    if not request.safe_to_repeat and not nothing_sent:
        return AzureMLTransportError(
            f"Could not {request.operation}: {request.method} {request.safe_url} got no answer ({reason}) "
            f"after {tries} attempt(s). The service may have processed the request, so it was not repeated "
            "automatically: check its effect (e.g. list the jobs) before trying again.",
            method=request.method,
            url=request.safe_url,
        )
    return AzureMLTransportError(
        f"Could not {request.operation}: {request.method} {request.safe_url} failed after {tries} "
        f"attempt(s): {reason}. Check that the host is reachable and the region in the connection's host "
        "is right.",
        method=request.method,
        url=request.safe_url,
    )
