"""The blob-arrival event trigger against Azurite: first-scan baseline, one event per new blob, restarts."""

from __future__ import annotations

import asyncio
import importlib
from typing import Any

import pytest

pytestmark = pytest.mark.integration

CONTAINER = "arrivals-test"


def first_event(trigger: Any, timeout: float) -> dict[str, Any] | None:
    """The trigger's first event, or ``None`` if it yields nothing within ``timeout`` seconds."""

    async def take() -> dict[str, Any] | None:
        events = trigger.run()
        try:
            event = await asyncio.wait_for(anext(events), timeout)
        except TimeoutError:
            return None
        finally:
            await events.aclose()
        return event.payload

    return asyncio.run(take())


def upload(name: str, container: str = CONTAINER) -> None:
    from airflow.providers.microsoft.azure.hooks.wasb import WasbHook

    WasbHook(wasb_conn_id="azurite_default").load_string(
        "a,b\n1,2\n", container, name, overwrite=True, create_container=True
    )


def make_trigger(**kwargs: Any):
    from airflow_provider_amlretrain.triggers.blob_arrival import WasbBlobArrivalTrigger

    return WasbBlobArrivalTrigger(
        **{
            "wasb_conn_id": "azurite_default",
            "container": CONTAINER,
            "prefix": "in/",
            "suffix": ".csv",
            "poll_interval": 0.2,
            **kwargs,
        }
    )


def test_each_new_blob_is_reported_once_across_restarts(stack: Any) -> None:
    upload("in/already-there.csv")
    upload("in/ignored.txt")

    assert first_event(make_trigger(), timeout=1.5) is None, (
        "blobs present at the first scan are not reported"
    )

    upload("in/landed.csv")
    event = first_event(make_trigger(), timeout=10)  # a new instance: as after a triggerer restart
    assert event is not None and event["blob"] == "in/landed.csv" and event["container"] == CONTAINER
    assert event["size"] > 0 and event["last_modified"]

    assert first_event(make_trigger(), timeout=1.5) is None, "a reported blob is not reported again"
    upload("in/later.csv")
    assert first_event(make_trigger(), timeout=10)["blob"] == "in/later.csv"


def test_report_existing_reports_blobs_present_before_the_first_scan(stack: Any) -> None:
    upload("backlog/one.csv")
    event = first_event(make_trigger(prefix="backlog/", report_existing=True), timeout=10)
    assert event is not None and event["blob"] == "backlog/one.csv"


def test_a_watch_of_the_whole_container_never_reports_its_own_markers(stack: Any) -> None:
    whole = {"container": "arrivals-whole", "prefix": "", "suffix": ""}
    upload("before.csv", whole["container"])
    assert first_event(make_trigger(**whole), timeout=1.5) is None  # the baseline marker is written here

    upload("landed.csv", whole["container"])
    assert first_event(make_trigger(**whole), timeout=10)["blob"] == "landed.csv"
    assert first_event(make_trigger(**whole), timeout=1.5) is None, "markers are not arrivals"


def test_serialize_round_trip() -> None:
    trigger = make_trigger(marker_prefix="_m")
    classpath, kwargs = trigger.serialize()
    module, _, name = classpath.rpartition(".")
    again = getattr(importlib.import_module(module), name)(**kwargs)
    assert again.serialize() == (classpath, kwargs)
    assert again.marker_root == trigger.marker_root
