"""The example DAGs' Trigger form: typed Params with titles, wired into the promote tasks; the schedule."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_amlretrain.exceptions import AzureMLConfigError
from amlretrain_devstack.dagrun import load_dag_file
from tests.conftest import REPO_ROOT

PROMOTING = ["amlretrain_retrain_and_promote", "amlretrain_retrain_web_service", "amlretrain_many_endpoints"]
DAILY = [*PROMOTING, "amlretrain_bes_retrain"]


def _dag(dag_id: str):
    return load_dag_file(REPO_ROOT / "dags" / f"{dag_id}.py")


def _promote_tasks(dag):
    return [t for t in dag.tasks if t.task_id.split(".")[-1] == "promote"]


@pytest.mark.parametrize("dag_id", [*PROMOTING, "amlretrain_on_new_data"])
def test_force_and_skip_promotion_are_boolean_form_fields_wired_into_promote(dag_id):
    dag = _dag(dag_id)
    for name in ("force", "skip_promotion"):
        param = dag.params.get_param(name)
        assert param.schema["type"] == "boolean" and param.schema["title"] and param.description
        assert param.value is False, "scheduled runs use the defaults: no force, promote"
    (promote,) = _promote_tasks(dag)
    assert promote.force == "{{ params.force }}"
    assert promote.skip_promotion == "{{ params.skip_promotion }}"
    # What the templates render for the defaults reads as false (bool("False") would be true).
    promote.force, promote.skip_promotion = str(dag.params["force"]), str(dag.params["skip_promotion"])
    assert (promote.flag("force"), promote.flag("skip_promotion")) == (False, False)


@pytest.mark.parametrize("dag_id", DAILY)
def test_daily_dags_start_no_run_when_unpaused(dag_id):
    """No start_date and a zero run_immediately: unpausing does not run the day already begun."""
    from airflow.serialization.decoders import decode_timetable
    from airflow.serialization.encoders import encode_timetable
    from airflow.timetables.base import TimeRestriction

    dag = _dag(dag_id)
    assert dag.start_date is None and dag.catchup is False
    timetable = decode_timetable(encode_timetable(dag.timetable))  # what the scheduler runs
    first = timetable.next_dagrun_info(
        last_automated_data_interval=None,
        restriction=TimeRestriction(earliest=dag.start_date, latest=None, catchup=dag.catchup),
    )
    assert first is not None and first.run_after > datetime.now(UTC), f"unpausing would run {first}"
    assert "reprocess" in dag.doc_md and "Backfill" in dag.doc_md


def test_data_aware_dag_takes_a_training_blob_param():
    dag = _dag("amlretrain_on_new_data")
    param = dag.params.get_param("blob")
    assert param.value is None and param.schema["type"] == ["null", "string"] and param.schema["title"]
    assert "Reprocess a day" in dag.doc_md and '"conf": {"blob":' in dag.doc_md


def test_manual_run_of_the_data_aware_dag_without_a_blob_fails_without_retries():
    landed_blob = _dag("amlretrain_on_new_data").get_task("landed_blob")
    with pytest.raises(
        AzureMLConfigError, match=r'conf \{"blob": "binary/dt=YYYY-MM-DD/train.csv"\}'
    ) as caught:
        landed_blob.python_callable(params={"blob": None}, triggering_asset_events={})
    assert isinstance(caught.value, AirflowFailException)


class RecentEvents(list):
    """Stands in for ``inlet_events[asset]``: the chained filters the DAG calls, over a fixed list."""

    def before(self, moment: str) -> RecentEvents:
        return RecentEvents(e for e in self if e.timestamp <= datetime.fromisoformat(moment))

    def ascending(self, ascending: bool = True) -> RecentEvents:
        return RecentEvents(sorted(self, key=lambda e: e.timestamp, reverse=not ascending))

    def limit(self, count: int) -> RecentEvents:
        return RecentEvents(self[:count])


def _arrival(event_id: int, minute: int, etag: str) -> SimpleNamespace:
    payload = {"container": "training-data", "blob": "binary/dt=2026-11-05/train.csv", "etag": etag}
    return SimpleNamespace(
        id=event_id, timestamp=datetime(2026, 12, 1, 10, minute, tzinfo=UTC), extra={"payload": payload}
    )


@pytest.mark.parametrize(("earlier_etag", "trains"), [("0x1", False), ("0x0", True)])
def test_a_repeated_arrival_of_the_same_blob_and_etag_does_not_train_again(monkeypatch, earlier_etag, trains):
    from airflow.providers.common.compat.sdk import AirflowSkipException
    from airflow.providers.microsoft.azure.hooks.wasb import WasbHook

    monkeypatch.setattr(WasbHook, "check_for_blob", lambda self, container, blob: True)
    dag = _dag("amlretrain_on_new_data")
    landed_blob = dag.get_task("landed_blob")
    (asset,) = landed_blob.inlets
    this = _arrival(2, 5, "0x1")
    history = RecentEvents([_arrival(1, 1, earlier_etag), this])

    def call() -> str:
        return landed_blob.python_callable(
            params={"blob": None}, triggering_asset_events={asset: [this]}, inlet_events={asset: history}
        )

    if trains:
        assert call() == "binary/dt=2026-11-05/train.csv", "an overwritten blob (new ETag) trains"
    else:
        with pytest.raises(AirflowSkipException, match="already reported by asset event 1"):
            call()
