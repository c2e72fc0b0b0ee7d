"""The one definition of API states: Batch Execution Service jobs and web service (ARM) updates."""

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
        exact = cls._value2member_map_.get(value) if isinstance(value, str) else None
        if isinstance(exact, cls):
            return exact  # the name as the service spells it: every poll's answer
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


class ProvisioningStatus(str, Enum):
    """
    How far an update of a new (ARM) web service is: its ``provisioningState`` or the ``status`` of its
    ``Azure-AsyncOperation``.

    ``Succeeded``, ``Failed`` and ``Canceled`` end an operation; ARM's rules make every other value
    (``Provisioning``, ``InProgress``, ``Accepted``, ``Updating``...) mean "still running".
    """

    IN_PROGRESS = "InProgress"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELED = "Canceled"

    @classmethod
    def parse(cls, value: object) -> ProvisioningStatus:
        """
        Turn a raw state into a :class:`ProvisioningStatus`.

        :param value: The raw value from the service.
        :raises AzureMLResponseError: when the value is not a non-empty string.
        """
        if not isinstance(value, str) or not value.strip():
            raise AzureMLResponseError(f"ARM answered a provisioning state that is not a name: {value!r}.")
        name = value.strip().lower()
        if name in ("cancelled", "canceled"):
            return cls.CANCELED
        for member in (cls.SUCCEEDED, cls.FAILED):
            if member.value.lower() == name:
                return member
        return cls.IN_PROGRESS

    @property
    def is_terminal(self) -> bool:
        """Whether the operation has ended."""
        return self is not ProvisioningStatus.IN_PROGRESS

    @property
    def is_success(self) -> bool:
        """Whether the update took effect."""
        return self is ProvisioningStatus.SUCCEEDED
