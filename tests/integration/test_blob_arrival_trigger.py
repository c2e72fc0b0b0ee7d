"""The blob-arrival event trigger against Azurite: first-scan baseline, one event per new blob, restarts, read-only."""

from __future__ import annotations

import asyncio
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


def events_within(trigger: Any, seconds: float) -> list[str]:
    """The blobs of every event the trigger yields in ``seconds`` (it stores its state as it goes)."""

    async def take() -> list[str]:
        names: list[str] = []
        events = trigger.run()

        async def collect() -> None:
            async for event in events:
                names.append(event.payload["blob"])

        try:
            await asyncio.wait_for(collect(), seconds)
        except TimeoutError:
            pass
        finally:
            await events.aclose()
        return names

    return asyncio.run(take())


def upload(name: str, container: str = CONTAINER) -> None:
    from airflow.providers.microsoft.azure.hooks.wasb import WasbHook

    WasbHook(wasb_conn_id="azurite_default").load_string(
        "a,b\n1,2\n", container, name, overwrite=True, create_container=True
    )


def make_trigger(store: Any = None, **kwargs: Any):
    from airflow_provider_amlretrain.triggers.blob_arrival import WasbBlobArrivalTrigger

    trigger = WasbBlobArrivalTrigger(
        **{
            "wasb_conn_id": "azurite_default",
            "container": CONTAINER,
            "prefix": "in/",
            "suffix": ".csv",
            "poll_interval": 0.2,
            **kwargs,
        }
    )
    trigger.asset_state_store = store  # as the triggerer injects it (None: memory only)
    return trigger


@pytest.fixture
def store() -> Any:
    from airflow_provider_amlretrain.triggers.blob_arrival_state import InMemoryStateStore

    return InMemoryStateStore()


@pytest.fixture
def requests_sent(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Every request the async storage clients send, as (method, URL), recorded at the transport."""
    from azure.core.pipeline.transport import AioHttpTransport

    sent: list[tuple[str, str]] = []
    original = AioHttpTransport.send

    async def recording(self: Any, request: Any, **kwargs: Any) -> Any:
        sent.append((request.method, request.url))
        return await original(self, request, **kwargs)

    monkeypatch.setattr(AioHttpTransport, "send", recording)
    return sent


def test_each_new_blob_is_reported_once_across_restarts(stack: Any, store: Any) -> None:
    upload("in/a-already-there.csv")
    upload("in/b-ignored.txt")

    assert first_event(make_trigger(store), timeout=1.5) is None, (
        "blobs present at the first scan are not reported"
    )

    upload("in/c-landed.csv")
    event = first_event(make_trigger(store), timeout=10)  # a new instance: as after a triggerer restart
    assert event is not None and event["blob"] == "in/c-landed.csv" and event["container"] == CONTAINER
    assert event["size"] > 0 and event["last_modified"] and event["etag"]

    # first_event stopped right after the event, before the state was stored: at least once, so it comes again
    assert events_within(make_trigger(store), 3) == ["in/c-landed.csv"]
    assert first_event(make_trigger(store), timeout=1.5) is None, (
        "once stored, a reported blob is not reported again"
    )
    upload("in/d-later.csv")
    assert first_event(make_trigger(store), timeout=10)["blob"] == "in/d-later.csv"


def test_report_existing_reports_blobs_present_before_the_first_scan(stack: Any, store: Any) -> None:
    upload("backlog/one.csv")
    event = first_event(make_trigger(store, prefix="backlog/", report_existing=True), timeout=10)
    assert event is not None and event["blob"] == "backlog/one.csv"


def test_the_trigger_only_lists_the_container(stack: Any, store: Any, requests_sent: list[Any]) -> None:
    whole = {"container": "arrivals-whole", "prefix": "", "suffix": ""}
    upload("a-before.csv", whole["container"])
    assert first_event(make_trigger(store, **whole), timeout=1.5) is None
    upload("b-landed.csv", whole["container"])
    assert first_event(make_trigger(store, **whole), timeout=10)["blob"] == "b-landed.csv"

    trigger_requests = [(method, url) for method, url in requests_sent if "arrivals-whole" in url]
    assert trigger_requests, "the recording saw the trigger's requests"
    assert {method for method, _ in trigger_requests} == {"GET"}, trigger_requests
    assert all("comp=list" in url for _, url in trigger_requests), trigger_requests
    from airflow.providers.microsoft.azure.hooks.wasb import WasbHook

    names = WasbHook(wasb_conn_id="azurite_default").get_blobs_list(whole["container"])
    assert sorted(names) == ["a-before.csv", "b-landed.csv"], "nothing but the data in the container"
