"""Scrub secrets (API keys, account keys, SAS signatures, bearer tokens) out of text.

Every message built from data a service or a user gave us passes through :func:`redact`
before it reaches a log line or an exception, so a secret echoed back by a service is
never printed.
"""

from __future__ import annotations

import re

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Storage connection strings: AccountKey=...; SharedAccessSignature=...
    (re.compile(r"(?i)(AccountKey|SharedAccessSignature)=[^;\"'\s]*"), r"\1=***"),
    # SAS query parameters: the signature is the secret part.
    (re.compile(r"(?i)([?&]sig=)[^&\"'\s]*"), r"\1***"),
    # Authorization headers and bearer tokens.
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"), r"\1***"),
    # api_key=..., "PrimaryKey": "..." style fields.
    (
        re.compile(
            r"(?i)([\"']?(?:api_?key|primary_?key|secondary_?key|access_token|password|client_secret)[\"']?\s*[:=]\s*[\"']?)[^\"',;\s}]+"
        ),
        r"\1***",
    ),
)


def redact(text: str, *secrets: str | None) -> str:
    """
    Return ``text`` with known secret shapes and the given literal secrets replaced by ``***``.

    :param text: Any text that may contain secrets (a URL, a service answer, an error message).
    :param secrets: Literal secret values to remove wherever they appear.
    """
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def strip_query(url: str) -> str:
    """
    Return ``url`` without its query string (where SAS tokens live).

    :param url: A blob or API URL.
    """
    return url.split("?", 1)[0]
