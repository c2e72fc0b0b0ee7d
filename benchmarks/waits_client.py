"""
One triggerer's worth of deferred waits, in this process: ``python waits_client.py APPROACH JOBS INTERVAL READY``.

Runs one trigger per job of ``JOBS`` (a JSON file ``{"warm_up": job, "jobs": [job, ...]}``, each job a
``{"job_id", "url"}``; the warm-up job has ended: one wait for it first loads what the approach's polls import, so
the memory measured before the waits holds the imports and the memory they add is the waits' own), every ``run()`` a task of one
event loop, as the triggerer's ``TriggerRunner`` runs them (``async for event in trigger.run()``). ``APPROACH``
is ``provider`` (this provider's ``AzureMLBatchJobTrigger``, its interval fixed at ``INTERVAL`` so both poll
alike) or ``http`` (the Http provider's ``HttpEventTrigger`` with the response check in ``http_job_check``,
polling the same status URL at the same interval). Prints one JSON line: CPU seconds (all, and after the first round of polls, when
one-time imports are done), peak RSS, HTTP requests
and TCP connections made (an aiohttp ``TraceConfig`` on every session), the longest event-loop stall (a
ticker that should wake every 50 ms, from the end of the first round of polls), and when each job's event
came. ``READY`` is created once every trigger has polled once: the driver then starts the jobs.
"""

from __future__ import annotations

import asyncio
import base64
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


def make_trigger(approach: str, job: dict[str, str], interval: float) -> Any:
    """
    The trigger a deferred task of ``approach`` would hand to the triggerer for ``job``.

    :param approach: ``provider`` or ``http``.
    :param job: ``job_id`` and status ``url``.
    :param interval: Seconds between polls.
    """
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
    triggers = [make_trigger(approach, job, interval) for job in jobs]
    detected: dict[str, float] = {}
    events: dict[str, Any] = {}
    stall = {"max": 0.0}
    done = asyncio.Event()
    warm: dict[str, float] = {}

    async def ticker() -> None:
        await asyncio.sleep(interval)  # every trigger has made its first poll
        warm.update(cpu=time.process_time(), requests=COUNTS["requests"])
        memory_to = os.environ.get("WAITS_CLIENT_TRACEMALLOC")  # where to write where the waits' memory is
        if memory_to:
            import tracemalloc

            stats = tracemalloc.take_snapshot().statistics("filename")[:30]
            Path(memory_to).write_text("\n".join(map(str, stats)))
        ready.touch()
        while not done.is_set():
            before = time.perf_counter()
            await asyncio.sleep(TICK)
            stall["max"] = max(stall["max"], time.perf_counter() - before - TICK)

    async def wait(trigger: Any, job_id: str) -> None:
        async for event in trigger.run():
            detected[job_id] = time.time()
            events[job_id] = event.payload
            break

    rss_before = psutil.Process().memory_info().rss / 2**20
    cpu, wall = time.process_time(), time.perf_counter()
    tick = asyncio.create_task(ticker())
    await asyncio.gather(*(wait(trigger, job["job_id"]) for trigger, job in zip(triggers, jobs, strict=True)))
    done.set()
    await tick
    end_cpu = time.process_time()
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
        "wall_seconds": round(wall, 3),
        "rss_before_waits_mb": round(rss_before, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
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
    profile_to = os.environ.get("WAITS_CLIENT_PROFILE")  # where to write cProfile stats, when set
    if profile_to:
        import cProfile

        with cProfile.Profile() as profiler:
            result = asyncio.run(main(sys.argv[1], warm_up, jobs, float(sys.argv[3]), Path(sys.argv[4])))
        profiler.dump_stats(f"{profile_to}.{sys.argv[1]}")
    else:
        result = asyncio.run(main(sys.argv[1], warm_up, jobs, float(sys.argv[3]), Path(sys.argv[4])))
    print(json.dumps(result))
