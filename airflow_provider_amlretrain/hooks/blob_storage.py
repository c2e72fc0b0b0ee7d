"""
The storage client of a ``wasb`` connection, built the way the Azure provider's ``WasbHook`` builds it.

``WasbHook``'s module loads azure-identity (sync and async), the async storage SDK and msrest whatever the
connection holds: about 0.2 CPU s in every task process that touches a blob, on top of the storage SDK itself.
A connection string, the form ``WasbHook`` tries first, needs none of them, so for it the client is made here
exactly as ``WasbHook.get_conn`` makes it; every other form (account URL with a key, SAS, Azure AD, public
read) goes through ``WasbHook``.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from azure.storage.blob import BlobServiceClient

#: The Azure SDK's request logger, which ``WasbHook`` quietens (its level from ``AZURE_HTTP_LOGGING_LEVEL``).
AZURE_HTTP_LOGGER = "azure.core.pipeline.policies.http_logging_policy"
#: ``WasbHook``'s prefix of extras written by older connection forms.
_PREFIX = "extra__wasb__"


def connection_string_of(extras: dict[str, Any]) -> str | None:
    """
    The connection string of a ``wasb`` connection's extras, looked up as ``WasbHook`` does.

    :param extras: The connection's extras.
    """
    if "connection_string" in extras:
        return extras["connection_string"] or None
    return extras.get(f"{_PREFIX}connection_string") or None


def blob_service_client(wasb_conn_id: str) -> BlobServiceClient:
    """
    ``WasbHook(wasb_conn_id).get_conn()``, without loading ``WasbHook``'s module for a connection string.

    :param wasb_conn_id: The ``wasb`` connection.
    """
    from airflow.providers.common.compat.sdk import BaseHook

    conn = BaseHook.get_connection(wasb_conn_id)
    extras = dict(conn.extra_dejson or {})
    extras.pop("client_secret_auth_config", None)
    connection_string = connection_string_of(extras)
    if not connection_string:
        from airflow.providers.microsoft.azure.hooks.wasb import WasbHook

        return WasbHook(wasb_conn_id=wasb_conn_id).get_conn()
    from azure.storage.blob import BlobServiceClient

    _quieten_azure_http_logging()
    return BlobServiceClient.from_connection_string(connection_string, **extras)


def _quieten_azure_http_logging() -> None:
    """What ``WasbHook.__init__`` does: the SDK logs every request at INFO otherwise."""
    logger = logging.getLogger(AZURE_HTTP_LOGGER)
    try:
        logger.setLevel(os.environ.get("AZURE_HTTP_LOGGING_LEVEL", logging.WARNING))
    except ValueError:
        logger.setLevel(logging.WARNING)
