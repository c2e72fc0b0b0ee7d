"""The payload a BES job trigger sends back to the task: small, typed, validated on arrival."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from airflow_provider_amlretrain.api.states import BatchJobStatus
from airflow_provider_amlretrain.exceptions import AzureMLError


class BatchJobOutcome(str, Enum):
    """How the wait in the triggerer ended."""

    ENDED = "ended"
    """The job reached a terminal status (see ``status`` for which)."""
    TIMED_OUT = "timed_out"
    """The deadline passed before the job ended."""
    ERROR = "error"
    """The trigger could not read the job (the message says why)."""


@dataclass(frozen=True)
class BatchJobEvent:
    """
    :param job_id: The BES job id.
    :param outcome: How the wait ended.
    :param status: The last status read, if any.
    :param message: A secret-free human explanation.
    """

    job_id: str
    outcome: BatchJobOutcome
    status: BatchJobStatus | None = None
    message: str | None = None

    def to_payload(self) -> dict[str, Any]:
        """Plain data for a ``TriggerEvent``."""
        return {
            "job_id": self.job_id,
            "outcome": self.outcome.value,
            "status": self.status.value if self.status else None,
            "message": self.message,
        }

    @classmethod
    def from_payload(cls, payload: Any) -> BatchJobEvent:
        """
        Validate a trigger event payload.

        :param payload: What ``execute_complete`` received.
        :raises AzureMLError: if the payload is not a BES job event.
        """
        if not isinstance(payload, dict) or not isinstance(payload.get("job_id"), str):
            raise AzureMLError(f"Received a trigger event that is not a BES job event: {payload!r}.")
        try:
            outcome = BatchJobOutcome(payload.get("outcome"))
        except ValueError as err:
            raise AzureMLError(
                f"Trigger event for job {payload['job_id']} has unknown outcome {payload.get('outcome')!r}."
            ) from err
        status = BatchJobStatus.parse(payload["status"]) if payload.get("status") is not None else None
        if outcome is BatchJobOutcome.ENDED and (status is None or not status.is_terminal):
            raise AzureMLError(
                f"Trigger event for job {payload['job_id']} says 'ended' with status {status}."
            )
        message = payload.get("message")
        return cls(
            job_id=payload["job_id"],
            outcome=outcome,
            status=status,
            message=str(message) if message else None,
        )
