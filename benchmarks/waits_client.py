"""
One triggerer's worth of deferred waits, in this process: ``python waits_client.py APPROACH JOBS INTERVAL READY``.

Runs one trigger per job of ``JOBS`` (a JSON file ``{"warm_up": job, "jobs": [job, ...]}``, each job a
``{"job_id", "url"}``; the warm-up job has ended: one wait for it first loads what the approach's polls import, so
the memory measured before the waits holds the imports and the memory they add is the waits' own), every ``run()`` a task of one
event loop, as the triggerer's ``TriggerRunner`` runs them (``async for event in trigger.run()``). ``APPROACH``
is ``provider`` (this provider's ``AzureMLBatchJobTrigger``, its interval fixed at ``INTERVAL`` so both poll
alike), ``http`` (the Http provider's ``HttpEventTrigger`` with the response check in ``http_job_check``,
polling the same status URL at the same interval) or ``aiohttp`` (the floor under both: bare GETs on one shared
session, :class:`SharedSessionPoll`). Prints one JSON line: CPU seconds (all, and after the first round of polls, when
one-time imports are done), peak RSS, HTTP requests
and TCP connections made (an aiohttp ``TraceConfig`` on every session), the longest event-loop stall (a
ticker that should wake every 50 ms, from the end of the first round of polls), and when each job's event
came. ``READY`` is created once every trigger has polled once: the driver then starts the jobs. Also the garbage
collections (by generation, and their CPU seconds) and the RSS at the end of the first round.

Switches: ``WAITS_CLIENT_PROFILE=<prefix>`` writes cProfile stats of the part after the first round (what
``cpu_seconds`` measures) to ``<prefix>.<approach>``; ``WAITS_CLIENT_TRACEMALLOC=<file>`` writes the memory the
waits hold at the end of the first round, by line, against a snapshot taken before the triggers were made, and
``<file>.burst`` the same at the largest traced size seen during the first round.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import psutil

COUNTS = {"requests": 0, "connections": 0, "sessions": 0}
TICK = 0.05
GC_COLLECTIONS = [0, 0, 0]
"""Garbage collections by generation, counted from the end of the first round (``GC_TIMES["on"]``)."""
GC_TIMES = {"seconds": 0.0, "started": 0.0, "on": 0.0}
"""CPU seconds the collections took, and when the running one started."""
PROFILER: Any = None
"""A ``cProfile.Profile`` when ``WAITS_CLIENT_PROFILE`` is set: on from the end of the first round to the end."""


async def _on_request(session: Any, context: Any, params: Any) -> None:
    COUNTS["requests"] += 1


async def _on_connection(session: Any, context: Any, params: Any) -> None:
    COUNTS["connections"] += 1


_init = aiohttp.ClientSession.__init__


def _traced_init(self: aiohttp.ClientSession, *args: Any, **kwargs: Any) -> None:
    COUNTS["sessions"] += 1
    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(_on_request)
    trace.on_connection_create_end.append(_on_connection)
    kwargs["trace_configs"] = [*(kwargs.get("trace_configs") or []), trace]
    _init(self, *args, **kwargs)


aiohttp.ClientSession.__init__ = _traced_init  # type: ignore[method-assign]


def _on_gc(phase: str, info: dict[str, int]) -> None:
    if not GC_TIMES["on"]:
        return
    if phase == "start":
        GC_TIMES["started"] = time.process_time()
        return
    GC_COLLECTIONS[info["generation"]] += 1
    GC_TIMES["seconds"] += time.process_time() - GC_TIMES["started"]


gc.callbacks.append(_on_gc)


class SharedSessionPoll:
    """
    The floor under any aiohttp-based trigger: one shared session, a bare GET per poll, no pipeline, no retries.

    Not something to deploy (no retry, no ``Retry-After``, no redaction, a session never closed): it says how
    much of a poll's CPU is aiohttp's own, so the two real approaches can be read against it.

    :param job: ``job_id`` and status ``url``.
    :param interval: Seconds between polls.
    """

    session: aiohttp.ClientSession | None = None
    ended = frozenset({"Finished", "Failed", "Cancelled"})

    def __init__(self, job: dict[str, str], interval: float) -> None:
        self.url, self.interval = job["url"], interval
        self.headers = {
            "Authorization": json.loads(os.environ["AIRFLOW_CONN_BES_HTTP"])["extra"]["Authorization"]
        }

    async def run(self) -> Any:
        """Poll until the job has ended; yield one event saying its status."""
        from types import SimpleNamespace

        if SharedSessionPoll.session is None:
            SharedSessionPoll.session = aiohttp.ClientSession()
        while True:
            async with SharedSessionPoll.session.get(self.url, headers=self.headers) as response:
                status = (await response.json()).get("StatusCode")
            if status in self.ended:
                yield SimpleNamespace(payload={"status": status})
                return
            await asyncio.sleep(self.interval)


def make_trigger(approach: str, job: dict[str, str], interval: float) -> Any:
    """
    The trigger a deferred task of ``approach`` would hand to the triggerer for ``job``.

    :param approach: ``provider``, ``http`` or ``aiohttp`` (the floor: :class:`SharedSessionPoll`).
    :param job: ``job_id`` and status ``url``.
    :param interval: Seconds between polls.
    """
    if approach == "aiohttp":
        return SharedSessionPoll(job, interval)
    if approach == "provider":
        from airflow_provider_amlretrain.triggers.batch_job import AzureMLBatchJobTrigger

        return AzureMLBatchJobTrigger(
            azureml_conn_id="azureml_train_binary",
            job_id=job["job_id"],
            poll_interval=interval,
            max_poll_interval=interval,
        )
    from urllib.parse import urlsplit

    from airflow.providers.http.triggers.http import HttpEventTrigger

    parts = urlsplit(job["url"])
    return HttpEventTrigger(
        response_check_path="http_job_check.job_has_ended",
        http_conn_id="bes_http",
        endpoint=f"{parts.path}?{parts.query}",
        poll_interval=interval,
    )


async def main(
    approach: str, warm_up: dict[str, str], jobs: list[dict[str, str]], interval: float, ready: Path
) -> dict[str, Any]:
    """
    Wait for every job; return the measurements.

    :param approach: ``provider`` or ``http``.
    :param warm_up: An ended job, waited for first (not measured).
    :param jobs: The jobs to wait for.
    :param interval: Seconds between polls.
    :param ready: A file created once every wait is running (the driver then starts the jobs).
    """
    async for _ in make_trigger(approach, warm_up, interval).run():
        break  # one poll of an ended job: the approach's modules are loaded, its client made and released
    COUNTS.update(requests=0, connections=0, sessions=0)
    memory_before: Any = None
    traced_before = 0.0
    if os.environ.get("WAITS_CLIENT_TRACEMALLOC"):
        import tracemalloc

        memory_before = tracemalloc.take_snapshot()
        traced_before = round(tracemalloc.get_traced_memory()[0] / 2**20, 1)
        tracemalloc.reset_peak()
    triggers = [make_trigger(approach, job, interval) for job in jobs]
    detected: dict[str, float] = {}
    events: dict[str, Any] = {}
    stall = {"max": 0.0}
    done = asyncio.Event()
    warm: dict[str, float] = {}

    async def ticker() -> None:
        await asyncio.sleep(interval)  # every trigger has made its first poll
        warm.update(
            cpu=time.process_time(),
            requests=COUNTS["requests"],
            rss=psutil.Process().memory_info().rss / 2**20,
            peak_rss=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        )
        GC_TIMES["on"] = 1.0
        if PROFILER is not None:
            PROFILER.enable()  # the part "after the first round" measures: the steady polls
        memory_to = os.environ.get("WAITS_CLIENT_TRACEMALLOC")  # where to write where the waits' memory is
        if memory_to:
            import tracemalloc

            # What the waits hold, by line: against the snapshot taken before the triggers were made.
            stats = tracemalloc.take_snapshot().compare_to(memory_before, "lineno")[:40]
            current, peak = (round(size / 2**20, 1) for size in tracemalloc.get_traced_memory())
            held = f"traced MB: {traced_before} before the triggers, {current} now, peak {peak}"
            Path(memory_to).write_text("\n".join([held, *map(str, stats)]))
        ready.touch()
        while not done.is_set():
            before = time.perf_counter()
            await asyncio.sleep(TICK)
            stall["max"] = max(stall["max"], time.perf_counter() - before - TICK)

    async def burst_memory(memory_to: str) -> None:
        """During the first round, the traced memory at its largest, by line (``<memory_to>.burst``)."""
        import tracemalloc

        largest, largest_stats = 0, []
        started = time.perf_counter()
        while time.perf_counter() - started < interval:
            current = tracemalloc.get_traced_memory()[0]
            if current > largest + 2**20:  # a snapshot costs a second or so: only when it grew by 1 MB
                largest = current
                largest_stats = tracemalloc.take_snapshot().compare_to(memory_before, "lineno")[:40]
            await asyncio.sleep(0.1)
        held = f"traced MB at the largest: {round(largest / 2**20, 1)} ({traced_before} before the triggers)"
        Path(f"{memory_to}.burst").write_text("\n".join([held, *map(str, largest_stats)]))

    async def wait(trigger: Any, job_id: str) -> None:
        async for event in trigger.run():
            detected[job_id] = time.time()
            events[job_id] = event.payload
            break

    rss_before = psutil.Process().memory_info().rss / 2**20
    cpu, wall = time.process_time(), time.perf_counter()
    tick = asyncio.create_task(ticker())
    burst = None
    if memory_before is not None:
        burst = asyncio.create_task(burst_memory(os.environ["WAITS_CLIENT_TRACEMALLOC"]))
    await asyncio.gather(*(wait(trigger, job["job_id"]) for trigger, job in zip(triggers, jobs, strict=True)))
    done.set()
    await tick
    if burst is not None:
        await burst
    end_cpu = time.process_time()
    if PROFILER is not None:
        PROFILER.disable()
    cpu, wall = end_cpu - cpu, time.perf_counter() - wall
    ok = sum(1 for payload in events.values() if _ended_ok(payload))
    return {
        "approach": approach,
        "jobs": len(jobs),
        "events": len(events),
        "events_saying_finished": ok,
        "poll_interval_seconds": interval,
        "cpu_seconds_with_first_round": round(cpu, 3),
        # From the end of the first round of polls (one-time imports and connection reads done) to the end.
        "cpu_seconds": round(end_cpu - warm["cpu"], 3),
        "http_requests_after_first_round": COUNTS["requests"] - int(warm["requests"]),
        "gc_collections_after_first_round": GC_COLLECTIONS,
        "gc_cpu_seconds_after_first_round": round(GC_TIMES["seconds"], 3),
        "wall_seconds": round(wall, 3),
        "rss_before_waits_mb": round(rss_before, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        # At the end of the first round of polls: RSS then, and the peak so far (the first round's burst).
        "rss_after_first_round_mb": round(warm["rss"], 1),
        "peak_rss_after_first_round_mb": round(warm["peak_rss"], 1),
        "http_requests": COUNTS["requests"],
        "tcp_connections_opened": COUNTS["connections"],
        "aiohttp_sessions_created": COUNTS["sessions"],
        "longest_loop_stall_ms": round(1000 * stall["max"], 1),
        "detected_at": detected,
    }


def _ended_ok(payload: Any) -> bool:
    if isinstance(payload, dict) and payload.get("status") == "Finished":
        return True  # the provider's event
    if isinstance(payload, dict) and payload.get("status") == "success":
        body = json.loads(base64.b64decode(payload["response"]["content"]))
        return body.get("StatusCode") == "Finished"  # the Http trigger's event carries the answer
    return False


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    given = json.loads(Path(sys.argv[2]).read_text())
    warm_up, jobs = given["warm_up"], given["jobs"]
    if os.environ.get("WAITS_CLIENT_TRACEMALLOC"):
        import tracemalloc

        tracemalloc.start()
    # Where to write cProfile stats of what "after the first round" measures (imports and first polls left out).
    profile_to = os.environ.get("WAITS_CLIENT_PROFILE")
    if profile_to:
        import cProfile

        PROFILER = cProfile.Profile()
    result = asyncio.run(main(sys.argv[1], warm_up, jobs, float(sys.argv[3]), Path(sys.argv[4])))
    if PROFILER is not None:
        PROFILER.dump_stats(f"{profile_to}.{sys.argv[1]}")
    print(json.dumps(result))
