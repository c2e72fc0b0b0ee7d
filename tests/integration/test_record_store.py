"""The deployment record store's conditional writes, on real blob storage (Azurite)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

pytestmark = pytest.mark.integration

WASB = "azurite_default"


def store():
    from airflow_provider_amlretrain.promotion.record import DeploymentRecordStore

    return DeploymentRecordStore(WASB, "deployments", prefix="store-tests")


def new_record(target: str, run_id: str):
    from airflow_provider_amlretrain.promotion.record import DeploymentRecord

    return DeploymentRecord(target=target, pending={"run_id": run_id})


def test_a_new_record_is_created_once(stack: Any) -> None:
    from airflow_provider_amlretrain.exceptions import DeploymentConflictError

    target = f"create-{uuid.uuid4().hex[:8]}"
    first, second = store(), store()
    assert first.read(target).etag is None and second.read(target).etag is None

    first.write(new_record(target, "run-1"), None)
    with pytest.raises(DeploymentConflictError, match="another run wrote it first"):
        second.write(new_record(target, "run-2"), None)

    assert store().read(target).record.pending == {"run_id": "run-1"}, "the first writer's record stays"


def test_a_write_on_a_stale_etag_is_refused(stack: Any) -> None:
    from airflow_provider_amlretrain.exceptions import DeploymentConflictError

    target = f"match-{uuid.uuid4().hex[:8]}"
    store().write(new_record(target, "run-0"), None)
    mine, theirs = store().read(target), store().read(target)
    assert mine.etag and mine.etag == theirs.etag

    theirs.record.pending = {"run_id": "run-2"}
    new_etag = store().write(theirs.record, theirs.etag)
    mine.record.pending = {"run_id": "run-1"}
    with pytest.raises(DeploymentConflictError, match="changed since this run read it"):
        store().write(mine.record, mine.etag)

    current = store().read(target)
    assert current.etag == new_etag and current.record.pending == {"run_id": "run-2"}
    current.record.pending = None
    assert store().write(current.record, current.etag) != new_etag, "the current ETag still writes"
