"""Exceptions raised by the local dev stack."""

from __future__ import annotations


class DevStackError(RuntimeError):
    """A dev stack operation failed; the message says what to do about it."""
