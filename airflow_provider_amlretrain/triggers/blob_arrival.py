"""Event trigger for data-aware scheduling: fires when a new blob lands under a container prefix."""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

from airflow_provider_amlretrain.triggers.blob_arrival_state import ArrivalState, InMemoryStateStore

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from azure.storage.blob.aio import ContainerClient

STORAGE_SDK_LOGGERS = ("azure.core.pipeline.policies.http_logging_policy", "azure.storage")
"""The storage SDK's loggers: at INFO they log every request with its headers (a poll every few seconds)."""

MODIFIED_MARGIN = timedelta(minutes=5)
"""How far before the newest last-modified time of a full scan the next one still looks (clock and listing skew)."""


def quiet_storage_sdk_logging() -> None:
    """Put the storage SDK's HTTP loggers at WARNING, unless logging configuration set a level for them."""
    for name in STORAGE_SDK_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.WARNING)


class WasbBlobArrivalTrigger(BaseEventTrigger):
    """
    Fire one event per new (or overwritten) blob under ``container/prefix`` ending in ``suffix``.

    Meant for an ``AssetWatcher``: the DAG scheduled on the asset runs once per landed blob, and
    reads which one from the asset event (``extra["payload"]``: ``container``, ``blob``, ``etag``,
    ``last_modified``, ``size``).

    **Read-only.** The trigger only lists the container (a SAS with the List permission is enough);
    it writes nothing to it. What it has seen lives in the asset's state store (Airflow 3.3's
    ``asset_state_store``, injected by the triggerer), so it survives triggerer restarts:

    - a *poll* lists only names from the greatest name seen on (``start_from``), so it costs one
      request and the new blobs, not the container's history;
    - a *full scan*, at the first run and then every ``full_scan_interval`` seconds, lists the
      whole prefix and reports what appeared or changed since the previous full scan (by
      last-modified time and ETag), which catches blobs that land below the greatest name.

    **At least once.** The seen-state of a poll is stored one poll interval after its events were
    handed to the triggerer (which stores them in that time), never before: a crash in between
    reports those blobs again, and the DAG skips a blob and ETag an earlier event already reported.

    On its very first scan the trigger takes what is already there as seen without firing
    (``report_existing=True`` reports it instead), so adding a watcher does not start a run per
    historical file.

    :param wasb_conn_id: The ``wasb`` connection (List permission on the container is enough).
    :param container: The container to watch.
    :param prefix: Only blobs whose names start with this.
    :param suffix: Only blobs whose names end with this (e.g. ``train.csv``).
    :param poll_interval: Seconds between two listings.
    :param full_scan_interval: Seconds between two full scans (blobs landing below the greatest name).
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
        full_scan_interval: float = 3600.0,
        report_existing: bool = False,
    ) -> None:
        super().__init__()
        self.wasb_conn_id = wasb_conn_id
        self.container = container
        self.prefix = prefix
        self.suffix = suffix
        self.poll_interval = float(poll_interval)
        self.full_scan_interval = float(full_scan_interval)
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
                "full_scan_interval": self.full_scan_interval,
                "report_existing": self.report_existing,
            },
        )

    @property
    def state_key(self) -> str:
        """The key of this watch's seen-state in the asset's state store (one per container, prefix and suffix)."""
        return f"blob_arrival:{self.container}/{self.prefix}*{self.suffix}"

    def _store(self) -> Any:
        """The asset state store the triggerer injected, else (outside a watcher) this instance's memory."""
        if self.asset_state_store is not None:
            return self.asset_state_store
        self.log.warning(
            "No asset state store (not run as an asset watcher): what %s has seen is kept in memory only.",
            self.state_key,
        )
        self.asset_state_store = InMemoryStateStore()  # type: ignore[assignment]
        return self.asset_state_store

    @asynccontextmanager
    async def _container(self) -> AsyncIterator[ContainerClient]:
        """A container client on the ``wasb`` connection, closed after use."""
        from airflow.providers.microsoft.azure.hooks.wasb import WasbAsyncHook

        service = await WasbAsyncHook(wasb_conn_id=self.wasb_conn_id).get_async_conn()
        try:
            yield service.get_container_client(self.container)
        finally:
            await service.close()

    def _watched(self, name: str) -> bool:
        return name.startswith(self.prefix) and name.endswith(self.suffix)

    async def _list(
        self, container: ContainerClient, state: ArrivalState, *, full: bool, report: bool
    ) -> list[dict[str, Any]]:
        """
        List the prefix (all of it, or from the greatest name seen on) and return the new blobs' payloads.

        ``state`` is updated in memory; storing it is the caller's business.
        """
        start_from = None if full or not state.cursor else state.cursor
        options: dict[str, Any] = {"name_starts_with": self.prefix or None}
        if start_from is not None:
            options["start_from"] = start_from
        newest: datetime | None = None
        listed: dict[str, tuple[str, datetime | None]] = {}
        found: list[dict[str, Any]] = []
        async for blob in container.list_blobs(**options):
            modified = blob.last_modified
            listed[blob.name] = (str(blob.etag), modified)
            if modified is not None and (newest is None or modified > newest):
                newest = modified
            if not self._watched(blob.name):
                continue
            # The greatest watched name: other blobs sorting after it (a sample.csv) must not hide new ones.
            state.cursor = max(state.cursor, blob.name)
            if not state.is_new(blob.name, str(blob.etag), modified):
                continue
            state.seen[blob.name] = str(blob.etag)
            if report:
                found.append(
                    {
                        "container": self.container,
                        "blob": blob.name,
                        "etag": str(blob.etag),
                        "last_modified": modified.isoformat() if modified else None,
                        "size": blob.size,
                    }
                )
        if full:
            state.after_full_scan(listed, newest, MODIFIED_MARGIN)
        return found

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll every ``poll_interval`` seconds; yield one event per new blob; store the state a poll later."""
        quiet_storage_sdk_logging()
        store = self._store()
        saved = await store.aget(self.state_key)
        state = ArrivalState.from_json(saved)
        first = state is None
        state = state or ArrivalState()
        async with self._container() as container:
            found = await self._list(
                container,
                state,
                full=first or state.full_scan_due(self.full_scan_interval),
                report=self.report_existing or not first,
            )
            if first:
                self.log.info(
                    "First scan of %s/%s*%s: %d blob(s) reported, the rest taken as seen.",
                    self.container,
                    self.prefix,
                    self.suffix,
                    len(found),
                )
            while True:
                for payload in found:
                    self.log.info("New blob %s/%s.", self.container, payload["blob"])
                    yield TriggerEvent(payload)
                if not found and state.to_json() != saved:
                    saved = await self._save(store, state)  # nothing to deliver: store at once
                await asyncio.sleep(self.poll_interval)
                if state.to_json() != saved:
                    # A poll interval after the triggerer took the events (it stores them within a second or two).
                    saved = await self._save(store, state)
                found = await self._list(
                    container, state, full=state.full_scan_due(self.full_scan_interval), report=True
                )

    async def _save(self, store: Any, state: ArrivalState) -> dict[str, Any]:
        """Store the seen-state; what was stored."""
        value = state.to_json()
        await store.aset(self.state_key, value)
        return value
