"""
The storage client of a ``wasb`` connection: the Azure provider's ``WasbHook``, the one place it is made.

Every blob this provider reads or writes (evaluation CSVs, smoke-test samples, deployment records, the SAS it
mints for BES) goes through the client ``WasbHook.get_conn`` builds, so every connection form that hook accepts
works, and its rules (which extra wins, how Azure AD is used, how the SDK's request log is quietened) are
never copied here.

``WasbHook``'s module loads azure-identity (sync and async), the async storage SDK and msrest whatever the
connection holds: ``benchmarks/fan_out_task_cost.py`` measured about 0.25-0.4 CPU s of each task process that
touches a blob (250 of its 500 modules). That cost belongs to the Azure provider's module, and is kept rather
than building the client with code of our own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from azure.storage.blob import BlobServiceClient


def blob_service_client(wasb_conn_id: str) -> BlobServiceClient:
    """
    ``WasbHook(wasb_conn_id).get_conn()``: the storage client of the connection.

    :param wasb_conn_id: The ``wasb`` connection.
    """
    from airflow.providers.microsoft.azure.hooks.wasb import WasbHook

    client: BlobServiceClient = WasbHook(wasb_conn_id=wasb_conn_id).get_conn()
    return client
