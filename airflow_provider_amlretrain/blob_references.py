"""Turn the blob specs users write in DAGs into BES blob references, with secrets from connections.

A spec is a dict, so that it can be templated:

- ``{"wasb_conn_id": "azure_blob", "container": "models", "blob": "runs/{{ ds }}/model.ilearner"}``
  (or ``"path": "models/runs/..."``): BES gets a short-lived SAS for that one blob, minted from the
  ``wasb`` connection in any form ``WasbHook`` accepts (see :mod:`~airflow_provider_amlretrain.blob_sas`),
  never the account key; output containers must exist (a blob SAS cannot create one);
- ``{"base_location": "https://acct.blob.core.windows.net/", "relative_location": "c/x.csv",
  "sas_token": "?sv=..."}``: a raw SAS reference (the token is masked in logs).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs

from airflow_provider_amlretrain.api.references import BlobReference
from airflow_provider_amlretrain.blob_sas import DEFAULT_SAS_TTL_SECONDS, BlobAccess, scoped_blob_reference
from airflow_provider_amlretrain.exceptions import AzureMLConfigError

_RAW_KEYS = {"base_location", "relative_location", "sas_token"}


def resolve_blob_spec(
    port: str,
    spec: Any,
    access: BlobAccess = BlobAccess.READ,
    ttl_seconds: float = DEFAULT_SAS_TTL_SECONDS,
) -> BlobReference:
    """
    Resolve one port's blob spec.

    :param port: The BES port name, for messages.
    :param spec: The spec (see the module docstring).
    :param access: What BES does with the blob: the SAS minted for a ``wasb_conn_id`` spec allows only that.
    :param ttl_seconds: How long a minted SAS is valid.
    """
    if isinstance(spec, BlobReference):
        return spec
    if not isinstance(spec, Mapping):
        raise AzureMLConfigError(
            f"Port {port!r}: a blob spec must be a dict such as {{'wasb_conn_id': ..., 'container': ..., "
            f"'blob': ...}}, not {type(spec).__name__}."
        )
    if "wasb_conn_id" in spec:
        return _from_wasb_connection(port, spec, access, ttl_seconds)
    if _RAW_KEYS <= set(spec):
        from airflow.providers.common.compat.sdk import mask_secret

        mask_secret(str(spec["sas_token"]))
        token = str(spec["sas_token"])
        return BlobReference(
            relative_location=str(spec["relative_location"]).lstrip("/"),
            base_location=_with_slash(str(spec["base_location"])),
            sas_token=token if token.startswith("?") else "?" + token,
        )
    raise AzureMLConfigError(
        f"Port {port!r}: blob spec has keys {sorted(spec)}; give 'wasb_conn_id' with 'container' and "
        "'blob' (or 'path'), or 'base_location', 'relative_location' and 'sas_token'."
    )


def resolve_blob_specs(
    specs: Mapping[str, Any] | None,
    access: BlobAccess = BlobAccess.READ,
    ttl_seconds: float = DEFAULT_SAS_TTL_SECONDS,
) -> dict[str, BlobReference]:
    """
    Resolve every port of an ``inputs`` or ``outputs`` mapping.

    :param specs: Port name to blob spec.
    :param access: Read for ``inputs``, write for ``outputs``.
    :param ttl_seconds: How long a minted SAS is valid.
    """
    if specs is None:
        return {}
    if not isinstance(specs, Mapping):
        raise AzureMLConfigError(
            f"Inputs and outputs must map port names to blob specs, not {type(specs).__name__}."
        )
    return {
        str(port): resolve_blob_spec(str(port), spec, access, ttl_seconds) for port, spec in specs.items()
    }


def in_folder(reference: BlobReference, folder: str) -> BlobReference:
    """
    The same blob reference with ``folder`` inserted before the file name (``c/a/model.ilearner`` becomes
    ``c/a/<folder>/model.ilearner``), so that each job writes its outputs where no other job did.

    :param reference: An output reference.
    :param folder: One path segment, e.g. ``try-2``.
    """
    head, _, name = reference.relative_location.strip("/").rpartition("/")
    return dataclasses.replace(reference, relative_location=f"{head}/{folder}/{name}")


def spec_in_folder(port: str, spec: Mapping[str, Any], folder: str) -> dict[str, Any]:
    """
    The same ``wasb_conn_id`` blob spec with ``folder`` inserted before the file name (as :func:`in_folder`
    does for a resolved reference), given as ``path``.

    :param port: The port name, for messages.
    :param spec: A ``wasb_conn_id`` spec.
    :param folder: One path segment, e.g. ``try-2``.
    """
    head, _, name = relative_location_of(port, spec).rpartition("/")
    moved = {key: value for key, value in spec.items() if key not in ("path", "container", "blob")}
    moved["path"] = f"{head}/{folder}/{name}"
    return moved


def is_blob_scoped(reference: BlobReference) -> bool:
    """
    Whether the reference's SAS token grants access to that one blob only (``sr=b``).

    :param reference: A blob reference.
    """
    return bool(reference.sas_token) and parse_qs(str(reference.sas_token).lstrip("?")).get("sr") == ["b"]


def relative_location_of(port: str, spec: Mapping[str, Any]) -> str:
    """
    ``container/blob`` of a wasb spec.

    :param port: The port name, for messages.
    :param spec: The spec.
    """
    if spec.get("path"):
        return str(spec["path"]).lstrip("/")
    container, blob = spec.get("container"), spec.get("blob")
    if not container or not blob:
        raise AzureMLConfigError(f"Port {port!r}: a wasb blob spec needs 'container' and 'blob' (or 'path').")
    return f"{container}/{str(blob).lstrip('/')}"


def _from_wasb_connection(
    port: str, spec: Mapping[str, Any], access: BlobAccess, ttl_seconds: float
) -> BlobReference:
    from airflow.providers.common.compat.sdk import BaseHook

    conn_id = str(spec["wasb_conn_id"])
    relative = relative_location_of(port, spec)
    conn = BaseHook.get_connection(conn_id)
    extras = conn.extra_dejson
    sas_token = str(extras.get("sas_token") or extras.get("extra__wasb__sas_token") or "")
    has_account = bool(conn.host and conn.host.startswith("http")) or bool(conn.login)
    if sas_token and not sas_token.startswith("http") and not has_account:
        raise AzureMLConfigError(
            f"Port {port!r}: wasb connection {conn_id!r} has a SAS token but no account: set login to the "
            "storage account name, or host to the account URL (https://<account>.blob.core.windows.net/), "
            "or give the SAS as a full URL."
        )
    return scoped_blob_reference(conn_id, port, relative, access, ttl_seconds)


def _with_slash(url: str) -> str:
    return url if url.endswith("/") else url + "/"
