"""What a blob-arrival watch has seen: a name cursor, a last-modified watermark and the blobs at or after it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

STATE_VERSION = 1


@dataclass
class ArrivalState:
    """
    The seen-state of one watch, small whatever the container's history (kept in the asset state store).

    :param cursor: The greatest watched blob name listed so far: a poll lists from it on.
    :param modified_since: Blobs last modified before this are old (set by each full scan, a margin early).
    :param seen: Name to ETag of the blobs reported or taken as seen that were modified at or after
        ``modified_since``; a listed blob is new when its ETag is not the one here.
    :param full_scan_at: When the last full scan ran (ISO 8601).
    """

    cursor: str = ""
    modified_since: datetime | None = None
    seen: dict[str, str] = field(default_factory=dict)
    full_scan_at: datetime | None = None

    def is_new(self, name: str, etag: str, modified: datetime | None) -> bool:
        """
        Whether a listed blob is to be reported: modified since the watermark, and not with this ETag already.

        :param name: The blob's name.
        :param etag: Its ETag (changes when the blob is overwritten).
        :param modified: Its last-modified time.
        """
        if self.seen.get(name) == etag:
            return False
        return self.modified_since is None or modified is None or modified >= self.modified_since

    def after_full_scan(
        self, listed: dict[str, tuple[str, datetime | None]], newest: datetime | None, margin: timedelta
    ) -> None:
        """
        Move the watermark to the newest blob of a full scan (less ``margin``) and forget what is older.

        :param listed: Name to ``(etag, last_modified)`` of every blob the full scan listed.
        :param newest: The newest last-modified time among them.
        :param margin: How far before ``newest`` the watermark goes.
        """
        if newest is not None:
            self.modified_since = newest - margin
        since = self.modified_since
        self.seen = {
            name: etag
            for name, etag in self.seen.items()
            if name in listed and (since is None or (listed[name][1] or since) >= since)
        }
        self.full_scan_at = datetime.now(UTC)

    def full_scan_due(self, interval: float) -> bool:
        """
        Whether the next listing is a full one.

        :param interval: Seconds between two full scans.
        """
        return self.full_scan_at is None or datetime.now(UTC) - self.full_scan_at >= timedelta(
            seconds=interval
        )

    def to_json(self) -> dict[str, Any]:
        """The plain-data form the asset state store keeps."""
        return {
            "version": STATE_VERSION,
            "cursor": self.cursor,
            "modified_since": self.modified_since.isoformat() if self.modified_since else None,
            "seen": dict(self.seen),
            "full_scan_at": self.full_scan_at.isoformat() if self.full_scan_at else None,
        }

    @classmethod
    def from_json(cls, value: Any) -> ArrivalState | None:
        """
        The state stored by :meth:`to_json`; ``None`` for anything else (the watch then starts over).

        :param value: What the asset state store returned.
        """
        if not isinstance(value, dict) or value.get("version") != STATE_VERSION:
            return None
        try:
            return cls(
                cursor=str(value.get("cursor") or ""),
                modified_since=_moment(value.get("modified_since")),
                seen={str(k): str(v) for k, v in (value.get("seen") or {}).items()},
                full_scan_at=_moment(value.get("full_scan_at")),
            )
        except (TypeError, ValueError, AttributeError):
            return None


def _moment(text: Any) -> datetime | None:
    return datetime.fromisoformat(str(text)) if text else None


class InMemoryStateStore:
    """A stand-in for the asset state store when the trigger runs outside an asset watcher (``aget``/``aset``)."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    async def aget(self, key: str, default: Any = None) -> Any:
        """
        The stored value, or ``default``.

        :param key: The state key.
        :param default: Returned when nothing is stored.
        """
        return self.values.get(key, default)

    async def aset(self, key: str, value: Any) -> None:
        """
        Store a value.

        :param key: The state key.
        :param value: Plain data.
        """
        self.values[key] = value
