"""
One reading of a yes/no value, for boolean template fields, rule keys and connection extras.

A templated boolean arrives as a string (``"{{ params.force }}"`` renders ``"False"``), where
``bool("False")`` would be true; so strings are parsed, and anything unclear is refused.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_amlretrain.exceptions import AzureMLConfigError

_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})


def parse_flag(value: Any, *, owner: str, field: str, default: bool | None = None) -> bool:
    """
    Read ``value`` as a boolean: ``True``/``False``, ``1``/``0``, or the strings ``true``/``false``,
    ``1``/``0``, ``yes``/``no`` in any case with surrounding spaces.

    :param value: The rendered value.
    :param owner: Who holds the value, for the message (e.g. ``"Task 'promote'"``).
    :param field: The field's name, for the message.
    :param default: What ``None`` or an empty string means; without one they are refused too.
    :raises AzureMLConfigError: when ``value`` is none of these, naming the owner, the field and the value.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    if default is not None and (value is None or (isinstance(value, str) and not value.strip())):
        return default
    raise AzureMLConfigError(
        f"{owner}: {field} must be true or false, not {value!r}. Pass a boolean, or a template "
        "that renders true/false, yes/no or 1/0 (any case)."
    )
