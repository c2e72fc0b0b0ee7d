"""
The data version of a run: which data its model was trained on, so that a promotion never moves back in data time.

- A scheduled or backfill run (or a manual run with a logical date) has its data interval.
- A run that trained on a blob it was given (an asset-triggered run, or one triggered with a blob) takes the date in
  the blob's path, found with a pattern (default: the first ``YYYY-MM-DD``, optionally with a time), else the blob's
  last-modified time. The promotion is told the blob through ``data_version_blob``.
- A run started by exactly one blob arrival, without ``data_version_blob``, takes it from that asset event.
- Any other run has no data version: it does not promote unless forced.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from airflow_provider_amlretrain.exceptions import AzureMLConfigError

DEFAULT_DATA_VERSION_PATTERN = r"(?P<date>\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2})?)?)"
"""The first ISO date (optionally with a time) in a blob path, e.g. ``binary/dt=2026-11-05/train.csv``."""


@dataclass(frozen=True)
class DataVersion:
    """
    The data a model was trained on, as the deployment record keeps it.

    :param start: ISO 8601 start (for a dated blob: its date, as for the end).
    :param end: ISO 8601 end: what the staleness check compares.
    :param source: Where it came from, in words (logged and recorded).
    """

    start: str
    end: str
    source: str


def compile_pattern(pattern: Any) -> re.Pattern[str]:
    """
    Check a ``data_version_pattern``: a regular expression with a group named ``date`` (or one group).

    :param pattern: The rendered pattern.
    :raises AzureMLConfigError: when it is not a usable pattern.
    """
    try:
        compiled = re.compile(str(pattern))
    except re.error as err:
        raise AzureMLConfigError(
            f"data_version_pattern {pattern!r} is not a regular expression: {err}."
        ) from None
    if "date" not in compiled.groupindex and compiled.groups != 1:
        raise AzureMLConfigError(
            f"data_version_pattern {pattern!r} must capture the date, in a group named 'date' "
            r"(e.g. r'dt=(?P<date>\d{4}-\d{2}-\d{2})') or in its only group."
        )
    return compiled


def date_in_path(path: str, pattern: re.Pattern[str]) -> datetime | None:
    """
    The date the pattern finds in a blob path (UTC when it has no offset), or ``None``.

    :param path: ``container/blob`` or a blob name.
    :param pattern: A compiled ``data_version_pattern``.
    :raises AzureMLConfigError: when the pattern matches something that is not a date.
    """
    found = pattern.search(path)
    if not found:
        return None
    text = found.group("date") if "date" in pattern.groupindex else found.group(1)
    try:
        moment = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        raise AzureMLConfigError(
            f"data_version_pattern found {text!r} in {path!r}, which is not an ISO date (YYYY-MM-DD[THH:MM[:SS]])."
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def from_blob(
    path: str, pattern: re.Pattern[str], last_modified: Callable[[], datetime | None]
) -> DataVersion | None:
    """
    The data version of a training blob: the date in its path, else its last-modified time.

    :param path: ``container/blob`` (or the blob name) the model was trained on.
    :param pattern: A compiled ``data_version_pattern``.
    :param last_modified: Reads the blob's last-modified time (called only when the path has no date).
    """
    dated = date_in_path(path, pattern)
    if dated is not None:
        return DataVersion(dated.isoformat(), dated.isoformat(), f"the date in blob path {path}")
    modified = last_modified()
    if modified is None:
        return None
    modified = modified if modified.tzinfo else modified.replace(tzinfo=UTC)
    return DataVersion(modified.isoformat(), modified.isoformat(), f"the last-modified time of blob {path}")


def from_asset_events(events: Any, pattern: re.Pattern[str]) -> tuple[DataVersion | None, str]:
    """
    The data version of a run started by one blob arrival (the payload of ``WasbBlobArrivalTrigger``).

    :param events: ``triggering_asset_events`` of the context (asset to events).
    :param pattern: A compiled ``data_version_pattern``.
    :return: The version, or ``None`` and why not.
    """
    payloads = [
        event.extra["payload"]
        for batch in (events.values() if isinstance(events, Mapping) else [])
        for event in batch
        if isinstance(getattr(event, "extra", None), Mapping)
        and isinstance(event.extra.get("payload"), Mapping)
        and event.extra["payload"].get("blob")
    ]
    if not payloads:
        return None, "it was not started by a blob arrival"
    if len(payloads) > 1:
        return None, (
            f"{len(payloads)} blob arrivals started it, and the promotion was not told which blob the model was "
            "trained on (data_version_blob)"
        )
    payload = payloads[0]
    path = (
        f"{payload.get('container')}/{payload['blob']}" if payload.get("container") else str(payload["blob"])
    )

    def stamped() -> datetime | None:
        value = payload.get("last_modified")
        try:
            return datetime.fromisoformat(str(value)) if value else None
        except ValueError:
            return None

    version = from_blob(path, pattern, stamped)
    return version, "" if version else f"blob {path} has no date in its path and no last-modified time"


def from_data_interval(start: datetime | None, end: datetime | None) -> DataVersion | None:
    """
    The data version of a run with a data interval (scheduled, backfill, manual with a logical date).

    :param start: ``data_interval_start``.
    :param end: ``data_interval_end``.
    """
    if end is None:
        return None
    return DataVersion((start or end).isoformat(), end.isoformat(), "the run's data interval")
