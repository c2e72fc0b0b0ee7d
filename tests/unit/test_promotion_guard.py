"""The deployment record (pure parts) and the promotion guard on an in-memory store with ETag semantics."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from airflow_provider_amlretrain.exceptions import DeploymentConflictError, DeploymentRecordError
from airflow_provider_amlretrain.promotion.guard import CandidateModel, ClaimOutcome, DeploymentGuard
from airflow_provider_amlretrain.promotion.record import (
    HISTORY_LIMIT,
    RECORD_FORMAT,
    DeploymentRecord,
    DeploymentRecordStore,
)
from tests.unit.promotion_support import FakeRecordStore

TARGET = "classic:ws1/pred1/ep1"
MODEL_V1 = "https://acct.blob.core.windows.net/models/runs/v1/model.ilearner"
MODEL_V2 = "https://acct.blob.core.windows.net/models/runs/v2/model.ilearner"


def candidate(
    model_uri: str = MODEL_V2,
    *,
    end: str | None = "2024-06-02T00:00:00+00:00",
    run_id: str = "run-2",
    job_id: str = "job2",
    etag: str | None = None,
):
    return CandidateModel(
        model_uri=model_uri,
        job_id=job_id,
        metrics={"AUC": 0.9},
        data_interval_start="2024-06-01T00:00:00+00:00",
        data_interval_end=end,
        dag_id="retrain",
        run_id=run_id,
        model_etag=etag,
    )


def deployed(model_uri: str = MODEL_V1, end: str = "2024-06-01T00:00:00+00:00", **extra):
    return {
        "model_uri": model_uri,
        "run_id": "run-1",
        "data_interval_end": end,
        "metrics": {"AUC": 0.85},
        **extra,
    }


@pytest.fixture
def store() -> FakeRecordStore:
    return FakeRecordStore()


# -- the record --------------------------------------------------------------------------------------


def test_record_round_trips_through_json():
    record = DeploymentRecord(
        TARGET,
        current=deployed(),
        pending={"run_id": "r", "claimed_at": "2024-01-01T00:00:00+00:00"},
        history=[{"a": 1}],
    )
    text = record.to_json()
    assert json.loads(text)["format"] == RECORD_FORMAT
    assert DeploymentRecord.from_json(text, source="c/b.json") == record


def test_history_is_capped_at_the_newest_entries():
    record = DeploymentRecord(TARGET, history=[{"n": i} for i in range(HISTORY_LIMIT + 5)])
    history = DeploymentRecord.from_json(record.to_json(), source="x").history
    assert len(history) == HISTORY_LIMIT
    assert history[0] == {"n": 5} and history[-1] == {"n": HISTORY_LIMIT + 4}


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("not json", "is not JSON"),
        ("[1, 2]", "not in format"),
        (json.dumps({"target": TARGET}), "not in format"),
        (json.dumps({"format": "other/9", "target": TARGET}), "not in format"),
    ],
)
def test_foreign_blobs_are_refused_naming_the_blob(text, match):
    with pytest.raises(DeploymentRecordError, match=match) as info:
        DeploymentRecord.from_json(text, source="deployments/deployments/x.json")
    assert "deployments/deployments/x.json" in str(info.value)


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"current": ["model"]}, "'current' must be an object or null, not list"),
        ({"pending": "run-1"}, "'pending' must be an object or null, not str"),
        ({"history": {"a": 1}}, "'history' must be a list of objects"),
        ({"history": ["replaced"]}, "'history' must be a list of objects"),
        (
            {"current": {"model_uri": MODEL_V1, "metrics": {"AUC": "high"}}},
            "'current.metrics' must map metric",
        ),
        ({"current": {"model_uri": MODEL_V1, "metrics": [0.9]}}, "'current.metrics' must map metric"),
    ],
)
def test_damaged_records_are_refused_saying_what_is_wrong(fields, match):
    text = json.dumps({"format": RECORD_FORMAT, "target": TARGET, **fields})
    with pytest.raises(DeploymentRecordError, match=rf"deployments/x.json is damaged: {match}.*delete it"):
        DeploymentRecord.from_json(text, source="deployments/x.json")


def test_times_without_offset_are_taken_as_utc(store):
    store.seed(DeploymentRecord(TARGET, current=deployed(end="2024-06-03T00:00:00")))
    assert (
        DeploymentGuard(store, TARGET, candidate(end="2024-06-02T00:00:00+00:00")).claim()
        is ClaimOutcome.STALE
    )
    claimed = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
    naive = DeploymentRecord(
        TARGET, pending={"run_id": "r", "claimed_at": "2024-06-01T12:00:00", "lease_seconds": 60}
    )
    assert naive.pending_is_live(claimed + timedelta(seconds=59))
    assert not naive.pending_is_live(claimed + timedelta(seconds=60))


def test_baseline_metrics():
    assert DeploymentRecord(TARGET).baseline_metrics is None
    assert DeploymentRecord(TARGET, current={"model_uri": MODEL_V1}).baseline_metrics is None
    assert DeploymentRecord(TARGET, current=deployed(metrics={"AUC": "0.8", "RMSE": 2})).baseline_metrics == {
        "AUC": 0.8,
        "RMSE": 2.0,
    }


def test_the_baseline_of_a_model_is_never_itself():
    old, new = deployed(job_id="job1"), deployed(MODEL_V2, job_id="job2")
    record = DeploymentRecord(
        TARGET, current=new, history=[{**old, "outcome": "replaced"}, {"outcome": "failed"}]
    )
    assert record.baseline_for("job3") == new
    assert record.baseline_for("job2") == {**old, "outcome": "replaced"}  # the gate run again after promoting
    assert DeploymentRecord(TARGET, current=new).baseline_for("job2") is None
    assert DeploymentRecord(TARGET).baseline_for("job2") is None


def test_pending_is_live_until_the_lease_ends():
    claimed = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
    record = DeploymentRecord(
        TARGET, pending={"run_id": "r", "claimed_at": claimed.isoformat(), "lease_seconds": 60}
    )
    assert record.pending_is_live(claimed + timedelta(seconds=59))
    assert not record.pending_is_live(claimed + timedelta(seconds=60))
    assert not DeploymentRecord(TARGET).pending_is_live(claimed)
    default_lease = DeploymentRecord(TARGET, pending={"run_id": "r", "claimed_at": claimed.isoformat()})
    assert default_lease.pending_is_live(claimed + timedelta(seconds=1799))
    assert not default_lease.pending_is_live(claimed + timedelta(seconds=1800))


def test_blob_names_are_sanitized():
    store = DeploymentRecordStore("wasb", "deployments", prefix="/records/")
    assert store.blob_name("classic:ws1/pred 1/ep1") == "records/classic_ws1_pred_1_ep1.json"


# -- the fake store honours ETags (so the guard tests mean something) --------------------------------


def test_fake_store_enforces_etags(store):
    first = store.read(TARGET)
    assert first.etag is None
    etag = store.write(DeploymentRecord(TARGET), None)
    with pytest.raises(DeploymentConflictError):
        store.write(DeploymentRecord(TARGET), None)
    store.write(DeploymentRecord(TARGET, current=deployed()), etag)
    with pytest.raises(DeploymentConflictError):
        store.write(DeploymentRecord(TARGET), etag)


# -- claim -----------------------------------------------------------------------------------------


def test_first_claim_creates_the_record(store):
    guard = DeploymentGuard(store, TARGET, candidate(), lease_seconds=120)
    assert guard.claim() is ClaimOutcome.CLAIMED
    assert guard.baseline is None
    pending = store.record(TARGET).pending
    assert (
        pending["run_id"] == "run-2" and pending["model_uri"] == MODEL_V2 and pending["lease_seconds"] == 120
    )
    assert store.record(TARGET).pending_is_live()


def test_claim_over_an_older_model(store):
    store.seed(DeploymentRecord(TARGET, current=deployed()))
    guard = DeploymentGuard(store, TARGET, candidate())
    assert guard.claim() is ClaimOutcome.CLAIMED
    assert guard.baseline["model_uri"] == MODEL_V1


def test_same_model_is_already_deployed(store):
    store.seed(DeploymentRecord(TARGET, current=deployed(MODEL_V2, job_id="job2", model_etag="0x1")))
    writes = len(store.writes)
    guard = DeploymentGuard(store, TARGET, candidate(MODEL_V2, etag="0x1"))
    assert guard.claim() is ClaimOutcome.ALREADY_DEPLOYED
    assert guard.reason == f"{TARGET} already serves the model of BES job job2 ({MODEL_V2}, version 0x1)."
    assert len(store.writes) == writes


@pytest.mark.parametrize(
    "current",
    [
        deployed(MODEL_V2, job_id="job1"),  # another job wrote the same blob (issue 8, case 2)
        deployed(MODEL_V2),  # an older record without a job id: a URI alone never says "the same model"
        deployed(MODEL_V2, job_id="job2", model_etag="0x1"),  # the blob changed since it was deployed
        deployed(MODEL_V1, job_id="job2"),
    ],
)
def test_a_model_is_the_deployed_one_only_if_its_job_and_blob_are(store, current):
    store.seed(DeploymentRecord(TARGET, current=current))
    assert DeploymentGuard(store, TARGET, candidate(MODEL_V2, etag="0x2")).claim() is ClaimOutcome.CLAIMED
    assert store.record(TARGET).pending["job_id"] == "job2"


def test_an_older_record_without_etag_still_knows_its_job(store):
    store.seed(DeploymentRecord(TARGET, current=deployed(MODEL_V2, job_id="job2")))
    assert (
        DeploymentGuard(store, TARGET, candidate(MODEL_V2, etag="0x2")).claim()
        is ClaimOutcome.ALREADY_DEPLOYED
    )


def test_a_model_without_data_version_is_not_deployed_unless_forced(store):
    store.seed(DeploymentRecord(TARGET, current=deployed()))
    writes = len(store.writes)
    guard = DeploymentGuard(store, TARGET, candidate(end=None))
    assert guard.claim() is ClaimOutcome.NO_DATA_VERSION
    assert (
        "no data version" in guard.reason
        and "force=True" in guard.reason
        and "data_version_blob" in guard.reason
    )
    assert len(store.writes) == writes
    assert DeploymentGuard(store, TARGET, candidate(end=None), force=True).claim() is ClaimOutcome.CLAIMED


def test_a_record_entry_keeps_the_models_identity_and_data_version_source(store):
    guard = DeploymentGuard(store, TARGET, candidate(etag="0x2"))
    guard.claim()
    entry = guard.commit()
    assert entry["job_id"] == "job2" and entry["model_etag"] == "0x2"
    assert store.record(TARGET).current == entry


def test_model_trained_on_older_data_is_stale(store):
    store.seed(DeploymentRecord(TARGET, current=deployed(end="2024-06-03T00:00:00+00:00")))
    writes = len(store.writes)
    guard = DeploymentGuard(store, TARGET, candidate(end="2024-06-02T00:00:00+00:00"))
    assert guard.claim() is ClaimOutcome.STALE
    assert "2024-06-03" in guard.reason and "force=True" in guard.reason
    assert len(store.writes) == writes
    assert store.record(TARGET).pending is None


def test_force_deploys_a_stale_model(store):
    store.seed(DeploymentRecord(TARGET, current=deployed(end="2024-06-03T00:00:00+00:00")))
    assert DeploymentGuard(store, TARGET, candidate(), force=True).claim() is ClaimOutcome.CLAIMED


@pytest.mark.parametrize("end", ["not a date"])
def test_unknown_intervals_are_not_stale(store, end):
    store.seed(DeploymentRecord(TARGET, current=deployed(end="2024-06-03T00:00:00+00:00")))
    assert DeploymentGuard(store, TARGET, candidate(end=end)).claim() is ClaimOutcome.CLAIMED


def test_live_claim_of_another_run_is_a_conflict(store):
    store.seed(
        DeploymentRecord(
            TARGET,
            current=deployed(),
            pending={"run_id": "run-9", "claimed_at": datetime.now(UTC).isoformat(), "lease_seconds": 600},
        )
    )
    with pytest.raises(DeploymentConflictError, match="Run run-9 is promoting"):
        DeploymentGuard(store, TARGET, candidate()).claim()
    assert store.record(TARGET).pending["run_id"] == "run-9"


def test_expired_claim_is_taken_over(store):
    old = (datetime.now(UTC) - timedelta(hours=2)).isoformat()
    store.seed(
        DeploymentRecord(
            TARGET, current=deployed(), pending={"run_id": "run-9", "claimed_at": old, "lease_seconds": 600}
        )
    )
    assert DeploymentGuard(store, TARGET, candidate()).claim() is ClaimOutcome.CLAIMED
    assert store.record(TARGET).pending["run_id"] == "run-2"


def test_own_claim_is_reclaimed_on_retry(store):
    store.seed(
        DeploymentRecord(TARGET, pending={"run_id": "run-2", "claimed_at": datetime.now(UTC).isoformat()})
    )
    assert DeploymentGuard(store, TARGET, candidate()).claim() is ClaimOutcome.CLAIMED


def test_of_two_racing_runs_exactly_one_claims(store):
    store.seed(DeploymentRecord(TARGET, current=deployed()))
    a = DeploymentGuard(store, TARGET, candidate(run_id="run-a"))
    b = DeploymentGuard(store, TARGET, candidate(MODEL_V2.replace("v2", "v3"), run_id="run-b"))
    real_read = store.read
    reads = [real_read(TARGET), real_read(TARGET)]  # both read before either writes
    store.read = lambda target: reads.pop(0)
    assert a.claim() is ClaimOutcome.CLAIMED
    with pytest.raises(DeploymentConflictError):
        b.claim()
    assert real_read(TARGET).record.pending["run_id"] == "run-a"


def test_first_claim_race_on_a_new_record(store):
    a = DeploymentGuard(store, TARGET, candidate(run_id="run-a"))
    b = DeploymentGuard(store, TARGET, candidate(run_id="run-b"))
    real_read = store.read
    reads = [real_read(TARGET), real_read(TARGET)]
    store.read = lambda target: reads.pop(0)
    a.claim()
    with pytest.raises(DeploymentConflictError, match="This run did not deploy; retry it"):
        b.claim()


# -- commit / abandon --------------------------------------------------------------------------------


def test_commit_moves_current_to_history_and_releases(store):
    store.seed(DeploymentRecord(TARGET, current=deployed()))
    guard = DeploymentGuard(store, TARGET, candidate())
    guard.claim()
    entry = guard.commit(endpoint="ep1", previous_model_uri=MODEL_V1)
    record = store.record(TARGET)
    assert record.pending is None
    assert record.current == entry
    assert entry["model_uri"] == MODEL_V2 and entry["endpoint"] == "ep1" and entry["metrics"] == {"AUC": 0.9}
    assert entry["deployed_at"]
    assert record.history[-1]["model_uri"] == MODEL_V1
    assert record.history[-1]["outcome"] == "replaced"
    assert record.history[-1]["replaced_at"] == entry["deployed_at"]


def test_first_commit_has_no_history(store):
    guard = DeploymentGuard(store, TARGET, candidate())
    guard.claim()
    guard.commit()
    record = store.record(TARGET)
    assert record.history == [] and record.current["model_uri"] == MODEL_V2


def test_commit_fails_when_someone_else_wrote_meanwhile(store):
    guard = DeploymentGuard(store, TARGET, candidate())
    guard.claim()
    other = store.read(TARGET)
    store.write(other.record, other.etag)
    with pytest.raises(
        DeploymentConflictError, match=f"This run DID deploy {MODEL_V2} to {TARGET}, but the record"
    ):
        guard.commit()


def test_abandon_records_the_attempt_and_releases(store):
    store.seed(DeploymentRecord(TARGET, current=deployed()))
    guard = DeploymentGuard(store, TARGET, candidate())
    guard.claim()
    guard.abandon("rolled_back", "smoke test failed", endpoint="ep1")
    record = store.record(TARGET)
    assert record.pending is None
    assert record.current["model_uri"] == MODEL_V1
    attempt = record.history[-1]
    assert attempt["outcome"] == "rolled_back" and attempt["reason"] == "smoke test failed"
    assert attempt["model_uri"] == MODEL_V2 and attempt["endpoint"] == "ep1" and attempt["attempted_at"]
    # the target is free again
    assert DeploymentGuard(store, TARGET, candidate(run_id="run-3")).claim() is ClaimOutcome.CLAIMED


def test_abandon_fails_clearly_when_someone_else_wrote_meanwhile(store):
    guard = DeploymentGuard(store, TARGET, candidate())
    guard.claim()
    other = store.read(TARGET)
    store.write(other.record, other.etag)
    with pytest.raises(
        DeploymentConflictError, match=r"attempt \(rolled_back: smoke test failed\) is not in the record"
    ):
        guard.abandon("rolled_back", "smoke test failed")


@pytest.mark.parametrize(
    "pending",
    [
        {"run_id": "r"},
        {"run_id": "r", "claimed_at": "yesterday-ish"},
        {"run_id": "r", "claimed_at": "2999-01-01T00:00:00+00:00", "lease_seconds": "long"},
    ],
)
def test_unreadable_claim_counts_as_expired(pending):
    from airflow_provider_amlretrain.promotion.record import DeploymentRecord

    assert DeploymentRecord(target="t", pending=pending).pending_is_live() is False


def test_a_failed_rollback_flags_the_record_until_a_promotion_succeeds(store):
    store.seed(DeploymentRecord(TARGET, current=deployed()))
    failed = DeploymentGuard(store, TARGET, candidate(run_id="run-2"))
    failed.claim()
    failed.abandon("rollback_failed", "smoke test failed; rollback: 400")
    attention = store.record(TARGET).attention
    assert attention["may_serve"] == MODEL_V2 and attention["run_id"] == "run-2"
    assert attention["reason"] == "smoke test failed; rollback: 400" and attention["since"]
    assert DeploymentRecord.from_json(store.record(TARGET).to_json(), source="x").attention == attention

    rolled_back = DeploymentGuard(store, TARGET, candidate(run_id="run-3"))
    rolled_back.claim()
    assert f"may serve {MODEL_V2} rather than {MODEL_V1}" in rolled_back.warning
    rolled_back.abandon("rolled_back", "smoke test failed")
    assert store.record(TARGET).attention == attention, "only a success says what the target serves"

    fixed = DeploymentGuard(store, TARGET, candidate(run_id="run-4"))
    fixed.claim()
    fixed.commit()
    assert store.record(TARGET).attention is None
    later = DeploymentGuard(store, TARGET, candidate(MODEL_V1, run_id="run-5"))
    later.claim()
    assert later.warning == ""
