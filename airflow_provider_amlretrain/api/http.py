"""Requests and answers as plain data, and the one mapping from an error answer to an exception."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_amlretrain.exceptions import (
    AzureMLApiError,
    AzureMLAuthError,
    AzureMLNotFoundError,
    AzureMLRequestRejectedError,
    AzureMLResponseError,
)
from airflow_provider_amlretrain.redaction import redact, strip_query


def answer_shape(value: Any) -> str:
    """
    Describe a decoded answer by its shape only (an object's keys, or its type), for error messages.

    Answers can carry keys or SAS tokens, so their values never go into a message.

    :param value: The decoded JSON answer (or part of it).
    """
    if isinstance(value, dict):
        return f"an object with keys {sorted(str(key) for key in value)[:20]}"
    return f"a JSON {type(value).__name__}" if value is not None else "nothing (null)"


@dataclass(frozen=True)
class ApiRequest:
    """
    One HTTP request to an Azure ML API, independent of the transport that sends it.

    :param method: HTTP method.
    :param url: Full URL, including ``api-version``.
    :param json_body: Body to send as JSON, or ``None`` for no body.
    :param expected: Status codes that mean success.
    :param operation: Human name of the call for messages, e.g. ``"submit BES job"``.
    """

    method: str
    url: str
    json_body: Any = field(default=None, repr=False)
    expected: tuple[int, ...] = (200,)
    operation: str = "call Azure ML"

    @property
    def safe_url(self) -> str:
        """The URL without its query string, for messages."""
        return strip_query(self.url)


@dataclass(frozen=True)
class ApiResponse:
    """
    One HTTP answer.

    :param status_code: HTTP status.
    :param headers: Response headers (lower-case names).
    :param text: Body text.
    """

    status_code: int
    headers: dict[str, str]
    text: str

    @property
    def request_id(self) -> str | None:
        """Azure's ``x-ms-request-id`` header."""
        return self.headers.get("x-ms-request-id")

    def json(self, request: ApiRequest, *secrets: str | None) -> Any:
        """
        Parse the body as JSON.

        :param request: The request, for the error message.
        :param secrets: Literal secrets to scrub from the body quoted in the error message.
        :raises AzureMLResponseError: if the body is not JSON.
        """
        try:
            return json.loads(self.text) if self.text.strip() else None
        except ValueError as err:
            raise AzureMLResponseError(
                f"Could not {request.operation}: {request.method} {request.safe_url} answered "
                f"{self.status_code} with a body that is not JSON: {redact(self.text, *secrets)[:200]!r}.",
                status_code=self.status_code,
                method=request.method,
                url=request.safe_url,
                request_id=self.request_id,
            ) from err


_HINTS = {
    400: "The service rejected the request; fix what the message names.",
    401: "Check the API key (password) of the Airflow connection.",
    403: "The key is valid but not allowed to do this; use the workspace token or the right endpoint key.",
    404: "Check the workspace id, service id or job id in the connection's host and the task arguments.",
}


# 4xx answers that may succeed when sent again: timeout, conflict with a concurrent change, throttling.
_TRANSIENT_CLIENT_ERRORS = frozenset({408, 409, 429})


def error_class_for(status: int) -> type[AzureMLApiError]:
    """
    The exception class for an error answer: permanent for a refused request, retryable otherwise.

    :param status: The HTTP status of the answer.
    """
    if status in (401, 403):
        return AzureMLAuthError
    if status == 404:
        return AzureMLNotFoundError
    if 400 <= status < 500 and status not in _TRANSIENT_CLIENT_ERRORS:
        return AzureMLRequestRejectedError
    return AzureMLApiError


def error_for(request: ApiRequest, response: ApiResponse, *secrets: str | None) -> AzureMLApiError:
    """
    Build the exception for an answer whose status is not one of ``request.expected``.

    :param request: The request that was sent.
    :param response: The answer received.
    :param secrets: Literal secrets to scrub from the service's text.
    """
    code: str | None = None
    message: str | None = None
    try:
        body = json.loads(response.text) if response.text.strip() else None
    except ValueError:
        body = None
    if isinstance(body, dict):
        nested = body.get("error")
        error: dict[str, Any] = nested if isinstance(nested, dict) else body
        raw_code = error.get("code") or error.get("Code")
        raw_message = error.get("message") or error.get("Message") or error.get("details")
        code = str(raw_code) if raw_code else None
        message = str(raw_message) if raw_message else None
    if message is None and response.text.strip():
        message = response.text.strip()
    message = redact(message, *secrets)[:300] if message else None
    status = response.status_code
    text = f"Could not {request.operation}: {request.method} {request.safe_url} answered {status}"
    if code:
        text += f" {code}"
    if message:
        text += f": {message.rstrip('. ')}"
    text += "."
    hint = _HINTS.get(status)
    if hint:
        text += " " + hint
    if response.request_id:
        text += f" (x-ms-request-id {response.request_id})"
    cls = error_class_for(status)
    return cls(
        text,
        status_code=status,
        method=request.method,
        url=request.safe_url,
        error_code=code,
        service_message=message,
        request_id=response.request_id,
    )
