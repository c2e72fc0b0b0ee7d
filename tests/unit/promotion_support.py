"""Shared fakes for the promotion tests: an in-memory deployment record store, a token credential, constants."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from airflow_provider_amlretrain.exceptions import DeploymentConflictError
from airflow_provider_amlretrain.promotion.record import DeploymentRecord, VersionedRecord

WS_TOKEN = "wsTOKEN-s3cr3t-0123456789"
ENDPOINT_KEY = "endpointKEY-s3cr3t-abcdef"
SECONDARY_KEY = "endpointKEY2-s3cr3t-zyxw"
SERVICE_KEY = "serviceKEY-s3cr3t-98765"
ARM_TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOi.armTOKEN.s3cr3t"
MGMT_URL = "https://management.azureml.net"
ARM_URL = "https://management.azure.com"
MGMT_CONN = "aml_mgmt_test"
ARM_CONN = "aml_arm_test"


class FakeRecordStore:
    """
    ``DeploymentRecordStore`` in memory, with ETag semantics: ``read`` returns a copy and its ETag;
    ``write`` with a stale ETag, or with ``None`` over an existing record, raises the conflict error.
    """

    def __init__(self) -> None:
        self.blobs: dict[str, tuple[str, str]] = {}
        self.writes: list[DeploymentRecord] = []
        self._version = 0

    def read(self, target: str) -> VersionedRecord:
        if target not in self.blobs:
            return VersionedRecord(DeploymentRecord(target=target), None)
        text, etag = self.blobs[target]
        return VersionedRecord(DeploymentRecord.from_json(text, source=f"fake/{target}"), etag)

    def write(self, record: DeploymentRecord, etag: str | None) -> str:
        existing = self.blobs.get(record.target)
        if (etag is None and existing is not None) or (
            etag is not None and (existing is None or existing[1] != etag)
        ):
            raise DeploymentConflictError(f"The deployment record of {record.target} changed (fake).")
        self._version += 1
        new_etag = f'"0x{self._version:04d}"'
        self.blobs[record.target] = (record.to_json(), new_etag)
        self.writes.append(DeploymentRecord.from_json(record.to_json(), source="fake"))
        return new_etag

    def seed(self, record: DeploymentRecord) -> None:
        """Store a record as if an earlier run had written it."""
        self.write(record, self.blobs[record.target][1] if record.target in self.blobs else None)

    def record(self, target: str) -> DeploymentRecord:
        return self.read(target).record


@dataclass
class FakeToken:
    token: str
    expires_on: int = 4102444800


class FakeCredential:
    """Stands in for an ``azure-identity`` credential: hands out one fixed token, records the scopes asked."""

    def __init__(self, token: str = ARM_TOKEN) -> None:
        self.token = token
        self.scopes: list[str] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> FakeToken:
        self.scopes.extend(scopes)
        return FakeToken(self.token)


def endpoint_body(resources: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    """A classic ``Endpoint`` object as the management API answers it (one trained model by default)."""
    body = {
        "Name": "ep1",
        "WebServiceId": "pred1",
        "WorkspaceId": "ws1",
        "ApiLocation": "https://ussouthcentral.services.azureml.net/workspaces/ws1/services/abc",
        "PrimaryKey": ENDPOINT_KEY,
        "Version": "2024-06-01T00:00:00Z",
        "Resources": resources
        if resources is not None
        else [
            {
                "Name": "Census Model [trained model]",
                "Kind": "TrainedModel",
                "Location": {
                    "BaseLocation": "https://acct.blob.core.windows.net/",
                    "RelativeLocation": "m/v1.ilearner",
                    "SasBlobToken": "?sig=x",
                },
            }
        ],
    }
    body.update(extra)
    return body


def assert_no_secrets(*texts: Any, secrets: tuple[str, ...]) -> None:
    """No secret appears in any of the texts (stringified)."""
    for text in texts:
        for secret in secrets:
            assert secret not in str(text), f"secret {secret!r} leaked into: {text}"
