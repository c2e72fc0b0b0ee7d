"""The one definition of Batch Execution Service job states."""

from __future__ import annotations

from enum import Enum

from airflow_provider_amlretrain.exceptions import AzureMLResponseError


class BatchJobStatus(str, Enum):
    """
    ``StatusCode`` of a BES job.

    The service sends either the name or, in some answers, the integer 0..4 in this order.
    """

    NOT_STARTED = "NotStarted"
    RUNNING = "Running"
    FAILED = "Failed"
    CANCELLED = "Cancelled"
    FINISHED = "Finished"

    @classmethod
    def parse(cls, value: object) -> BatchJobStatus:
        """
        Turn a ``StatusCode`` value (name or integer) into a :class:`BatchJobStatus`.

        :param value: The raw ``StatusCode`` from the service.
        :raises AzureMLResponseError: for any value that is not a known status; an unknown
            status is never taken as success.
        """
        if isinstance(value, bool):
            raise AzureMLResponseError(f"BES answered an unknown job StatusCode {value!r}.")
        if isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit()):
            index = int(value)
            members = list(cls)
            if 0 <= index < len(members):
                return members[index]
        elif isinstance(value, str):
            for member in cls:
                if member.value.lower() == value.strip().lower():
                    return member
        known = ", ".join(m.value for m in cls)
        raise AzureMLResponseError(
            f"BES answered an unknown job StatusCode {value!r}; expected one of {known} or 0..4."
        )

    @property
    def is_terminal(self) -> bool:
        """Whether the job has ended and will not change any more."""
        return self in (BatchJobStatus.FAILED, BatchJobStatus.CANCELLED, BatchJobStatus.FINISHED)

    @property
    def is_success(self) -> bool:
        """Whether the job ended with its outputs written."""
        return self is BatchJobStatus.FINISHED

    @property
    def is_active(self) -> bool:
        """Whether the job exists and can still be started, waited for or cancelled."""
        return not self.is_terminal
