"""
The deployment record of a target (an endpoint or a web service), kept as JSON in blob storage.

It says what is deployed now (model location, metrics, the data interval it was trained on,
the DAG run) and keeps the history. Every write is conditional (``If-Match`` on the ETag read,
or ``If-None-Match: *`` for a new record), so two runs racing for one target cannot both win.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow_provider_amlretrain.exceptions import DeploymentConflictError, DeploymentRecordError

if TYPE_CHECKING:
    from azure.storage.blob import BlobServiceClient

RECORD_FORMAT = "amlretrain.deployment-record/1"
HISTORY_LIMIT = 100


def utcnow_iso() -> str:
    """The current UTC time, ISO 8601."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def parse_utc(value: Any) -> datetime | None:
    """
    An ISO 8601 time from a record as an aware datetime (a time without offset is taken as UTC).

    :param value: The stored value.
    :return: ``None`` when the value is missing or not a time.
    """
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def metrics_of(entry: dict[str, Any] | None) -> dict[str, float] | None:
    """
    The metrics of a record entry (``current`` or one of ``history``).

    :param entry: The entry.
    """
    metrics = (entry or {}).get("metrics")
    return {str(k): float(v) for k, v in metrics.items()} if isinstance(metrics, dict) else None


def _is_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return False
    try:
        return math.isfinite(float(value))
    except ValueError:
        return False


@dataclass
class DeploymentRecord:
    """
    :param target: A stable name of the target, e.g. ``classic:ws/svc/endpoint``.
    :param current: What is deployed now (``None`` before the first promotion through this provider).
    :param pending: A promotion in progress: its claim (run, time, lease).
    :param attention: Set when a rollback failed: the target may serve a model other than ``current``
        (which one, since when, why) until a later promotion succeeds.
    :param history: Past deployments and attempts, newest last.
    """

    target: str
    current: dict[str, Any] | None = None
    pending: dict[str, Any] | None = None
    attention: dict[str, Any] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> str:
        """Serialize."""
        return json.dumps(
            {
                "format": RECORD_FORMAT,
                "target": self.target,
                "current": self.current,
                "pending": self.pending,
                "attention": self.attention,
                "history": self.history[-HISTORY_LIMIT:],
            },
            indent=2,
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str, *, source: str) -> DeploymentRecord:
        """
        Parse a record.

        :param text: The blob's text.
        :param source: The blob's location, for messages.
        """
        try:
            data = json.loads(text)
        except ValueError as err:
            raise DeploymentRecordError(
                f"The deployment record {source} is not JSON: {err}. Fix or delete it."
            ) from err
        if not isinstance(data, dict) or data.get("format") != RECORD_FORMAT:
            raise DeploymentRecordError(
                f"The deployment record {source} is not in format {RECORD_FORMAT!r}; fix or delete it."
            )
        problems = []
        for key in ("current", "pending", "attention"):
            if data.get(key) is not None and not isinstance(data[key], dict):
                problems.append(f"{key!r} must be an object or null, not {type(data[key]).__name__}")
        history = data.get("history") or []
        if not isinstance(history, list) or not all(isinstance(entry, dict) for entry in history):
            problems.append("'history' must be a list of objects")
        metrics = (
            (data.get("current") or {}).get("metrics") if isinstance(data.get("current"), dict) else None
        )
        if metrics is not None and not (
            isinstance(metrics, dict) and all(_is_number(v) for v in metrics.values())
        ):
            problems.append("'current.metrics' must map metric names to numbers")
        if problems:
            raise DeploymentRecordError(
                f"The deployment record {source} is damaged: {'; '.join(problems)}. Fix it (or delete it "
                "to start a new record; the gate then has no baseline)."
            )
        return cls(
            target=str(data.get("target")),
            current=data.get("current"),
            pending=data.get("pending"),
            attention=data.get("attention"),
            history=list(history),
        )

    @property
    def baseline_metrics(self) -> dict[str, float] | None:
        """The metrics of the deployed model, for the evaluation gate."""
        return metrics_of(self.current)

    def baseline_for(self, job_id: str | None) -> dict[str, Any] | None:
        """
        The entry a model of BES job ``job_id`` is compared with: the deployed model, or, when that is this very
        job's model (a gate run again after its promotion), the model it replaced. A model is never its own baseline.

        :param job_id: The job that trained the candidate.
        """
        if not self.current or not job_id or self.current.get("job_id") != job_id:
            return self.current
        replaced = [e for e in self.history if e.get("outcome") == "replaced" and e.get("job_id") != job_id]
        return replaced[-1] if replaced else None

    def pending_is_live(self, now: datetime | None = None) -> bool:
        """
        Whether a claim by another promotion still holds (its lease has not expired).

        :param now: The current time, for tests.
        """
        if not self.pending:
            return False
        now = now or datetime.now(UTC)
        claimed = parse_utc(self.pending.get("claimed_at"))
        try:
            lease = float(self.pending.get("lease_seconds", 1800))
        except (TypeError, ValueError):
            lease = math.nan
        if claimed is None or not math.isfinite(lease):
            return False  # an unreadable claim protects nothing: treat it as expired
        return (now - claimed).total_seconds() < lease


@dataclass(frozen=True)
class VersionedRecord:
    """
    A record as read, with the ETag a conditional write must match.

    :param record: The record.
    :param etag: The blob's ETag, or ``None`` when no record exists yet.
    """

    record: DeploymentRecord
    etag: str | None


class DeploymentRecordStore:
    """
    Reads and conditionally writes deployment records through a ``wasb`` connection.

    The storage client is made once per store (a promotion reads the record and writes it twice).

    :param wasb_conn_id: The ``wasb`` connection of the storage account.
    :param container: The container holding records.
    :param prefix: The folder of records inside the container.
    """

    def __init__(self, wasb_conn_id: str, container: str, prefix: str = "deployments") -> None:
        self.wasb_conn_id = wasb_conn_id
        self.container = container
        self.prefix = prefix.strip("/")

    @cached_property
    def _client(self) -> BlobServiceClient:
        from airflow_provider_amlretrain.hooks.blob_storage import blob_service_client

        return blob_service_client(self.wasb_conn_id)

    def blob_name(self, target: str) -> str:
        """
        Where a target's record lives.

        :param target: The target name.
        """
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in target)
        return f"{self.prefix}/{safe}.json"

    def read(self, target: str) -> VersionedRecord:
        """
        Read a target's record (an empty one, with no ETag, if none exists).

        :param target: The target name.
        """
        from azure.core.exceptions import ResourceNotFoundError

        blob = self._client.get_blob_client(self.container, self.blob_name(target))
        try:
            download = blob.download_blob()
            text = download.readall().decode("utf-8")
            etag = download.properties.etag
        except ResourceNotFoundError:
            return VersionedRecord(DeploymentRecord(target=target), None)
        return VersionedRecord(
            DeploymentRecord.from_json(text, source=f"{self.container}/{self.blob_name(target)}"), etag
        )

    def write(self, record: DeploymentRecord, etag: str | None) -> str:
        """
        Write a record only if nobody changed it since ``etag`` was read.

        :param record: The new record.
        :param etag: The ETag read, or ``None`` to create a record that must not exist yet.
        :return: The new ETag.
        :raises DeploymentConflictError: when another writer got there first.
        """
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError

        container = self._client.get_container_client(self.container)
        if etag is None:  # a new record: its container may not exist yet
            try:
                container.create_container()
            except ResourceExistsError:
                pass
        blob = container.get_blob_client(self.blob_name(record.target))
        data = record.to_json().encode("utf-8")
        try:
            if etag is None:
                result = blob.upload_blob(data, overwrite=False)
            else:
                result = blob.upload_blob(
                    data, overwrite=True, etag=etag, match_condition=MatchConditions.IfNotModified
                )
        except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError) as err:
            raise DeploymentConflictError(
                f"The deployment record of {record.target} changed since this run read it "
                f"({type(err).__name__}): another run wrote it first."
            ) from None
        return str(result["etag"])
