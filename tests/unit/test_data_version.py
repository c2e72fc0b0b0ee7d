"""Which data a run's model was trained on: data intervals, dates in blob paths, last-modified times, asset events."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from airflow_provider_amlretrain.exceptions import AzureMLConfigError
from airflow_provider_amlretrain.promotion.data_version import (
    DEFAULT_DATA_VERSION_PATTERN,
    DataVersion,
    compile_pattern,
    date_in_path,
    from_asset_events,
    from_blob,
    from_data_interval,
)

DEFAULT = compile_pattern(DEFAULT_DATA_VERSION_PATTERN)
MODIFIED = datetime(2030, 5, 6, 7, 8, 9, tzinfo=UTC)


def never() -> datetime:
    raise AssertionError("the last-modified time is read only when the path has no date")


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("training-data/binary/dt=2026-11-05/train.csv", datetime(2026, 11, 5, tzinfo=UTC)),
        ("c/export-2026-11-05T06:30/part.csv", datetime(2026, 11, 5, 6, 30, tzinfo=UTC)),
        ("c/2026-11-05/then-2026-11-07.csv", datetime(2026, 11, 5, tzinfo=UTC)),  # the first date
        ("c/latest/train.csv", None),
    ],
)
def test_the_default_pattern_finds_the_first_iso_date(path, expected):
    assert date_in_path(path, DEFAULT) == expected


def test_a_pattern_of_ones_own_names_the_date():
    pattern = compile_pattern(r"day=(?P<date>\d{4}-\d{2}-\d{2})")
    assert date_in_path("c/run-2020-01-01/day=2026-11-05/x.csv", pattern) == datetime(2026, 11, 5, tzinfo=UTC)
    assert date_in_path("c/x/y.csv", compile_pattern(r"/(\d{4}-\d{2}-\d{2})/")) is None


@pytest.mark.parametrize(
    ("pattern", "match"),
    [
        ("(unclosed", "is not a regular expression"),
        (r"\d{4}-(\d{2})-(\d{2})", "group named 'date'"),
        ("x", "group named"),
    ],
)
def test_bad_patterns_are_refused_saying_what_to_write(pattern, match):
    with pytest.raises(AzureMLConfigError, match=match):
        compile_pattern(pattern)


def test_a_pattern_that_finds_something_other_than_a_date_is_an_error():
    with pytest.raises(AzureMLConfigError, match=r"'2026-13-45'.*not an ISO date"):
        date_in_path("c/dt=2026-13-45/x.csv", DEFAULT)


def test_a_blob_takes_the_date_in_its_path_else_its_last_modified_time():
    dated = from_blob("c/dt=2026-11-05/train.csv", DEFAULT, never)
    assert dated == DataVersion(
        "2026-11-05T00:00:00+00:00",
        "2026-11-05T00:00:00+00:00",
        "the date in blob path c/dt=2026-11-05/train.csv",
    )
    undated = from_blob("c/latest/train.csv", DEFAULT, lambda: MODIFIED)
    assert undated is not None and undated.end == MODIFIED.isoformat() and "last-modified" in undated.source
    assert from_blob("c/latest/train.csv", DEFAULT, lambda: None) is None


def _events(*payloads: dict) -> dict:
    return {"asset": [SimpleNamespace(extra={"payload": p}) for p in payloads]}


def test_one_blob_arrival_gives_the_run_its_data_version():
    version, why = from_asset_events(
        _events({"container": "c", "blob": "binary/dt=2030-01-02/train.csv"}), DEFAULT
    )
    assert version is not None and version.end == "2030-01-02T00:00:00+00:00" and why == ""
    version, _ = from_asset_events(
        _events({"blob": "binary/latest.csv", "last_modified": "2030-05-06T07:08:09+00:00"}), DEFAULT
    )
    assert version is not None and version.end == MODIFIED.isoformat()


@pytest.mark.parametrize(
    ("events", "why"),
    [
        (None, "not started by a blob arrival"),
        ({"asset": [SimpleNamespace(extra={})]}, "not started by a blob arrival"),
        (_events({"blob": "a/dt=2030-01-01/x.csv"}, {"blob": "a/dt=2030-01-02/x.csv"}), "2 blob arrivals"),
        (_events({"blob": "a/latest.csv"}), "no date in its path and no last-modified time"),
    ],
)
def test_runs_without_one_dated_arrival_have_no_data_version(events, why):
    version, reason = from_asset_events(events, DEFAULT)
    assert version is None and why in reason


def test_a_data_interval_is_a_data_version():
    start, end = datetime(2026, 11, 4, tzinfo=UTC), datetime(2026, 11, 5, tzinfo=UTC)
    assert from_data_interval(start, end) == DataVersion(
        start.isoformat(), end.isoformat(), "the run's data interval"
    )
    assert from_data_interval(None, None) is None
