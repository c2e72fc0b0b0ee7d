"""
Benchmark: detection lag against requests, fixed 30 s polling against the provider's polling policy.

Two parts, said apart in the results:

- ``model``: the provider's own :class:`~airflow_provider_amlretrain.api.polling.JobPollingRules` (defaults:
  15 s first wait, half the elapsed time after, 120 s ceiling) and fixed 30 s polling, played over jobs of
  5 s to 10 min (log-spaced and evenly spaced durations): a status read right after the start, then one after
  each wait, until a read comes after the job's end. Lag is that read's time minus the end.
- ``emulator``: a spot check with real short jobs: the sync hook's ``wait_for_job`` on the emulator with both
  policies scaled down 15 times (1 s first wait / 8 s ceiling against fixed 2 s), jobs of 1 to 12 s; lag is the
  emulator's ``ended_at`` to the moment the wait returned, requests are the status reads made.

Nothing here asserts a timing.
"""

from __future__ import annotations

import itertools
import math
import statistics
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
FIXED_SECONDS = 30.0
SCALE = 15.0


def _rules(policy: str, scale: float = 1.0, started_at: float = 0.0) -> Any:
    from airflow_provider_amlretrain.api.polling import DEFAULT_MAX_POLL_INTERVAL, JobPollingRules

    if policy == "fixed":
        interval = FIXED_SECONDS / scale
        return JobPollingRules(poll_interval=interval, max_poll_interval=interval, started_at=started_at)
    return JobPollingRules(
        poll_interval=JobPollingRules().poll_interval / scale,
        max_poll_interval=DEFAULT_MAX_POLL_INTERVAL / scale,
        started_at=started_at,
    )


def play(policy: str, duration: float) -> tuple[float, int]:
    """
    Lag and status reads of waiting with ``policy`` for a job that ends ``duration`` s after its start.

    :param policy: ``fixed`` or ``provider``.
    :param duration: The job's duration in seconds.
    """
    rules = _rules(policy)
    now, reads = 0.0, 0
    while True:
        reads += 1
        if now >= duration:
            return now - duration, reads
        now += rules.sleep_seconds(now=now)


def play_interval(interval: Callable[[float], float], duration: float) -> tuple[float, int]:
    """
    Lag and status reads of waiting with any interval rule (seconds since the start -> next wait).

    :param interval: The wait after a read made that many seconds after the start.
    :param duration: The job's duration in seconds.
    """
    now, reads = 0.0, 0
    while True:
        reads += 1
        if now >= duration:
            return now - duration, reads
        now += interval(now)


GROWING_FIRST_WAITS = (2.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0, 35.0, 40.0)
GROWING_GROWTHS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5)
GROWING_CEILINGS = (30.0, 35.0, 40.0, 50.0, 60.0, 90.0, 120.0)


def search_growing_policies(durations: list[float], fixed: dict[str, float]) -> dict[str, Any]:
    """
    Every policy of the provider's family on a grid: first wait ``p``, then ``growth`` times the elapsed time,
    at most ``ceiling`` (the provider's default is ``p=15, growth=0.5, ceiling=120``; fixed polling is
    ``growth=0``), and which of them beat fixed 30 s polling on both requests and median lag.

    :param durations: The job durations.
    :param fixed: Fixed 30 s polling's summary over them.
    """
    tried, meeting = 0, []
    for first, growth, ceiling in itertools.product(GROWING_FIRST_WAITS, GROWING_GROWTHS, GROWING_CEILINGS):
        if ceiling < first:
            continue
        tried += 1
        played = [
            play_interval(lambda t, p=first, g=growth, c=ceiling: min(c, max(p, g * t)), d) for d in durations
        ]
        summary = _summary([x[0] for x in played], [x[1] for x in played])
        if (
            summary["requests_per_job_mean"] < fixed["requests_per_job_mean"]
            and summary["lag_median_seconds"] < fixed["lag_median_seconds"]
        ):
            meeting.append({"first": first, "growth": growth, "ceiling": ceiling, **summary})
    return {"tried": tried, "meeting_target": meeting}


KNOWN_LONGEST_SECONDS = 600.0
KNOWN_LONGEST_FACTOR = 1.8


def knowing_the_longest(durations: list[float]) -> dict[str, float]:
    """
    A policy told the longest duration ``L`` a job takes: waits of ``1.8 * sqrt(L - t)`` (at least 2 s), which
    shrink as ``t`` nears ``L``. For durations spread evenly up to ``L`` that is the interval that minimises the
    mean lag for a number of requests (the lag weighs every moment alike; a request at ``t`` is paid by every
    job still running, a share ``(L - t) / L``). The provider does not implement it: it needs ``L``.

    :param durations: The job durations.
    """
    played = [
        play_interval(
            lambda t: max(2.0, KNOWN_LONGEST_FACTOR * math.sqrt(max(KNOWN_LONGEST_SECONDS - t, 0.0))), d
        )
        for d in durations
    ]
    return _summary([x[0] for x in played], [x[1] for x in played])


def _summary(lags: list[float], reads: list[int]) -> dict[str, float]:
    from results_file import percentile

    return {
        "lag_median_seconds": round(statistics.median(lags), 2),
        "lag_p95_seconds": round(percentile(lags, 0.95), 2),
        "requests_per_job_mean": round(statistics.mean(reads), 2),
        "requests_per_job_median": statistics.median(reads),
    }


def bench_model(points: int = 2000) -> dict[str, Any]:
    """
    Both policies over log-spaced and evenly spaced job durations from 5 s to 10 min.

    :param points: Durations per spacing.
    """
    low, high = 5.0, 600.0
    spacings = {
        "log_spaced": [low * (high / low) ** (i / (points - 1)) for i in range(points)],
        "evenly_spaced": [low + (high - low) * i / (points - 1) for i in range(points)],
    }
    results: dict[str, Any] = {"durations": "5 s to 10 min", "points": points}
    for name, durations in spacings.items():
        results[name] = {}
        for policy in ("fixed", "provider"):
            played = [play(policy, d) for d in durations]
            results[name][policy] = _summary([p[0] for p in played], [p[1] for p in played])
    results["growing_policy_search"] = {
        name: search_growing_policies(durations, results[name]["fixed"])
        for name, durations in spacings.items()
    }
    results["evenly_spaced"]["knowing_the_longest"] = knowing_the_longest(spacings["evenly_spaced"])
    # For the plot: the log-spaced durations in 24 bins, median lag and mean requests per bin (lag alone is a
    # saw tooth: small for a job that ends just before a read, a whole interval for one that ends just after).
    bins, durations = 24, spacings["log_spaced"]
    size = len(durations) // bins
    results["curve"] = {
        "duration_seconds": [
            round(statistics.median(durations[i * size : (i + 1) * size]), 2) for i in range(bins)
        ]
    }
    for policy in ("fixed", "provider"):
        played = [play(policy, d) for d in durations]
        results["curve"][policy] = [
            (
                round(statistics.median(p[0] for p in played[i * size : (i + 1) * size]), 2),
                round(statistics.mean(p[1] for p in played[i * size : (i + 1) * size]), 2),
            )
            for i in range(bins)
        ]
    return results


def bench_emulator(durations: list[float], repeats: int) -> dict[str, Any]:
    """
    The spot check: real short jobs on the emulator, both policies scaled down :data:`SCALE` times.

    :param durations: Job durations to try (the emulator's ``job_seconds``).
    :param repeats: Jobs per duration and policy.
    """
    import requests
    from bench_stack import benchmark_stack
    from status_polls import STUDIO_CONN

    with benchmark_stack({"job_concurrency": 50}) as (stack, _, _):
        admin = f"{stack.emulator_url}/_emulator"
        runs: list[dict[str, Any]] = []
        for duration in durations:
            requests.put(f"{admin}/faults", json={"job_seconds": duration}, timeout=30).raise_for_status()
            threads = []
            for policy in ("fixed", "provider"):
                for index in range(repeats):
                    run: dict[str, Any] = {"policy": policy, "job_seconds": duration}
                    runs.append(run)
                    threads.append(threading.Thread(target=_wait_one, args=(stack, STUDIO_CONN, run, index)))
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        ended = {
            job["id"]: datetime.fromisoformat(job["ended_at"]).timestamp()
            for job in requests.get(f"{admin}/jobs", timeout=60).json()["jobs"]
            if job.get("ended_at")
        }
    for run in runs:
        run["lag_seconds"] = round(run.pop("returned_at") - ended[run["job_id"]], 3)
    results: dict[str, Any] = {"scale": SCALE, "runs": runs}
    for policy in ("fixed", "provider"):
        mine = [r for r in runs if r["policy"] == policy]
        results[policy] = _summary([r["lag_seconds"] for r in mine], [r["requests"] for r in mine])
        results[policy]["model_prediction"] = _summary(
            *zip(*(_scaled_play(policy, r["job_seconds"]) for r in mine), strict=True)  # type: ignore[arg-type]
        )
    return results


def _scaled_play(policy: str, duration: float) -> tuple[float, int]:
    lag, reads = play(policy, duration * SCALE)
    return lag / SCALE, reads


def _wait_one(stack: Any, conn_id: str, run: dict[str, Any], index: int) -> None:
    from status_polls import submit_training_job

    from airflow_provider_amlretrain.hooks.studio import AzureMLStudioHook

    hook = AzureMLStudioHook(conn_id)
    reads = {"count": 0}
    get_job = hook.get_job

    def counted(job_id: str) -> Any:
        reads["count"] += 1
        return get_job(job_id)

    hook.get_job = counted  # type: ignore[method-assign]
    job_id = submit_training_job(stack, hook, f"policy/{run['policy']}/{run['job_seconds']}/{index}")
    started = time.time()
    state = hook.wait_for_job(job_id, _rules(run["policy"], SCALE, started_at=started))
    run.update(
        {
            "job_id": job_id,
            "returned_at": time.time(),
            "requests": reads["count"],
            "status": state.status.value,
        }
    )


def main() -> None:
    """Run the benchmark and write its results file."""
    from results_file import ResultsFile, benchmark_parser

    parser = benchmark_parser(__doc__, "poll_policy")
    parser.add_argument("--spot-durations", type=float, nargs="*", default=[1.0, 3.0, 6.0, 12.0])
    parser.add_argument("--spot-repeats", type=int, default=3)
    args = parser.parse_args()
    results_file = ResultsFile(args.output)
    model = bench_model()
    emulator = bench_emulator(args.spot_durations, args.spot_repeats) if args.spot_durations else None
    shown = {"model": {k: v for k, v in model.items() if k != "curve"}}
    if emulator:
        shown["emulator"] = {k: v for k, v in emulator.items() if k != "runs"}
    results_file.write({"model": model, "emulator": emulator}, shown=shown)


if __name__ == "__main__":
    sys.path.insert(0, str(REPO_ROOT))
    sys.path.insert(0, str(BENCH_DIR))
    main()
