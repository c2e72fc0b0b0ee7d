"""Blob references (as the Azure ML APIs spell them) and blob I/O through ``azure.storage.blob``.

A blob reference is ``ConnectionString`` + ``RelativeLocation`` or
``BaseLocation`` + ``RelativeLocation`` + ``SasBlobToken``; ``RelativeLocation`` is
``container/blob/path``. Messages produced here name containers and blob paths, never keys or
SAS signatures.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

if TYPE_CHECKING:
    from azure.storage.blob import BlobClient, BlobServiceClient, ContainerClient

#: Client options: fail fast instead of the SDK's long default retry schedule.
_CLIENT_OPTIONS: dict[str, Any] = {"retry_total": 1, "connection_timeout": 5, "read_timeout": 30}

REFERENCE_KEYS = ("ConnectionString", "RelativeLocation", "BaseLocation", "SasBlobToken")


class StorageError(Exception):
    """A blob could not be read or written; the message is safe to show to clients."""


class BlobReferenceError(ValueError):
    """A blob reference in a request is malformed; the message is safe to show to clients."""


def parse_connection_string(connection_string: str) -> dict[str, str]:
    """Split a storage connection string into its settings (keys as written).

    :param connection_string: ``Key=Value;Key=Value`` text.
    :raises BlobReferenceError: if it is not of that form or lacks an account name.
    """
    settings: dict[str, str] = {}
    for part in connection_string.strip().strip(";").split(";"):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise BlobReferenceError("not a storage connection string (expected Key=Value;... pairs)")
        settings[key.strip()] = value.strip()
    lowered = {k.lower(): v for k, v in settings.items()}
    if "accountname" not in lowered and "blobendpoint" not in lowered:
        raise BlobReferenceError("the storage connection string has neither AccountName nor BlobEndpoint")
    if "accountkey" not in lowered and "sharedaccesssignature" not in lowered:
        raise BlobReferenceError(
            "the storage connection string has neither AccountKey nor SharedAccessSignature"
        )
    return settings


def _setting(settings: dict[str, str], name: str) -> str | None:
    for key, value in settings.items():
        if key.lower() == name.lower():
            return value
    return None


def service_client(connection_string: str) -> BlobServiceClient:
    """A blob service client for a connection string.

    :param connection_string: storage connection string.
    """
    from azure.storage.blob import BlobServiceClient

    return BlobServiceClient.from_connection_string(connection_string, **_CLIENT_OPTIONS)


def account_of(connection_string: str) -> tuple[str, str | None, str]:
    """Account name, account key (if any) and blob endpoint (ending in ``/``) of a connection string.

    :param connection_string: storage connection string.
    """
    settings = parse_connection_string(connection_string)
    client = service_client(connection_string)
    url = client.url if client.url.endswith("/") else client.url + "/"
    return client.account_name or "", _setting(settings, "AccountKey"), url


def split_relative_location(relative_location: str) -> tuple[str, str]:
    """Split ``container/blob/path`` into container and blob name.

    :param relative_location: the ``RelativeLocation`` value.
    :raises BlobReferenceError: if either part is missing.
    """
    container, _, blob = relative_location.lstrip("/").partition("/")
    if not container or not blob:
        raise BlobReferenceError(
            f"RelativeLocation '{relative_location}' must be 'container/blob/path' (container, then blob name)"
        )
    if len(container) < 3:
        raise BlobReferenceError(
            f"container name '{container}' in RelativeLocation is shorter than 3 characters"
        )
    return container, blob


@dataclass(frozen=True)
class BlobReference:
    """One ``AzureBlobDataReference`` of a BES request or of a PATCH body.

    :param relative_location: ``container/blob/path``.
    :param connection_string: storage connection string (first form).
    :param base_location: account blob endpoint URL (SAS form).
    :param sas_token: SAS query string, with or without the leading ``?`` (SAS form).
    """

    relative_location: str
    connection_string: str | None = None
    base_location: str | None = None
    sas_token: str | None = None

    @classmethod
    def parse(cls, data: Any, where: str) -> BlobReference:
        """Validate a reference from a request body.

        :param data: the JSON value.
        :param where: how to name it in messages (e.g. ``output 'output1'``).
        :raises BlobReferenceError: naming the problem.
        """
        if not isinstance(data, dict):
            raise BlobReferenceError(
                f"{where} must be an object with ConnectionString/BaseLocation, RelativeLocation"
            )
        unknown = sorted(set(data) - set(REFERENCE_KEYS))
        if unknown:
            raise BlobReferenceError(
                f"{where} has unknown properties {unknown}; a blob reference has {', '.join(REFERENCE_KEYS)}"
            )
        values: dict[str, str | None] = {}
        for key in REFERENCE_KEYS:
            value = data.get(key)
            if value is not None and not isinstance(value, str):
                raise BlobReferenceError(f"{where}: {key} must be a string")
            values[key] = value or None
        relative = values["RelativeLocation"]
        if not relative:
            raise BlobReferenceError(f"{where} is missing RelativeLocation ('container/blob/path')")
        try:
            split_relative_location(relative)
        except BlobReferenceError as exc:
            raise BlobReferenceError(f"{where}: {exc}") from None
        connection_string = values["ConnectionString"]
        base, sas = values["BaseLocation"], values["SasBlobToken"]
        if connection_string:
            try:
                parse_connection_string(connection_string)
            except BlobReferenceError as exc:
                raise BlobReferenceError(f"{where}: ConnectionString is invalid: {exc}") from None
        elif not (base and sas):
            raise BlobReferenceError(
                f"{where} needs either ConnectionString, or BaseLocation and SasBlobToken "
                f"(missing: {', '.join(k for k, v in (('BaseLocation', base), ('SasBlobToken', sas)) if not v)})"
            )
        else:
            scheme = urlsplit(base).scheme
            if scheme not in ("http", "https"):
                raise BlobReferenceError(f"{where}: BaseLocation must be an http(s) URL")
        return cls(relative, connection_string, base, sas)

    @property
    def container(self) -> str:
        """The container name."""
        return split_relative_location(self.relative_location)[0]

    @property
    def blob(self) -> str:
        """The blob name."""
        return split_relative_location(self.relative_location)[1]

    def describe(self) -> str:
        """A safe human name: ``container/blob/path``."""
        return self.relative_location.lstrip("/")

    def base_url(self) -> str:
        """The account blob endpoint (ending in ``/``)."""
        if self.connection_string:
            return account_of(self.connection_string)[2]
        assert self.base_location is not None
        return self.base_location if self.base_location.endswith("/") else self.base_location + "/"

    def account_name(self) -> str:
        """The storage account name."""
        if self.connection_string:
            return account_of(self.connection_string)[0]
        return blob_client_from_url(self.base_url() + self.relative_location.lstrip("/")).account_name or ""

    def account_key(self) -> str | None:
        """The account key when the reference carries one (connection-string form)."""
        if self.connection_string:
            return account_of(self.connection_string)[1]
        return None

    def client(self) -> BlobClient:
        """A blob client for this reference."""
        if self.connection_string:
            return service_client(self.connection_string).get_blob_client(self.container, self.blob)
        sas = (self.sas_token or "").lstrip("?")
        return blob_client_from_url(f"{self.base_url()}{self.relative_location.lstrip('/')}?{sas}")

    def container_client(self) -> ContainerClient | None:
        """A container client when the reference carries a key (so a missing container can be created)."""
        if self.connection_string:
            return service_client(self.connection_string).get_container_client(self.container)
        return None

    def to_json(self) -> dict[str, Any]:
        """The reference in the API's spelling."""
        return {
            "ConnectionString": self.connection_string,
            "BaseLocation": self.base_location,
            "RelativeLocation": self.relative_location,
            "SasBlobToken": self.sas_token,
        }


def blob_client_from_url(url: str, connection_string: str | None = None) -> BlobClient:
    """A blob client for a blob URL; URLs without a SAS use the key of ``connection_string``.

    :param url: ``https://acct.blob.core.windows.net/container/blob`` (or path-style for Azurite),
        optionally with a SAS query string.
    :param connection_string: credential source for URLs without SAS.
    """
    from azure.storage.blob import BlobClient

    credential: Any = None
    if "sig=" not in (urlsplit(url).query or "") and connection_string:
        name, key, _ = account_of(connection_string)
        if key:
            credential = {"account_name": name, "account_key": key}
    return BlobClient.from_blob_url(url, credential=credential, **_CLIENT_OPTIONS)


def describe_url(url: str) -> str:
    """A safe name for a blob URL: scheme, host and path, without the query string.

    :param url: a blob URL, possibly with SAS.
    """
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{unquote(parts.path)}"


def _storage_failure(action: str, what: str, exc: Exception) -> StorageError:
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ResourceNotFoundError,
        ServiceRequestError,
    )

    if isinstance(exc, ResourceNotFoundError):
        code = getattr(exc, "error_code", None) or "BlobNotFound"
        code = getattr(code, "value", code)
        return StorageError(f"could not {action} '{what}': it does not exist ({code})")
    if isinstance(exc, ClientAuthenticationError | HttpResponseError):
        status = getattr(exc, "status_code", None)
        code = getattr(exc, "error_code", None) or "error"
        code = getattr(code, "value", code)  # StorageErrorCode enum
        hint = " (expired or wrong SAS token or key?)" if status == 403 else ""
        return StorageError(f"could not {action} '{what}': storage answered {status} {code}{hint}")
    if isinstance(exc, ServiceRequestError):
        return StorageError(f"could not {action} '{what}': storage is unreachable")
    return StorageError(f"could not {action} '{what}': {type(exc).__name__}")


def read_blob(client: BlobClient, what: str) -> bytes:
    """Download a blob.

    :param client: the blob client.
    :param what: safe name for messages.
    :raises StorageError: with a safe message.
    """
    try:
        return client.download_blob().readall()
    except Exception as exc:
        raise _storage_failure("read", what, exc) from None


def write_blob(
    client: BlobClient,
    data: bytes,
    what: str,
    content_type: str = "application/octet-stream",
    container: ContainerClient | None = None,
) -> None:
    """Upload (overwrite) a blob; create its container first when it is missing and ``container`` is given.

    :param client: the blob client.
    :param data: the content.
    :param what: safe name for messages.
    :param content_type: the blob's content type.
    :param container: client of the container, used to create it when missing (key credentials only).
    """
    from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
    from azure.storage.blob import ContentSettings

    settings = ContentSettings(content_type=content_type)
    try:
        try:
            client.upload_blob(data, overwrite=True, content_settings=settings)
        except ResourceNotFoundError:
            if container is None:
                raise
            try:
                container.create_container()
            except ResourceExistsError:
                pass
            client.upload_blob(data, overwrite=True, content_settings=settings)
    except Exception as exc:
        raise _storage_failure("write", what, exc) from None


def read_sas(account_name: str, account_key: str, container: str, blob: str, ttl_seconds: int) -> str:
    """A fresh read-only blob SAS (``?sv=...&sr=b&sp=r&se=...&sig=...``).

    :param account_name: storage account.
    :param account_key: its key.
    :param container: container name.
    :param blob: blob name.
    :param ttl_seconds: lifetime.
    """
    from azure.storage.blob import BlobSasPermissions, generate_blob_sas

    now = dt.datetime.now(dt.UTC)
    token = generate_blob_sas(
        account_name=account_name,
        container_name=container,
        blob_name=blob,
        account_key=account_key,
        permission=BlobSasPermissions(read=True),
        start=now - dt.timedelta(minutes=5),
        expiry=now + dt.timedelta(seconds=ttl_seconds),
    )
    return "?" + token


def read_location(
    reference: BlobReference, own_connection_string: str | None, ttl_seconds: int
) -> dict[str, Any]:
    """Where a blob is, as the APIs answer it, with a fresh read-only SAS when a key is known.

    The key comes from the reference's connection string, or from the emulator's own storage
    when the reference points into that account; otherwise the caller's own token is echoed.

    :param reference: the blob reference.
    :param own_connection_string: the emulator's storage connection string.
    :param ttl_seconds: SAS lifetime.
    :return: ``{"ConnectionString": None, "BaseLocation", "RelativeLocation", "SasBlobToken"}``.
    """
    base = reference.base_url()
    account = reference.account_name()
    key = reference.account_key()
    if key is None and own_connection_string:
        own_account, own_key, _ = account_of(own_connection_string)
        if own_account == account:
            key = own_key
    if key:
        sas = read_sas(account, key, reference.container, reference.blob, ttl_seconds)
    else:
        sas = "?" + (reference.sas_token or "").lstrip("?")
    return {
        "ConnectionString": None,
        "BaseLocation": base,
        "RelativeLocation": reference.describe(),
        "SasBlobToken": sas,
    }
