"""The one place that shapes error answers: ``{"error": {"code", "message"}}`` + ``x-ms-request-id``."""

from __future__ import annotations

import json
import re
import uuid
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI, Request
    from starlette.responses import Response
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID_HEADER = "x-ms-request-id"

_SECRET_PATTERNS = (
    re.compile(r"(?i)(AccountKey=)[^;\s\"']+"),
    re.compile(r"(?i)(SharedAccessSignature=)[^;\s\"']+"),
    re.compile(r"(?i)([?&]sig=)[^&\s\"']+"),
    re.compile(r"(?i)(Bearer\s+)[A-Za-z0-9._~+/=-]+"),
)


def redact(text: str) -> str:
    """Remove account keys, SAS signatures and bearer tokens from a text.

    :param text: any text that may reach a client or a log.
    """
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(r"\1***", text)
    return text


class ApiError(Exception):
    """An error answer of the emulated Azure APIs.

    :param status: HTTP status code.
    :param code: the ``error.code`` value.
    :param message: the ``error.message`` value (must not hold secrets).
    :param headers: extra response headers (e.g. ``Retry-After``).
    """

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def bad_request(message: str, code: str = "BadArgument") -> ApiError:
    """A 400 error.

    :param message: what is wrong with the request.
    :param code: the error code.
    """
    return ApiError(400, code, message)


def not_found(message: str, code: str = "NotFound") -> ApiError:
    """A 404 error.

    :param message: what was not found.
    :param code: the error code.
    """
    return ApiError(404, code, message)


def unauthorized(
    message: str = "The request is not authorized: send 'Authorization: Bearer <api key>'.",
) -> ApiError:
    """A 401 error.

    :param message: why the request is not authorized.
    """
    return ApiError(401, "Unauthorized", message)


def error_body(code: str, message: str) -> dict[str, Any]:
    """The error payload shape shared by every emulated API.

    :param code: the error code.
    :param message: the human message.
    """
    return {"error": {"code": code, "message": redact(message)}}


def error_bytes(code: str, message: str) -> bytes:
    """The error payload as JSON bytes (for raw ASGI answers).

    :param code: the error code.
    :param message: the human message.
    """
    return json.dumps(error_body(code, message)).encode()


def request_id_of(scope_or_request: Any) -> str:
    """The request id assigned by :class:`RequestIdMiddleware` (or a new one).

    :param scope_or_request: an ASGI scope or a Starlette request.
    """
    scope = getattr(scope_or_request, "scope", scope_or_request)
    state = scope.setdefault("state", {})
    if "request_id" not in state:
        state["request_id"] = str(uuid.uuid4())
    return state["request_id"]


def error_response(request: Request, error: ApiError) -> Response:
    """Render an :class:`ApiError`.

    :param request: the request being answered.
    :param error: the error.
    """
    from fastapi.responses import JSONResponse

    headers = {REQUEST_ID_HEADER: request_id_of(request), **error.headers}
    return JSONResponse(error_body(error.code, error.message), status_code=error.status, headers=headers)


_STATUS_CODES = {
    400: "BadArgument",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    413: "RequestTooLarge",
    415: "UnsupportedMediaType",
    429: "TooManyRequests",
    500: "InternalError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}


def code_for_status(status: int) -> str:
    """A plausible ``error.code`` for an HTTP status.

    :param status: the HTTP status.
    """
    return _STATUS_CODES.get(status, "Error")


def install_error_handlers(app: FastAPI) -> None:
    """Make every error (ours, routing, validation, unexpected) use the Azure error shape.

    :param app: the application.
    """
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException as StarletteHTTPException

    async def _api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return error_response(request, exc)

    async def _http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        message = exc.detail if isinstance(exc.detail, str) else "The request failed."
        if exc.status_code == 404:
            message = f"The URL '{request.url.path}' does not map to any known resource or operation."
        return error_response(request, ApiError(exc.status_code, code_for_status(exc.status_code), message))

    async def _validation_error(request: Request, exc: Exception) -> Response:
        return error_response(request, bad_request(f"Invalid request: {exc}"))

    async def _unexpected(request: Request, exc: Exception) -> Response:
        return error_response(
            request, ApiError(500, "InternalError", f"Unexpected emulator error ({type(exc).__name__}).")
        )

    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected)


class RequestIdMiddleware:
    """Raw ASGI middleware: assigns a request id and puts ``x-ms-request-id`` on every answer.

    :param app: the wrapped ASGI app.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope)

        async def _send(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if not any(name.lower() == REQUEST_ID_HEADER.encode() for name, _ in headers):
                    headers.append((REQUEST_ID_HEADER.encode(), request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, _send)
