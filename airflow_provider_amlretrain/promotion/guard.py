"""
Safe promotion: one guard around every deployment, shared by classic endpoints and new web services.

The guard reads the target's deployment record, says "already deployed" only of the same model (the same BES
job's output), refuses to replace a model trained on newer data or to deploy a model without a data version
(unless forced), claims the target with a conditional write (so of two racing runs exactly one
proceeds), and afterwards commits the new deployment, or records the failed attempt and releases
the claim.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from airflow_provider_amlretrain.exceptions import DeploymentConflictError
from airflow_provider_amlretrain.promotion.record import (
    DeploymentRecord,
    DeploymentRecordStore,
    parse_utc,
    utcnow_iso,
)


class ClaimOutcome(str, Enum):
    """What the guard decided before deploying."""

    CLAIMED = "claimed"
    """This run holds the target: deploy."""
    STALE = "stale"
    """The target runs a model trained on newer data: do not replace it."""
    ALREADY_DEPLOYED = "already_deployed"
    """This very model (the same BES job's output) is already deployed (a re-run): nothing to do."""
    NO_DATA_VERSION = "no_data_version"
    """The run does not say which data the model was trained on, and is not forced: do not deploy."""


@dataclass(frozen=True)
class CandidateModel:
    """
    The model a run wants to deploy, as the record describes it (no secrets).

    A model is the output of one BES job: it is named by that job (and the ``.ilearner`` blob's ETag or
    version id where the storage gives one), never by its URI alone, since a URI can be written again.

    :param model_uri: The ``.ilearner`` URI without SAS.
    :param job_id: The BES job that trained it.
    :param metrics: Its evaluation metrics.
    :param data_interval_start: Start of the data it was trained on (ISO 8601; its data version).
    :param data_interval_end: End of that data (ISO 8601); ``None`` when the run has no data version.
    :param dag_id: The DAG of the run.
    :param run_id: The run.
    :param model_etag: The ``.ilearner`` blob's ETag when it was promoted.
    :param model_version_id: The blob's version id (storage accounts with blob versioning).
    :param data_version_source: Where the data version came from, e.g. ``data interval``.
    """

    model_uri: str
    job_id: str | None
    metrics: dict[str, float] | None
    data_interval_start: str | None
    data_interval_end: str | None
    dag_id: str
    run_id: str
    model_etag: str | None = None
    model_version_id: str | None = None
    data_version_source: str | None = None

    def entry(self, **details: Any) -> dict[str, Any]:
        """The record entry for this model, with target-specific details."""
        return {
            "model_uri": self.model_uri,
            "job_id": self.job_id,
            "model_etag": self.model_etag,
            "model_version_id": self.model_version_id,
            "metrics": self.metrics,
            "data_interval_start": self.data_interval_start,
            "data_interval_end": self.data_interval_end,
            "data_version_source": self.data_version_source,
            "dag_id": self.dag_id,
            "run_id": self.run_id,
            **details,
        }

    def describe(self) -> str:
        """The model in words, for messages: its job, and its blob's version."""
        version = self.model_version_id or self.model_etag
        where = f"{self.model_uri}, version {version}" if version else self.model_uri
        return f"the model of BES job {self.job_id} ({where})"

    def is_same_model(self, entry: dict[str, Any] | None) -> bool:
        """
        Whether a record entry describes this very model: the same job, and the same blob (URI, and ETag or
        version id when both sides know it). An entry without a job id (older records may lack one) is never
        taken for this model: the promotion deploys again rather than skip on a URI match alone.

        :param entry: ``current`` (or another entry) of a deployment record.
        """
        if not entry or not self.job_id or entry.get("job_id") != self.job_id:
            return False
        if entry.get("model_uri") != self.model_uri:
            return False
        for key, mine in (("model_etag", self.model_etag), ("model_version_id", self.model_version_id)):
            theirs = entry.get(key)
            if mine and theirs and mine != theirs:
                return False
        return True


@dataclass
class DeploymentGuard:
    """
    :param store: Where records live.
    :param target: The target's stable name.
    :param candidate: The model to deploy.
    :param force: Replace a model trained on newer data anyway.
    :param lease_seconds: How long a claim holds before another run may take the target over.
    """

    store: DeploymentRecordStore
    target: str
    candidate: CandidateModel
    force: bool = False
    lease_seconds: float = 1800.0
    record: DeploymentRecord | None = field(default=None, init=False)
    _etag: str | None = field(default=None, init=False, repr=False)
    reason: str = field(default="", init=False)
    warning: str = field(default="", init=False)

    def claim(self) -> ClaimOutcome:
        """
        Decide and, when deploying, claim the target.

        :raises DeploymentConflictError: when another run holds or just took the target.
        """
        versioned = self.store.read(self.target)
        record = versioned.record
        current = record.current or {}
        self.warning = (
            f"{self.target} needs attention: since {record.attention.get('since')} it may serve "
            f"{record.attention.get('may_serve')} rather than {current.get('model_uri')} (a rollback of run "
            f"{record.attention.get('run_id')} failed). A successful promotion clears this."
            if record.attention
            else ""
        )
        if self.candidate.is_same_model(current):
            self.record = record
            self.reason = f"{self.target} already serves {self.candidate.describe()}."
            return ClaimOutcome.ALREADY_DEPLOYED
        if self.candidate.data_interval_end is None and not self.force:
            self.record = record
            self.reason = (
                f"This run's model has no data version (this run has no data interval, and no training blob "
                f"gave a date), so it cannot be checked against the data of the model {self.target} serves: it "
                "is not deployed. Give the promotion the blob it trained on (data_version_blob), or set "
                "force=True to deploy it anyway."
            )
            return ClaimOutcome.NO_DATA_VERSION
        deployed_end = parse_utc(current.get("data_interval_end"))
        candidate_end = parse_utc(self.candidate.data_interval_end)
        if deployed_end and candidate_end and candidate_end < deployed_end and not self.force:
            self.record = record
            self.reason = (
                f"{self.target} runs a model trained on data up to {current.get('data_interval_end')} "
                f"(run {current.get('run_id')}); this run's model covers data up to "
                f"{self.candidate.data_interval_end}, which is older, so it is not deployed. "
                "Set force=True to deploy it anyway."
            )
            return ClaimOutcome.STALE
        if (
            record.pending
            and record.pending.get("run_id") != self.candidate.run_id
            and record.pending_is_live()
        ):
            raise DeploymentConflictError(
                f"Run {record.pending.get('run_id')} is promoting to {self.target} since "
                f"{record.pending.get('claimed_at')}; this run did not deploy. Retry after it finishes "
                f"(its claim expires after {record.pending.get('lease_seconds')} s)."
            )
        record.pending = {
            "run_id": self.candidate.run_id,
            "dag_id": self.candidate.dag_id,
            "model_uri": self.candidate.model_uri,
            "job_id": self.candidate.job_id,
            "claimed_at": utcnow_iso(),
            "lease_seconds": self.lease_seconds,
        }
        self._etag = self._write(record, versioned.etag, "This run did not deploy; retry it to try again.")
        self.record = record
        return ClaimOutcome.CLAIMED

    @property
    def baseline(self) -> dict[str, Any] | None:
        """What was deployed before this promotion (``current`` of the record read)."""
        return self.record.current if self.record else None

    def commit(self, **details: Any) -> dict[str, Any]:
        """
        Record the new deployment and release the claim.

        :param details: Target-specific facts (endpoint, asset, previous location...).
        :return: The new ``current`` entry.
        """
        assert self.record is not None
        entry = self.candidate.entry(deployed_at=utcnow_iso(), **details)
        if self.record.current:
            self.record.history.append(
                {**self.record.current, "replaced_at": entry["deployed_at"], "outcome": "replaced"}
            )
        self.record.current = entry
        self.record.pending = None
        self.record.attention = None  # the target is known again: it serves this model
        self._etag = self._write(
            self.record,
            self._etag,
            f"This run DID deploy {self.candidate.model_uri} to {self.target}, but the record does not say so "
            f"({self._lease_note}): check what the target serves, and re-run the promotion that should win.",
        )
        return entry

    def abandon(self, outcome: str, reason: str, **details: Any) -> None:
        """
        Record a failed or rolled-back attempt and release the claim; ``current`` is unchanged.

        :param outcome: E.g. ``rolled_back`` or ``failed``.
        :param reason: Why.
        :param details: Target-specific facts.
        """
        assert self.record is not None
        attempt = self.candidate.entry(attempted_at=utcnow_iso(), outcome=outcome, reason=reason, **details)
        self.record.history.append(attempt)
        if outcome == "rollback_failed":
            self.record.attention = {
                "since": attempt["attempted_at"],
                "run_id": self.candidate.run_id,
                "may_serve": self.candidate.model_uri,
                "reason": reason,
            }
        self.record.pending = None
        self._etag = self._write(
            self.record,
            self._etag,
            f"This run's attempt ({outcome}: {reason}) is not in the record ({self._lease_note}).",
        )

    @property
    def _lease_note(self) -> str:
        return f"a claim expires after {self.lease_seconds:.0f} s, and then another run may take {self.target} over"

    def _write(self, record: DeploymentRecord, etag: str | None, consequence: str) -> str:
        """Write conditionally; a conflict's message says what it means for this run."""
        try:
            return self.store.write(record, etag)
        except DeploymentConflictError as err:
            raise DeploymentConflictError(f"{err} {consequence}") from None
