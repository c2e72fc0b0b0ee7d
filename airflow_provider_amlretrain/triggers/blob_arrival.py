"""Event trigger for data-aware scheduling: fires when a new blob lands under a container prefix."""

from __future__ import annotations

import asyncio
import hashlib
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from azure.storage.blob.aio import ContainerClient

BASELINE = ".baseline"


class WasbBlobArrivalTrigger(BaseEventTrigger):
    """
    Fire one event for the next new blob under ``container/prefix`` ending in ``suffix``.

    Meant for an ``AssetWatcher``: the DAG scheduled on the asset runs once per landed blob, and
    reads which one from the asset event (``extra["payload"]``: ``container``, ``blob``,
    ``last_modified``, ``size``).

    Each reported blob gets a marker blob under ``marker_prefix`` in the same container, created
    with a conditional write, so a blob is reported once, across triggerer restarts and parallel
    triggerers. On its very first scan the trigger marks what is already there without firing
    (``report_existing=True`` reports it instead), so adding a watcher does not start a run per
    historical file.

    :param wasb_conn_id: The ``wasb`` connection.
    :param container: The container to watch.
    :param prefix: Only blobs whose names start with this.
    :param suffix: Only blobs whose names end with this (e.g. ``train.csv``).
    :param poll_interval: Seconds between two listings.
    :param marker_prefix: Where markers live in the container.
    :param report_existing: Report blobs present before the first scan too.
    """

    def __init__(
        self,
        *,
        wasb_conn_id: str,
        container: str,
        prefix: str = "",
        suffix: str = "",
        poll_interval: float = 60.0,
        marker_prefix: str = "_amlretrain/arrivals",
        report_existing: bool = False,
    ) -> None:
        super().__init__()
        self.wasb_conn_id = wasb_conn_id
        self.container = container
        self.prefix = prefix
        self.suffix = suffix
        self.poll_interval = float(poll_interval)
        self.marker_prefix = marker_prefix.strip("/")
        self.report_existing = report_existing

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Class path and plain-data arguments."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "wasb_conn_id": self.wasb_conn_id,
                "container": self.container,
                "prefix": self.prefix,
                "suffix": self.suffix,
                "poll_interval": self.poll_interval,
                "marker_prefix": self.marker_prefix,
                "report_existing": self.report_existing,
            },
        )

    @property
    def marker_root(self) -> str:
        """The marker folder of this watch (one per container, prefix and suffix)."""
        digest = hashlib.sha256(f"{self.container}/{self.prefix}*{self.suffix}".encode()).hexdigest()[:16]
        return f"{self.marker_prefix}/{digest}"

    def _marker(self, blob_name: str) -> str:
        return f"{self.marker_root}/{hashlib.sha256(blob_name.encode()).hexdigest()}"

    def _watched(self, name: str) -> bool:
        return (
            name.startswith(self.prefix)
            and name.endswith(self.suffix)
            and not name.startswith(self.marker_prefix + "/")
        )

    async def _claim(self, container: ContainerClient, blob_name: str) -> bool:
        """Create the blob's marker; ``False`` if it existed (already reported, or by another triggerer)."""
        from azure.core.exceptions import ResourceExistsError

        try:
            await container.upload_blob(self._marker(blob_name), blob_name.encode(), overwrite=False)
        except ResourceExistsError:
            return False
        return True

    async def _baseline(self, container: ContainerClient) -> None:
        """Mark every blob present now as seen, once per watch."""
        from azure.core.exceptions import ResourceNotFoundError

        try:
            await container.get_blob_client(f"{self.marker_root}/{BASELINE}").get_blob_properties()
            return
        except ResourceNotFoundError:
            pass
        count = 0
        async for blob in container.list_blobs(name_starts_with=self.prefix or None):
            if self._watched(blob.name) and await self._claim(container, blob.name):
                count += 1
        await container.upload_blob(f"{self.marker_root}/{BASELINE}", b"", overwrite=True)
        self.log.info(
            "First scan of %s/%s*%s: %d existing blob(s) marked as seen.",
            self.container,
            self.prefix,
            self.suffix,
            count,
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """List the prefix every ``poll_interval`` seconds; yield one event for the first new blob."""
        from airflow.providers.microsoft.azure.hooks.wasb import WasbAsyncHook

        service = await WasbAsyncHook(wasb_conn_id=self.wasb_conn_id).get_async_conn()
        try:
            container = service.get_container_client(self.container)
            if not self.report_existing:
                await self._baseline(container)
            while True:
                async for blob in container.list_blobs(name_starts_with=self.prefix or None):
                    if self._watched(blob.name) and await self._claim(container, blob.name):
                        self.log.info("New blob %s/%s.", self.container, blob.name)
                        yield TriggerEvent(
                            {
                                "container": self.container,
                                "blob": blob.name,
                                "last_modified": blob.last_modified.isoformat()
                                if blob.last_modified
                                else None,
                                "size": blob.size,
                            }
                        )
                        return
                await asyncio.sleep(self.poll_interval)
        finally:
            await service.close()
