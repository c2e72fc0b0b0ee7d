"""Managed-identity tokens, App Service style: ``GET /msi/token`` and their verification for ARM.

``GET /msi/token?api-version=2019-08-01&resource=https://management.azure.com/`` with header
``X-IDENTITY-HEADER: <identity_header from the config>`` answers
``{"access_token", "expires_on", "resource", "token_type": "Bearer", "client_id"}``
(``expires_on`` in epoch seconds, as a string, like App Service). Point Azure SDK clients at it
with ``IDENTITY_ENDPOINT=http://<emulator>/msi/token`` and ``IDENTITY_HEADER=<secret>``.

Tokens are HS256 JWTs signed with a random key kept in the state directory, so they stay valid
across emulator restarts until they expire; ARM routes accept only tokens issued here for the
ARM resource.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from amlretrain_emulator.auth import bearer_token, token_matches
from amlretrain_emulator.context import get_context
from amlretrain_emulator.errors import ApiError, bad_request, unauthorized

if TYPE_CHECKING:
    from amlretrain_emulator.state import StateStore

MSI_API_VERSION = "2019-08-01"
TOKEN_LIFETIME_SECONDS = 3600
ISSUER = "https://sts.amlretrain-emulator.local/"
ARM_RESOURCES = ("https://management.azure.com", "https://management.core.windows.net")
CLIENT_ID = "00000000-0000-0000-0000-00000000e1a0"

router = APIRouter()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def signing_key(store: StateStore) -> bytes:
    """The token signing key (created on first use, kept in ``workspace.json``).

    :param store: the state store.
    """
    with store.lock:
        workspace = store.workspace() or {}
        if "token_signing_key" not in workspace:
            workspace["token_signing_key"] = secrets.token_hex(32)
            store.put_workspace(workspace)
        return bytes.fromhex(workspace["token_signing_key"])


def issue_token(store: StateStore, resource: str, lifetime: int = TOKEN_LIFETIME_SECONDS) -> tuple[str, int]:
    """Issue a signed token for ``resource``.

    :param store: the state store (holds the signing key).
    :param resource: the audience.
    :param lifetime: seconds of validity.
    :return: the token and its expiry (epoch seconds).
    """
    now = int(time.time())
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = {
        "aud": resource,
        "iss": ISSUER,
        "iat": now,
        "nbf": now,
        "exp": now + lifetime,
        "appid": CLIENT_ID,
    }
    payload = _b64(json.dumps(claims).encode())
    signature = hmac.new(signing_key(store), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(signature)}", now + lifetime


def verify_token(store: StateStore, token: str | None, audiences: tuple[str, ...]) -> dict[str, Any]:
    """Check a bearer token issued by :func:`issue_token`.

    :param store: the state store.
    :param token: the presented token.
    :param audiences: accepted audiences (compared without trailing ``/``).
    :raises ApiError: 401 if missing, forged, expired or for another resource.
    """
    if not token:
        raise ApiError(
            401, "AuthenticationFailed", "Missing credentials: send 'Authorization: Bearer <AAD token>'."
        )
    try:
        header, payload, signature = token.split(".")
        expected = hmac.new(signing_key(store), f"{header}.{payload}".encode(), hashlib.sha256).digest()
        valid = hmac.compare_digest(expected, _unb64(signature))
        claims = json.loads(_unb64(payload)) if valid else {}
    except (ValueError, json.JSONDecodeError):
        valid, claims = False, {}
    if not valid:
        raise ApiError(401, "InvalidAuthenticationToken", "The access token is invalid.")
    if claims.get("exp", 0) < time.time():
        raise ApiError(401, "ExpiredAuthenticationToken", "The access token has expired.")
    if str(claims.get("aud", "")).rstrip("/") not in {a.rstrip("/") for a in audiences}:
        raise ApiError(
            401, "InvalidAuthenticationTokenAudience", "The access token has the wrong audience for this API."
        )
    return claims


@router.get("/msi/token")
async def msi_token(request: Request) -> JSONResponse:
    """Issue a token like App Service's managed-identity endpoint."""
    ctx = get_context(request)
    if not ctx.config.identity_header:
        raise ApiError(
            404, "NotFound", "The managed-identity endpoint is disabled (no identity_header configured)."
        )
    if not token_matches(request.headers.get("x-identity-header"), (ctx.config.identity_header,)):
        raise unauthorized("Missing or wrong X-IDENTITY-HEADER.")
    if request.query_params.get("api-version") != MSI_API_VERSION:
        raise bad_request(f"Use api-version={MSI_API_VERSION}.")
    resource = request.query_params.get("resource")
    if not resource:
        raise bad_request("The resource query parameter is required.")
    token, expires_on = issue_token(ctx.store, resource)
    return JSONResponse(
        {
            "access_token": token,
            "expires_on": str(expires_on),
            "resource": resource,
            "token_type": "Bearer",
            "client_id": CLIENT_ID,
        }
    )


def require_arm_token(request: Request) -> dict[str, Any]:
    """Require a token issued here for the ARM resource.

    :param request: the request.
    """
    return verify_token(get_context(request).store, bearer_token(request), ARM_RESOURCES)
