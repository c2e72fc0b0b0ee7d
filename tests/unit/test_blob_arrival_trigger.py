"""The blob-arrival trigger's seen-state against a fake container: cost per poll, restarts, crashes, late blobs."""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_amlretrain.triggers.blob_arrival import STORAGE_SDK_LOGGERS, WasbBlobArrivalTrigger
from airflow_provider_amlretrain.triggers.blob_arrival_state import InMemoryStateStore

T0 = datetime(2026, 11, 1, tzinfo=UTC)


class FakeContainer:
    """A container that only lists (as the trigger's read-only access), counting list calls and blobs returned."""

    def __init__(self) -> None:
        self.blobs: dict[str, SimpleNamespace] = {}
        self.list_calls = 0
        self.blobs_listed = 0
        self.clock = T0
        self.versions = 0

    def put(self, name: str) -> None:
        self.clock += timedelta(seconds=1)
        self.versions += 1
        self.blobs[name] = SimpleNamespace(
            name=name, etag=f'"0x{self.versions:04X}"', last_modified=self.clock, size=10
        )

    async def _listing(self, prefix: str | None, start_from: str | None) -> Any:
        for name in sorted(self.blobs):
            if (prefix and not name.startswith(prefix)) or (start_from and name < start_from):
                continue
            self.blobs_listed += 1
            yield self.blobs[name]

    def list_blobs(self, name_starts_with: str | None = None, start_from: str | None = None) -> Any:
        self.list_calls += 1
        return self._listing(name_starts_with, start_from)


def make_trigger(
    container: FakeContainer, store: InMemoryStateStore, **kwargs: Any
) -> WasbBlobArrivalTrigger:
    trigger = WasbBlobArrivalTrigger(
        **{
            "wasb_conn_id": "wasb_unused",
            "container": "data",
            "prefix": "in/",
            "suffix": ".csv",
            "poll_interval": 0.01,
            **kwargs,
        }
    )
    trigger.asset_state_store = store  # type: ignore[assignment]  # as the triggerer injects it

    @asynccontextmanager
    async def fake_container() -> Any:
        yield container

    trigger._container = fake_container  # type: ignore[method-assign]
    return trigger


async def events_of(trigger: WasbBlobArrivalTrigger, count: int, timeout: float = 2.0) -> list[str]:
    """The blob names of the trigger's next ``count`` events (fewer if it has no more within ``timeout``)."""
    names: list[str] = []
    stream = trigger.run()
    try:
        while len(names) < count:
            event = await asyncio.wait_for(anext(stream), timeout)
            names.append(event.payload["blob"])
    except TimeoutError:
        pass
    finally:
        await stream.aclose()
    return names


async def settle(trigger: WasbBlobArrivalTrigger, polls: int = 3) -> None:
    """Let a trigger run a few quiet polls (so it stores its state), then stop it."""
    stream = trigger.run()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(anext(stream), trigger.poll_interval * polls + 0.1)
    await stream.aclose()


async def test_existing_blobs_are_baseline_and_state_survives_a_new_instance() -> None:
    container, store = FakeContainer(), InMemoryStateStore()
    container.put("in/1-old.csv")
    container.put("in/z-not-watched.txt")  # sorts after the new blob: a poll must still list the new one
    await settle(make_trigger(container, store))

    container.put("in/2-new.csv")
    assert await events_of(make_trigger(container, store), 5, timeout=0.3) == ["in/2-new.csv"]
    await settle(make_trigger(container, store))
    assert await events_of(make_trigger(container, store), 1, timeout=0.3) == [], "reported once only"


async def test_report_existing_reports_the_backlog() -> None:
    container, store = FakeContainer(), InMemoryStateStore()
    container.put("in/a.csv")
    container.put("in/b.csv")
    assert await events_of(make_trigger(container, store, report_existing=True), 2) == [
        "in/a.csv",
        "in/b.csv",
    ]


async def test_a_poll_costs_one_listing_of_the_new_blobs_not_the_history() -> None:
    container, store = FakeContainer(), InMemoryStateStore()
    for day in range(1000):
        container.put(f"in/dt={day:04d}/train.csv")
    await settle(make_trigger(container, store))
    assert container.blobs_listed >= 1000  # the first scan reads the history, once

    for day in range(1000, 1003):
        container.put(f"in/dt={day:04d}/train.csv")
    container.list_calls = container.blobs_listed = 0
    trigger = make_trigger(container, store)
    assert len(await events_of(trigger, 3)) == 3
    assert container.list_calls == 1
    assert container.blobs_listed == 1 + 3, "the greatest name seen, then the three new blobs"


async def test_a_crash_after_the_event_repeats_it_and_loses_nothing() -> None:
    container, store = FakeContainer(), InMemoryStateStore()
    await settle(make_trigger(container, store))
    container.put("in/landed.csv")

    crashed = make_trigger(container, store, poll_interval=60)
    assert await events_of(crashed, 1) == ["in/landed.csv"]  # stopped right after the event was handed over

    again = make_trigger(container, store)  # runs on for a few polls: stores its state after the event
    assert await events_of(again, 2, timeout=0.3) == ["in/landed.csv"], (
        "an event not yet stored is reported again"
    )
    assert await events_of(make_trigger(container, store), 1, timeout=0.3) == []


async def test_an_overwritten_blob_and_a_blob_below_the_cursor_are_reported() -> None:
    container, store = FakeContainer(), InMemoryStateStore()
    container.put("in/b.csv")
    container.put("in/c.csv")
    await settle(make_trigger(container, store))

    container.put("in/c.csv")  # overwritten: a new ETag
    assert await events_of(make_trigger(container, store), 2, timeout=0.3) == ["in/c.csv"]
    await settle(make_trigger(container, store))

    container.put("in/a.csv")  # lands below the greatest name: only a full scan lists it
    late = make_trigger(container, store, full_scan_interval=3600)
    assert await events_of(late, 1, timeout=0.3) == []
    assert await events_of(make_trigger(container, store, full_scan_interval=0), 1) == ["in/a.csv"]


async def test_the_storage_sdk_logs_at_warning_in_the_trigger() -> None:
    for name in STORAGE_SDK_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET)
    await settle(make_trigger(FakeContainer(), InMemoryStateStore()), polls=1)
    assert all(logging.getLogger(name).level == logging.WARNING for name in STORAGE_SDK_LOGGERS)


def test_serialize_round_trip() -> None:
    trigger = WasbBlobArrivalTrigger(wasb_conn_id="w", container="c", prefix="p/", full_scan_interval=60)
    classpath, kwargs = trigger.serialize()
    assert WasbBlobArrivalTrigger(**kwargs).serialize() == (classpath, kwargs)
    assert WasbBlobArrivalTrigger(**kwargs).state_key == trigger.state_key
