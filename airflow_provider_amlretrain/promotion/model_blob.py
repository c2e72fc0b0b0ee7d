"""The version of a trained model's blob (ETag, version id), read through the fresh SAS the BES job gives."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from airflow_provider_amlretrain.redaction import redact

if TYPE_CHECKING:
    from airflow_provider_amlretrain.api.references import BlobLocation

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BlobVersion:
    """
    Which content of a blob: its ETag (always, on Azure Storage) and version id (with blob versioning).

    :param etag: The ETag, without quotes.
    :param version_id: The version id, when the account keeps versions.
    """

    etag: str | None
    version_id: str | None


def read_blob_version(location: BlobLocation) -> BlobVersion:
    """
    The ETag and version id of a job's output blob. Reading them is best effort: the model is then named by
    its job alone (a warning says why), and the update that follows reports a blob it cannot read.

    :param location: The output location with its read SAS.
    """
    from azure.core.exceptions import AzureError
    from azure.storage.blob import BlobClient

    try:
        properties = BlobClient.from_blob_url(location.signed_url).get_blob_properties()
    except (AzureError, ValueError) as err:
        log.warning(
            "Could not read the version of %s (%s): the model is named by its job alone.",
            location.uri,
            redact(str(err)),
        )
        return BlobVersion(None, None)
    etag = str(properties.etag).strip('"') if properties.etag else None
    version_id = getattr(properties, "version_id", None)
    return BlobVersion(etag, str(version_id) if version_id else None)
