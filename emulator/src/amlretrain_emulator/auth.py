"""Bearer-token checks shared by the emulated APIs (constant-time comparisons, no logging)."""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING

from amlretrain_emulator.errors import unauthorized

if TYPE_CHECKING:
    from collections.abc import Iterable

    from fastapi import Request


def bearer_token(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or ``None``.

    :param request: the request.
    """
    header = request.headers.get("authorization", "")
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def token_matches(token: str | None, accepted: Iterable[str | None]) -> bool:
    """Whether ``token`` equals one of ``accepted`` (constant time).

    :param token: the presented token.
    :param accepted: the valid tokens (``None`` entries are ignored).
    """
    if not token:
        return False
    found = False
    for candidate in accepted:
        if candidate and hmac.compare_digest(token.encode(), candidate.encode()):
            found = True
    return found


def require_bearer(request: Request, accepted: Iterable[str | None], what: str = "api key") -> None:
    """Raise a 401 unless the request carries one of the accepted bearer tokens.

    :param request: the request.
    :param accepted: the valid tokens.
    :param what: how to name the expected token in the message.
    """
    token = bearer_token(request)
    if token is None:
        raise unauthorized(f"Missing credentials: send 'Authorization: Bearer <{what}>'.")
    if not token_matches(token, accepted):
        raise unauthorized(f"The {what} in the Authorization header is not valid for this resource.")
