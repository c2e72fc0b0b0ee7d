"""The fan-out benchmark's arithmetic on the emulator's job records (``benchmarks/fan_out_measures.py``)."""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest

from tests.conftest import REPO_ROOT

_spec = importlib.util.spec_from_file_location(
    "fan_out_measures", REPO_ROOT / "benchmarks/fan_out_measures.py"
)
assert _spec and _spec.loader
measures: Any = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(measures)


def _job(job_id: str, created: int, requested: int, started: int, ended: int) -> dict[str, Any]:
    """A job record as ``/_emulator/jobs`` gives it, times in seconds past 12:00:00 UTC."""

    def at(second: int) -> str:
        return f"2026-12-01T12:{second // 60:02d}:{second % 60:02d}+00:00"

    return {
        "id": job_id,
        "created_at": at(created),
        "start_requested_at": at(requested),
        "started_at": at(started),
        "ended_at": at(ended),
    }


def test_the_job_span_runs_from_the_first_start_to_the_last_end_and_counts_the_emulators_queue() -> None:
    # Two at once: c waits in the emulator's queue until a ends (a handover is not an overlap).
    jobs = [_job("a", 0, 1, 2, 22), _job("b", 1, 2, 3, 23), _job("c", 2, 3, 22, 42)]

    span = measures.job_span(jobs)

    assert span["jobs"] == 3
    assert span["span_seconds"] == 40
    assert span["sum_of_durations_seconds"] == 60
    assert span["duration_median_seconds"] == 20
    assert span["most_running_at_once"] == 2
    assert span["queued_median_seconds"] == 1
    assert span["queued_max_seconds"] == 19
    assert span["submitted_over_seconds"] == 2


def test_a_job_not_ended_is_refused_by_name() -> None:
    unended = {**_job("late", 0, 1, 2, 22), "ended_at": None}

    with pytest.raises(ValueError, match="late"):
        measures.job_span([_job("a", 0, 1, 2, 22), unended])
    with pytest.raises(ValueError, match="No BES jobs"):
        measures.job_span([])


def test_the_overhead_is_the_dag_wall_beyond_the_job_span_as_a_fraction_of_it() -> None:
    assert measures.overhead(300.0, 200.0) == pytest.approx(0.5)
    assert measures.least_job_seconds(200, 20, 20.0) == 200.0
    assert measures.least_job_seconds(201, 20, 20.0) == 220.0
    with pytest.raises(ValueError, match="positive"):
        measures.overhead(10.0, 0.0)


def test_the_timeline_counts_what_runs_at_each_moment() -> None:
    intervals = [(0.0, 10.0), (5.0, 15.0), (10.0, 20.0)]

    assert measures.covering(intervals, [0.0, 5.0, 10.0, 19.9, 20.0]) == [1, 2, 2, 1, 0]
    assert measures.most_at_once(intervals) == 2
    assert measures.cpu_delta({"scheduler": 10.0}, {"scheduler": 12.5, "triggerer": 3.0}) == {
        "scheduler": 2.5,
        "triggerer": 3.0,
    }


def test_a_spread_gives_the_median_the_nearest_rank_p95_and_the_maximum() -> None:
    lags = [float(second) for second in range(1, 21)]  # 1 .. 20

    assert measures.spread(lags) == {"count": 20, "median": 10.5, "p95": 19.0, "max": 20.0}
    assert measures.spread([]) == {"count": 0, "median": None, "p95": None, "max": None}
