"""
Benchmark: requests and bytes per poll of the blob-arrival trigger over a container with a long history.

``python benchmarks/blob_arrival.py`` starts its own Azurite, writes ``--old`` blobs (``in/dt=NNNN/train.csv``)
into one container per implementation, lets each trigger make its first scan, then counts what its next
``--polls`` polls send and receive (at the azure-core transport), with no new blob and with ``--new`` new
ones. "before" is the trigger of ``--before`` (a git revision: the marker-blob trigger), "after" this
checkout's. Results go to ``--output`` (JSON). Nothing here asserts a timing; nothing is timed.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

from results_file import ResultsFile, benchmark_parser  # benchmarks/, beside this script

REPO_ROOT = Path(__file__).resolve().parents[1]
CONN_ID = "azurite_bench"
BEFORE = "0cc9027"  # the last revision with marker blobs


class Polls:
    """Stands in for the trigger module's ``asyncio``: counts the sleeps between polls, stops after ``limit``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.count = 0

    async def sleep(self, seconds: float) -> None:
        self.count += 1
        if self.count > self.limit:
            raise asyncio.CancelledError
        await asyncio.sleep(0)


class Recorder:
    """Counts requests (by method) and bytes sent and received through azure-core's aiohttp transport."""

    def __init__(self) -> None:
        self.requests: dict[str, int] = {}
        self.bytes_sent = 0
        self.bytes_received = 0

    def reset(self) -> None:
        self.requests, self.bytes_sent, self.bytes_received = {}, 0, 0

    def install(self) -> None:
        from azure.core.pipeline.transport import AioHttpTransport

        original = AioHttpTransport.send
        recorder = self

        async def send(transport: Any, request: Any, **kwargs: Any) -> Any:
            response = await original(transport, request, **kwargs)
            recorder.requests[request.method] = recorder.requests.get(request.method, 0) + 1
            body = request.data if isinstance(request.data, bytes | str) else b""
            recorder.bytes_sent += len(body) + len(request.url)
            try:
                received = len(response.body() or b"")
            except Exception:  # a streamed answer: its announced length
                received = 0
            recorder.bytes_received += received or int(response.headers.get("Content-Length") or 0)
            return response

        AioHttpTransport.send = send  # type: ignore[method-assign]


def load_trigger_module(revision: str | None) -> ModuleType:
    """The trigger module of a git revision (``None``: this checkout's)."""
    if revision is None:
        import airflow_provider_amlretrain.triggers.blob_arrival as current

        return current
    source = subprocess.run(
        ["git", "show", f"{revision}:airflow_provider_amlretrain/triggers/blob_arrival.py"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    path = Path(tempfile.mkdtemp(prefix="blob-arrival-before-")) / "blob_arrival_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("blob_arrival_before", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_trigger(module: ModuleType, container: str, store: Any) -> Any:
    trigger = module.WasbBlobArrivalTrigger(
        wasb_conn_id=CONN_ID, container=container, prefix="in/", suffix="/train.csv", poll_interval=0
    )
    if store is not None:
        trigger.asset_state_store = store
    return trigger


async def run_polls(module: ModuleType, trigger: Any, polls: int) -> int:
    """Run the trigger for its first listing plus ``polls`` more; the events it yielded."""
    shim = Polls(polls)
    real = module.asyncio
    module.asyncio = SimpleNamespace(sleep=shim.sleep)
    events = 0
    try:
        async for _ in trigger.run():
            events += 1
    except asyncio.CancelledError:
        pass
    finally:
        module.asyncio = real
    return events


def measure(
    name: str, revision: str | None, service: Any, old: int, new: int, polls: int, recorder: Recorder
) -> dict[str, Any]:
    """First scan, then ``polls`` quiet polls, then one poll with ``new`` new blobs: counts per poll."""
    module = load_trigger_module(revision)
    container = f"bench-{name}"
    client = service.get_container_client(container)
    client.create_container()
    for day in range(old):
        client.upload_blob(f"in/dt={day:05d}/train.csv", b"a,b\n1,2\n")
    store = None
    if revision is None:
        from airflow_provider_amlretrain.triggers.blob_arrival_state import InMemoryStateStore

        store = InMemoryStateStore()

    recorder.reset()
    asyncio.run(run_polls(module, make_trigger(module, container, store), 0))
    first_scan = {"requests": dict(recorder.requests), "bytes_received": recorder.bytes_received}

    # The old trigger returns after an event; the new one stores its state a poll after: a quiet poll first.
    recorder.reset()
    asyncio.run(run_polls(module, make_trigger(module, container, store), polls))
    quiet = per_poll(recorder, polls + 1)

    for day in range(old, old + new):
        client.upload_blob(f"in/dt={day:05d}/train.csv", b"a,b\n1,2\n")
    recorder.reset()
    reported = 0
    trigger = make_trigger(module, container, store)
    while reported < new:  # the old trigger yields one event per run
        got = asyncio.run(run_polls(module, trigger, 0))
        if not got:
            break
        reported += got
        trigger = make_trigger(module, container, store) if revision is not None else trigger
    with_new = {**per_poll(recorder, 1 if revision is None else max(reported, 1)), "events": reported}
    return {"first_scan": first_scan, "quiet_poll": quiet, f"poll_with_{new}_new": with_new}


def per_poll(recorder: Recorder, polls: int) -> dict[str, Any]:
    return {
        "requests": {method: count / polls for method, count in sorted(recorder.requests.items())},
        "bytes_sent": round(recorder.bytes_sent / polls),
        "bytes_received": round(recorder.bytes_received / polls),
    }


def main(argv: list[str] | None = None) -> int:
    parser = benchmark_parser(__doc__, "blob_arrival")
    parser.add_argument("--old", type=int, default=1000, help="blobs already there")
    parser.add_argument("--new", type=int, default=10, help="blobs that land")
    parser.add_argument("--polls", type=int, default=5, help="quiet polls to average")
    parser.add_argument("--before", default=BEFORE, help="git revision of the trigger to compare with")
    args = parser.parse_args(argv)
    results_file = ResultsFile(args.output)

    from amlretrain_devstack.azurite import AzuriteEndpoint, azurite_binary, start_azurite
    from amlretrain_devstack.procs import free_port, stop_group

    endpoint = AzuriteEndpoint("127.0.0.1", free_port())
    workdir = Path(tempfile.mkdtemp(prefix="blob-arrival-bench-"))
    process = start_azurite(
        azurite_binary(), endpoint, workdir / "data", workdir / "azurite.log", env=dict(os.environ)
    )
    try:
        os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = json.dumps(
            {"conn_type": "wasb", "extra": {"connection_string": endpoint.connection_string}}
        )
        from azure.storage.blob import BlobServiceClient

        service = BlobServiceClient.from_connection_string(endpoint.connection_string)
        recorder = Recorder()
        recorder.install()
        results = {
            "old_blobs": args.old,
            "new_blobs": args.new,
            "before": {"revision": args.before}
            | measure("before", args.before, service, args.old, args.new, args.polls, recorder),
            "after": {"revision": "this checkout"}
            | measure("after", None, service, args.old, args.new, args.polls, recorder),
        }
    finally:
        stop_group(process.pid)
    results_file.write(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
