"""The soak's fault mix, its invariant checks and the secret scan, on made-up runs and texts."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any

import pytest

from amlretrain_devstack.secret_scan import find_secrets, scan_files, scan_sqlite, stack_secrets
from amlretrain_devstack.soak import FAULT_KINDS, SoakRun, check_soak, fault_document, soak_plan

if TYPE_CHECKING:
    from pathlib import Path


def _run(index: int, *, gate: bool = True, data: str | None = None, promotion: str = "deployed") -> SoakRun:
    return SoakRun(
        index=index,
        logical_date=f"2026-11-30T00:{index:02d}:00+00:00",
        backfill=False,
        deferrable=False,
        state="success",
        job_id=f"job{index}",
        model=f"models/run{index}/model.ilearner",
        gate_passed=gate,
        promotion=promotion,
        data_version=data or f"2026-11-30T00:{index:02d}:00+00:00",
    )


def _jobs(*ids: str, unstarted: int = 0) -> list[dict[str, Any]]:
    started = [{"id": job_id, "start_requested_at": "t"} for job_id in ids]
    return started + [{"id": f"orphan{n}", "start_requested_at": None} for n in range(unstarted)]


def _changes(*indexes: int) -> list[dict[str, Any]]:
    return [{"relative_location": f"models/run{index}/model.ilearner"} for index in indexes]


def test_the_fault_mix_fails_the_rate_in_equal_shares() -> None:
    document = fault_document(0.2, random_seed=3, request_timeout=2.0)
    left, shares = 1.0, []
    for rule in document["rules"]:
        shares.append(left * rule["probability"])
        left -= shares[-1]
    assert shares == pytest.approx([0.04] * len(FAULT_KINDS), abs=1e-6)
    assert document["random_seed"] == 3
    assert {"delay_seconds": 3.0} == {k: v for k, v in document["rules"][3].items() if k == "delay_seconds"}
    with pytest.raises(ValueError, match="between 0 and 1"):
        fault_document(1.0, random_seed=0)


def test_the_plan_mixes_newest_day_runs_backfills_and_deferrable_waits() -> None:
    plan = soak_plan(["2026-11-28", "2026-11-29", "2026-11-30"], 10)
    assert [backfill for _, backfill, _ in plan].count(True) == 2
    newest = [date for date, backfill, _ in plan if not backfill]
    assert newest == sorted(newest) and len(set(newest)) == len(newest), "each newest-day run is later"
    assert all(date.date().isoformat() < "2026-11-30" for date, backfill, _ in plan if backfill)
    assert [deferrable for _, _, deferrable in plan].count(True) == 5


def test_a_clean_soak_has_no_problem_even_with_a_rollback_and_unstarted_jobs() -> None:
    runs = [_run(0), _run(1, gate=False, promotion="skipped"), _run(2), _run(3)]
    # Run 3's model failed its smoke test: the endpoint went back to run 2's.
    assert check_soak(runs, _jobs("job0", "job1", "job2", "job3", unstarted=2), _changes(0, 2, 3, 2)) == []


@pytest.mark.parametrize(
    ("runs", "jobs", "changes", "problem"),
    [
        ([_run(0), _run(1, gate=False)], _jobs("job0", "job1"), _changes(0, 1), "which its gate rejected"),
        (
            [_run(0, data="2026-11-30"), _run(1, data="2026-11-25")],
            _jobs("job0", "job1"),
            _changes(0, 1),
            "replaced run 0's",
        ),
        ([_run(0)], _jobs("job0", "job9"), _changes(0), "2 BES jobs were started for 1 runs"),
        ([_run(0)], _jobs("job9"), _changes(0), "which the emulator never started"),
        ([_run(0)], _jobs("job0"), _changes(7), "which no run of the soak trained"),
    ],
)
def test_each_broken_invariant_is_reported(
    runs: list[SoakRun], jobs: list[dict[str, Any]], changes: list[dict[str, Any]], problem: str
) -> None:
    assert any(problem in found for found in check_soak(runs, jobs, changes)), check_soak(runs, jobs, changes)


def test_a_failed_run_is_reported() -> None:
    failed = _run(0)
    failed.state = "failed"
    assert check_soak([failed], _jobs("job0"), []) == [f"run 0 ended failed: {failed.task_states}"]


STACK = {
    "azurite": {
        "connection_string": "DefaultEndpointsProtocol=http;AccountName=a;AccountKey=S3cretAccountKey==;"
    },
    "emulator": {"identity_header": "identity-header-secret"},
    "seed": {
        "services": [{"api_key": "service-api-key-1", "name": "svc"}],
        "workspace_token": "workspace-tok-1",
    },
}


def test_the_stack_secrets_are_its_keys_tokens_and_identity_header() -> None:
    assert stack_secrets(STACK) == {
        "azurite.connection_string": "S3cretAccountKey==",
        "emulator.identity_header": "identity-header-secret",
        "seed.services[0].api_key": "service-api-key-1",
        "seed.workspace_token": "workspace-tok-1",
    }


def test_secrets_and_secret_shapes_are_found_but_redacted_forms_are_not() -> None:
    secrets = stack_secrets(STACK)
    clean = "GET https://a/jobs?api-version=2.0 sig=*** Bearer *** AccountKey=*** api_key=***"
    assert find_secrets(clean, "log", secrets) == []
    leaky = (
        "url https://a.blob/x?sv=1&sig=AbCdEf0123456789%2B then Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.x"
    )
    hits = find_secrets(leaky + " key service-api-key-1", "log", secrets)
    assert sorted(hit.secret for hit in hits) == ["SAS signature", "bearer token", "seed.services[0].api_key"]
    assert all(
        "service-api-key-1" not in hit.context and "AbCdEf0123456789" not in hit.context for hit in hits
    )


def test_files_and_every_table_of_a_database_are_searched(tmp_path: Path) -> None:
    secrets = stack_secrets(STACK)
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "task.log").write_text("all fine\n")
    (tmp_path / "logs" / "other.log").write_text("token workspace-tok-1\n")
    searched, hits = scan_files([tmp_path / "logs"], secrets)
    assert searched == 2 and [(hit.where.endswith("other.log"), hit.secret) for hit in hits] == [
        (True, "seed.workspace_token")
    ]
    db = tmp_path / "airflow.db"
    with sqlite3.connect(db) as connection:
        connection.execute("CREATE TABLE xcom (key TEXT, value BLOB)")
        connection.execute("INSERT INTO xcom VALUES ('ok', ?)", (b'{"uri": "https://a/m.ilearner"}',))
        connection.execute(
            "INSERT INTO xcom VALUES ('leak', ?)", (b'{"uri": "https://a/m?sig=SECRETSIGNATURE1"}',)
        )
    rows, hits = scan_sqlite(db, secrets)
    assert rows == 2 and [(hit.where, hit.secret) for hit in hits] == [("db:xcom", "SAS signature")]
