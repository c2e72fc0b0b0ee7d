"""
``POST /api/v2/backfills`` against an Airflow on SQLite, retried the way that works there.

Airflow 3.3.2 commits the new ``Backfill`` row before it creates (or, with a reprocess behaviour, clears) the
runs (``airflow/models/backfill.py``, ``_create_backfill``: "Commit immediately so the backfill is visible to
concurrent requests"). When SQLite is locked meanwhile (the dag processor or the scheduler writing), the
request is rolled back and answered 503 "Database is locked", and ``_cleanup_partial_backfill`` deletes the
row only if the database lets it ("best-effort"). The row left behind is a backfill without runs, still
running as far as ``POST /backfills`` is concerned: a plain retry gets 409 "There is already a running
backfill" although no day is being (re)processed, and the scheduler marks that orphan complete only after two
minutes (``_mark_backfills_complete``: "orphaned backfills older than 2 minutes"). So after a 503 the orphan
this request made is cancelled before the request is sent again; a 409 is never taken for success.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tests.integration.airflow_support import db_was_busy

if TYPE_CHECKING:
    import requests


def cancel_orphaned_backfills(session: requests.Session, url: str, dag_id: str, since: datetime) -> bool:
    """
    Cancel the backfills of ``dag_id`` that a rolled-back request left running; whether there were any (or the
    DB was too busy to tell).

    :param session: A logged-in session of the Airflow REST API.
    :param url: The Airflow's base URL.
    :param dag_id: The DAG.
    :param since: When the request was first sent: only backfills created since then are cancelled.
    """
    answer = session.get(f"{url}/api/v2/backfills", params={"dag_id": dag_id}, timeout=30)
    if db_was_busy(answer):
        return True  # the next round looks again
    answer.raise_for_status()
    found = False
    for backfill in answer.json()["backfills"]:
        created = datetime.fromisoformat(backfill["created_at"].replace("Z", "+00:00"))
        if backfill["completed_at"] is None and created >= since:
            found = True
            cancelled = session.put(f"{url}/api/v2/backfills/{backfill['id']}/cancel", timeout=30)
            assert cancelled.ok or db_was_busy(cancelled) or cancelled.status_code == 409, cancelled.text[
                :300
            ]
    return found


def create_backfill(session: requests.Session, url: str, body: dict[str, Any]) -> dict[str, Any]:
    """
    Create a backfill; on SQLite's 503, cancel the orphan the failed request left and send it again.

    :param session: A logged-in session of the Airflow REST API.
    :param url: The Airflow's base URL.
    :param body: The ``POST /backfills`` body.
    :return: The created backfill.
    """
    since = datetime.now(UTC).replace(microsecond=0)
    deadline = time.monotonic() + 90
    retrying = False
    while True:
        answer = session.post(f"{url}/api/v2/backfills", json=body, timeout=30)
        if answer.ok:
            return dict(answer.json())
        # After a busy answer, a 409 "already a running backfill" may be our own orphan whose cancel did not land
        # (the cancel was busy too): cancel it again, but a backfill made before this request is not ours.
        orphan_left = (
            retrying
            and answer.status_code == 409
            and cancel_orphaned_backfills(session, url, str(body["dag_id"]), since)
        )
        assert db_was_busy(answer) or orphan_left, (
            f"POST /backfills: {answer.status_code} {answer.text[:500]}"
        )
        retrying = True
        assert time.monotonic() < deadline, f"the metadata DB stayed locked for 90 s: {answer.text[:300]}"
        time.sleep(2)
        cancel_orphaned_backfills(session, url, str(body["dag_id"]), since)
