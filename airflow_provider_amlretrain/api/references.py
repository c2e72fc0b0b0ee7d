"""Blob references as BES speaks them, and as the provider hands them on (without secrets)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from airflow_provider_amlretrain.exceptions import AzureMLConfigError, AzureMLResponseError
from airflow_provider_amlretrain.redaction import strip_query


@dataclass(frozen=True)
class BlobReference:
    """
    A blob as named in a BES request: ``ConnectionString`` + ``RelativeLocation``, or
    ``BaseLocation`` + ``RelativeLocation`` + ``SasBlobToken``.

    :param relative_location: ``container/path/to/blob``.
    :param connection_string: A storage connection string (secret).
    :param base_location: The account's blob endpoint, ending in ``/``.
    :param sas_token: A SAS token starting with ``?`` (secret).
    """

    relative_location: str
    connection_string: str | None = field(default=None, repr=False)
    base_location: str | None = None
    sas_token: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.relative_location or "/" not in self.relative_location.strip("/"):
            raise AzureMLConfigError(
                f"Blob reference {self.relative_location!r} must be 'container/path/to/blob'."
            )
        if not self.connection_string and not (self.base_location and self.sas_token):
            raise AzureMLConfigError(
                f"Blob reference {self.relative_location!r} needs a connection string, or a base "
                "location and a SAS token."
            )

    def to_api(self) -> dict[str, str]:
        """Return the reference in the BES request shape."""
        if self.connection_string:
            return {"ConnectionString": self.connection_string, "RelativeLocation": self.relative_location}
        assert self.base_location and self.sas_token
        return {
            "BaseLocation": self.base_location,
            "RelativeLocation": self.relative_location,
            "SasBlobToken": self.sas_token,
        }

    @property
    def container(self) -> str:
        """The container part of the relative location."""
        return self.relative_location.strip("/").split("/", 1)[0]

    @property
    def blob_name(self) -> str:
        """The blob path inside the container."""
        return self.relative_location.strip("/").split("/", 1)[1]


@dataclass(frozen=True)
class BlobLocation:
    """
    Where a job result lives, as BES reports it: base, relative location and a read-only SAS.

    :param base_location: The account's blob endpoint, e.g. ``https://acct.blob.core.windows.net/``.
    :param relative_location: ``container/path/to/blob``.
    :param sas_token: A read-only, expiring SAS token (secret, never put in XCom or logs).
    """

    base_location: str
    relative_location: str
    sas_token: str | None = field(default=None, repr=False)

    @classmethod
    def from_api(cls, port: str, data: Any) -> BlobLocation:
        """
        Parse one entry of a job's ``Results``.

        :param port: The output port name, for error messages.
        :param data: The entry.
        """
        if not isinstance(data, dict):
            raise AzureMLResponseError(f"BES result {port!r} is not an object: {type(data).__name__}.")
        base = data.get("BaseLocation")
        relative = data.get("RelativeLocation")
        if not isinstance(relative, str) or not relative:
            raise AzureMLResponseError(f"BES result {port!r} has no RelativeLocation.")
        if not isinstance(base, str) or not base:
            raise AzureMLResponseError(f"BES result {port!r} has no BaseLocation.")
        sas = data.get("SasBlobToken")
        return cls(
            base_location=base, relative_location=relative, sas_token=sas if isinstance(sas, str) else None
        )

    @property
    def uri(self) -> str:
        """The blob URL without any SAS token: safe to log and to push to XCom."""
        base = self.base_location if self.base_location.endswith("/") else self.base_location + "/"
        return strip_query(base + self.relative_location.lstrip("/"))

    @property
    def signed_url(self) -> str:
        """The blob URL with its SAS token (secret): only for immediate use."""
        return self.uri + (self.sas_token or "")

    @property
    def container(self) -> str:
        """The container part of the relative location."""
        return self.relative_location.strip("/").split("/", 1)[0]

    @property
    def blob_name(self) -> str:
        """The blob path inside the container."""
        parts = self.relative_location.strip("/").split("/", 1)
        return parts[1] if len(parts) > 1 else ""

    def to_summary(self) -> dict[str, str]:
        """A secret-free dict for XCom and logs."""
        return {
            "base_location": self.base_location,
            "relative_location": self.relative_location,
            "uri": self.uri,
        }
