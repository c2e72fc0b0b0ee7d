"""
Least-privilege blob access for BES: one short-lived SAS per port, scoped to that one blob.

BES reads every input and writes every output itself, so it must be given credentials. It is given
a SAS for exactly the blob of each port (read for inputs; create and write for outputs) that
expires after ``ttl_seconds``, never the account key. The SAS is minted from the ``wasb`` connection
with the storage client the Azure provider's ``WasbHook`` builds (see
:mod:`~airflow_provider_amlretrain.hooks.blob_storage`), so every form that hook accepts works:

- an account key (connection string with ``AccountKey``, login + password, the ``shared_access_key``
  or ``account_key`` extra): signed locally with the key, no request;
- Azure AD (``tenant_id`` with a service principal, managed identity, ``DefaultAzureCredential``): a
  user delegation key is requested (the identity needs ``Microsoft.Storage/.../generateUserDelegationKey``,
  e.g. the *Storage Blob Delegator* role, and data rights on the blob) and signs the SAS;
- a SAS (``sas_token`` extra, as a token or a URL, or a connection string with
  ``SharedAccessSignature``): it cannot be narrowed, so it is passed on as given; give the
  connection a SAS no wider than BES needs.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import TYPE_CHECKING, Any

from airflow_provider_amlretrain.api.references import BlobReference
from airflow_provider_amlretrain.exceptions import AzureMLConfigError, AzureMLTransportError

if TYPE_CHECKING:
    from azure.storage.blob import BlobServiceClient

#: How long a minted SAS is valid when the caller does not say (a queued job must still find its blobs).
DEFAULT_SAS_TTL_SECONDS = 24 * 3600
#: Start the SAS this much in the past, so a service clock slightly behind ours accepts it.
CLOCK_SKEW = timedelta(minutes=5)


def sas_lifetime(job_timeout: float | None) -> float:
    """
    How long the SAS of a job's blobs must live: the job's own time limit and an hour to queue, else a day.

    :param job_timeout: The operator's ``job_timeout`` in seconds, if any.
    """
    return float(job_timeout) + 3600 if job_timeout else float(DEFAULT_SAS_TTL_SECONDS)


class BlobAccess(str, Enum):
    """What BES does with a port's blob."""

    READ = "read"
    """An input: BES reads it."""
    WRITE = "write"
    """An output: BES creates or overwrites it."""


def scoped_blob_reference(
    conn_id: str,
    port: str,
    relative_location: str,
    access: BlobAccess,
    ttl_seconds: float = DEFAULT_SAS_TTL_SECONDS,
) -> BlobReference:
    """
    A BES reference to one blob, with a SAS allowing only ``access`` on that blob until it expires.

    :param conn_id: The ``wasb`` connection of the storage account.
    :param port: The BES port, for messages.
    :param relative_location: ``container/path/to/blob``.
    :param access: Read (inputs) or write (outputs).
    :param ttl_seconds: How long the SAS is valid.
    :raises AzureMLConfigError: when the connection cannot sign a SAS.
    """
    from airflow.providers.common.compat.sdk import mask_secret

    from airflow_provider_amlretrain.hooks.blob_storage import blob_service_client

    container, _, blob = relative_location.strip("/").partition("/")
    if not container or not blob:
        raise AzureMLConfigError(
            f"Port {port!r}: blob reference {relative_location!r} must be 'container/blob'."
        )
    try:
        client = blob_service_client(conn_id)
    except AzureMLConfigError:
        raise
    except Exception as err:  # WasbHook's own checks (no account URL, bad connection string...)
        raise AzureMLConfigError(
            f"Port {port!r}: wasb connection {conn_id!r} cannot be used ({type(err).__name__}): fix the "
            "connection (a connection string, an account key, a SAS token, or Azure AD with the account URL)."
        ) from None
    base, _, existing_sas = client.url.partition("?")
    base = base if base.endswith("/") else base + "/"
    sas = _sign(client, container, blob, access, ttl_seconds) or existing_sas or _sas_of(client.credential)
    if not sas:
        raise AzureMLConfigError(
            f"Port {port!r}: wasb connection {conn_id!r} gives no way to sign a SAS for BES (no account key, "
            "Azure AD credential or SAS token). BES reads and writes blobs itself: add one of those."
        )
    sas = sas.lstrip("?")
    mask_secret(sas)
    return BlobReference(relative_location=f"{container}/{blob}", base_location=base, sas_token="?" + sas)


def _permission(access: BlobAccess) -> Any:
    from azure.storage.blob import BlobSasPermissions

    if access is BlobAccess.READ:
        return BlobSasPermissions(read=True)
    return BlobSasPermissions(create=True, write=True)


def _sign(
    client: BlobServiceClient, container: str, blob: str, access: BlobAccess, ttl_seconds: float
) -> str | None:
    """A blob SAS signed with the account key or a user delegation key; ``None`` for SAS connections."""
    from azure.storage.blob import generate_blob_sas

    credential = client.credential
    now = datetime.now(UTC)
    start, expiry = now - CLOCK_SKEW, now + timedelta(seconds=float(ttl_seconds))
    account_key = getattr(credential, "account_key", None)
    signing_key: dict[str, Any]
    if account_key:
        signing_key = {"account_key": account_key}
    elif hasattr(credential, "get_token"):  # Azure AD: a user delegation key signs the SAS
        from azure.core.exceptions import ClientAuthenticationError, HttpResponseError

        try:
            delegation_key = client.get_user_delegation_key(start, expiry)
        except (ClientAuthenticationError, HttpResponseError) as err:
            status = getattr(err, "status_code", None)
            if isinstance(err, ClientAuthenticationError) or status in (401, 403):
                raise AzureMLConfigError(
                    f"Could not get a user delegation key for {client.account_name} ({status or 'no token'}): "
                    "the connection's Azure AD identity needs the 'Storage Blob Delegator' role (or "
                    "generateUserDelegationKey) and data rights on the blobs, or give the connection an "
                    "account key."
                ) from None
            raise AzureMLTransportError(
                f"Could not get a user delegation key for {client.account_name}: storage answered {status}."
            ) from None
        except Exception as err:  # unreachable, timed out: a later try may get through
            raise AzureMLTransportError(
                f"Could not get a user delegation key for {client.account_name} ({type(err).__name__})."
            ) from None
        signing_key = {"user_delegation_key": delegation_key}
    else:
        return None
    return generate_blob_sas(
        account_name=client.account_name or "",
        container_name=container,
        blob_name=blob,
        permission=_permission(access),
        start=start,
        expiry=expiry,
        **signing_key,
    )


def _sas_of(credential: Any) -> str:
    """The SAS of an ``AzureSasCredential`` (``sas_token`` extra given as a token)."""
    return str(getattr(credential, "signature", "") or "")
