"""
The fan-out benchmark's arithmetic on records: the emulator's job span, its concurrency, Airflow's overhead.

Pure functions over the emulator's ``/_emulator/jobs`` records (ISO ``created_at``, ``start_requested_at``,
``started_at``, ``ended_at``) and the Airflow processes' CPU times, so ``benchmarks/fan_out.py`` stays about
running things and ``tests/unit/test_fan_out_measures.py`` can check the sums.
"""

from __future__ import annotations

import math
import statistics
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence


def epoch(iso: str) -> float:
    """
    Seconds since the epoch of an ISO 8601 time with its offset (the emulator writes UTC with ``+00:00``).

    :param iso: The time.
    """
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def most_at_once(intervals: Iterable[tuple[float, float]]) -> int:
    """
    The most intervals that overlap at one moment (an interval ending when another starts does not overlap it).

    :param intervals: ``(start, end)`` pairs.
    """
    events = sorted(
        [(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals],
        key=lambda event: (event[0], event[1]),  # an end before a start at the same moment
    )
    running = peak = 0
    for _, change in events:
        running += change
        peak = max(peak, running)
    return peak


def covering(intervals: Sequence[tuple[float, float]], moments: Iterable[float]) -> list[int]:
    """
    How many intervals hold each moment (start included, end excluded): a timeline's step counts.

    :param intervals: ``(start, end)`` pairs.
    :param moments: The moments to count at.
    """
    return [sum(1 for start, end in intervals if start <= moment < end) for moment in moments]


def job_span(jobs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """
    What the emulator's records say about a set of BES jobs.

    :param jobs: Job records; every one must have ended (``started_at`` and ``ended_at`` set).
    :return: ``jobs``; ``span_seconds``, first start to last end; ``sum_of_durations_seconds``;
        ``duration_median_seconds`` and ``duration_max_seconds``; ``most_running_at_once``;
        ``queued_median_seconds`` and ``queued_max_seconds``, start request to start (the emulator's FIFO);
        ``submitted_over_seconds``, first to last creation; and epoch ``first_started`` / ``last_ended``.
    :raises ValueError: naming a job that has not ended, or when there is none.
    """
    if not jobs:
        raise ValueError("No BES jobs to measure: did the run submit any?")
    unended = [job["id"] for job in jobs if not job.get("started_at") or not job.get("ended_at")]
    if unended:
        raise ValueError(f"{len(unended)} job(s) have not ended, e.g. {unended[0]}: measure after the run.")
    runs = [(epoch(job["started_at"]), epoch(job["ended_at"])) for job in jobs]
    durations = [end - start for start, end in runs]
    queued = [
        epoch(job["started_at"]) - epoch(job["start_requested_at"])
        for job in jobs
        if job.get("start_requested_at")
    ]
    created = [epoch(job["created_at"]) for job in jobs if job.get("created_at")]
    first_started, last_ended = min(start for start, _ in runs), max(end for _, end in runs)
    return {
        "jobs": len(jobs),
        "span_seconds": round(last_ended - first_started, 3),
        "sum_of_durations_seconds": round(sum(durations), 3),
        "duration_median_seconds": round(statistics.median(durations), 3),
        "duration_max_seconds": round(max(durations), 3),
        "most_running_at_once": most_at_once(runs),
        "queued_median_seconds": round(statistics.median(queued), 3) if queued else None,
        "queued_max_seconds": round(max(queued), 3) if queued else None,
        "submitted_over_seconds": round(max(created) - min(created), 3) if created else None,
        "first_started": first_started,
        "last_ended": last_ended,
    }


def spread(values: Sequence[float]) -> dict[str, Any]:
    """
    How many values, their median, 95th percentile (nearest rank) and maximum, rounded to 0.01.

    :param values: E.g. detection lags in seconds.
    """
    if not values:
        return {"count": 0, "median": None, "p95": None, "max": None}
    ordered = sorted(values)
    p95 = ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]
    return {
        "count": len(ordered),
        "median": round(statistics.median(ordered), 2),
        "p95": round(p95, 2),
        "max": round(ordered[-1], 2),
    }


def least_job_seconds(jobs: int, concurrency: int, job_seconds: float) -> float:
    """
    The shortest span the emulator alone can run ``jobs`` jobs of ``job_seconds`` in, ``concurrency`` at once.

    :param jobs: How many jobs.
    :param concurrency: The emulator's ``job_concurrency``.
    :param job_seconds: The emulator's ``min_job_seconds``.
    """
    if jobs < 1 or concurrency < 1:
        raise ValueError(f"jobs and concurrency must be at least 1, not {jobs} and {concurrency}")
    return math.ceil(jobs / concurrency) * job_seconds


def overhead(dag_seconds: float, job_seconds: float) -> float:
    """
    Airflow's overhead on a fan-out: ``(DAG wall - job span) / job span``, as a fraction (0.5 is 50 %).

    :param dag_seconds: The DAG run's wall time, queued to end.
    :param job_seconds: The job span it is compared with.
    """
    if job_seconds <= 0:
        raise ValueError(f"the job span must be positive, not {job_seconds}")
    return (dag_seconds - job_seconds) / job_seconds


def cpu_delta(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, float]:
    """
    CPU seconds each part used between two snapshots (a part first seen after ``before`` counts from zero).

    :param before: Part name to CPU seconds.
    :param after: Part name to CPU seconds, later.
    """
    return {name: round(seconds - before.get(name, 0.0), 2) for name, seconds in after.items()}
