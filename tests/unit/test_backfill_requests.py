"""The tests' ``POST /backfills`` on SQLite: after a 503 the empty backfill Airflow left is cancelled, a 409 is no success."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import requests

from tests.integration.backfill_requests import create_backfill

URL = "http://127.0.0.1:8080"
BACKFILLS = f"{URL}/api/v2/backfills"
BODY = {"dag_id": "d", "from_date": "2026-11-27T00:00:00Z", "to_date": "2026-11-29T00:00:00Z"}
LOCKED = {
    "detail": "Database is locked. Backfill creation is not supported on SQLite under concurrent access."
}


def _backfill(backfill_id: int, created: datetime, completed: bool = False) -> dict[str, object]:
    return {
        "id": backfill_id,
        "dag_id": "d",
        "created_at": created.isoformat().replace("+00:00", "Z"),
        "completed_at": created.isoformat() if completed else None,
    }


@pytest.fixture
def no_sleep(monkeypatch):
    monkeypatch.setattr("tests.integration.backfill_requests.time.sleep", lambda _: None)


def test_after_a_locked_db_the_orphan_it_left_is_cancelled_and_the_request_sent_again(rsps, no_sleep):
    now = datetime.now(UTC)
    rsps.add("POST", BACKFILLS, status=503, json=LOCKED)
    rsps.add("POST", BACKFILLS, json=_backfill(8, now))
    rsps.add(
        "GET",
        BACKFILLS,
        json={"backfills": [_backfill(6, now - timedelta(hours=1), completed=True), _backfill(7, now)]},
    )
    rsps.add("PUT", f"{BACKFILLS}/7/cancel", json=_backfill(7, now, completed=True))

    assert create_backfill(requests.Session(), URL, BODY)["id"] == 8
    assert [(c.request.method, c.request.url.split("?")[0]) for c in rsps.calls] == [
        ("POST", BACKFILLS),
        ("GET", BACKFILLS),
        ("PUT", f"{BACKFILLS}/7/cancel"),
        ("POST", BACKFILLS),
    ]


def test_a_running_backfill_made_before_the_request_is_left_alone(rsps, no_sleep):
    rsps.add("POST", BACKFILLS, status=503, json=LOCKED)
    rsps.add("POST", BACKFILLS, status=409, json={"detail": "There is already a running backfill for dag d"})
    rsps.add("GET", BACKFILLS, json={"backfills": [_backfill(5, datetime.now(UTC) - timedelta(minutes=5))]})

    with pytest.raises(AssertionError, match="409 .*already a running backfill"):
        create_backfill(requests.Session(), URL, BODY)
    assert not [c for c in rsps.calls if c.request.method == "PUT"]


def test_an_orphan_whose_cancel_did_not_land_is_cancelled_again(rsps, no_sleep):
    """The cancel after a 503 was busy too: the retry's 409 is that orphan's, so it is cancelled again."""
    now = datetime.now(UTC)
    rsps.add("POST", BACKFILLS, status=503, json=LOCKED)
    rsps.add("GET", BACKFILLS, json={"backfills": [_backfill(7, now)]})
    rsps.add("PUT", f"{BACKFILLS}/7/cancel", status=503, json=LOCKED)
    rsps.add("POST", BACKFILLS, status=409, json={"detail": "There is already a running backfill for dag d"})
    rsps.add("GET", BACKFILLS, json={"backfills": [_backfill(7, now)]})
    rsps.add("PUT", f"{BACKFILLS}/7/cancel", json=_backfill(7, now, completed=True))
    rsps.add("GET", BACKFILLS, json={"backfills": [_backfill(7, now, completed=True)]})
    rsps.add("POST", BACKFILLS, json=_backfill(8, now))

    assert create_backfill(requests.Session(), URL, BODY)["id"] == 8
    assert [c.request.method for c in rsps.calls].count("PUT") == 2
