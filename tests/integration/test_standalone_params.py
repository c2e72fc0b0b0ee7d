"""
What a person does in the Airflow UI does what they mean, in a real ``airflow standalone`` (the session's
local Airflow, its runs forgotten for this module) against the session's stack, driven through the REST API the UI calls:

- a Trigger with "Unpause on trigger" trains the day once (no second, scheduled run of the same day),
  and the retrain task's "Azure ML BES job" link opens a page that answers without a key;
- a run with ``{"force": false}`` in its conf does not replace a model trained on newer data (the
  template renders "False", which ``bool()`` read as true), and ``"False"`` itself is refused at trigger;
- ``{"skip_promotion": true}`` skips the promote task, with a log line saying why;
- the data-aware DAG reprocesses a day from a manual trigger with ``{"blob": ...}``, and a manual
  trigger without it fails once, without retries, saying what to pass.

The tests of a module share one deployment and run in order: the second relies on the model the first
deployed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest
import requests

from tests.integration.conftest import dump, seeded_dates

if TYPE_CHECKING:
    from tests.integration.airflow_support import AirflowClient

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

DAG_ID = "amlretrain_retrain_and_promote"
TARGET = "binary-classic-retrained"
DATA_DAG_ID = "amlretrain_on_new_data"


def _record(target: str = TARGET) -> Any:
    from airflow_provider_amlretrain.promotion.record import DeploymentRecordStore

    return DeploymentRecordStore("azurite_default", "deployments").read(target).record


def _secrets(seed: dict[str, Any]) -> list[str]:
    keys = [
        str(s[k]) for s in seed["services"] for k in ("api_key", "primary_key", "secondary_key") if s.get(k)
    ]
    return [*keys, "sig=", "AccountKey", "api_key", "Bearer"]


def test_trigger_with_unpause_trains_the_day_once_and_links_to_a_page_without_a_key(
    standalone: AirflowClient, seed: dict[str, Any]
) -> None:
    # What the Trigger dialog does with "Unpause on trigger" (its default): unpause, then create the run.
    standalone.unpause(DAG_ID)
    run_id = standalone.trigger(DAG_ID)
    run = standalone.wait_for_run(DAG_ID, run_id, 300)
    states = standalone.task_states(DAG_ID, run_id)
    assert run["state"] == "success", dump(states)
    assert states["retrain"] == "success" and states["promote"] == "success", dump(states)

    runs = standalone.api("GET", f"/dags/{DAG_ID}/dagRuns")["dag_runs"]
    assert [(r["dag_run_id"], r["run_type"]) for r in runs] == [(run_id, "manual")], (
        f"unpausing also started a run of the day: {dump(runs)}"
    )
    assert _record().current["run_id"] == run_id

    links = standalone.extra_links(DAG_ID, run_id, "retrain")
    url = links["Azure ML BES job"]
    assert url, dump(links)
    job_id = standalone.api(
        "GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/retrain/xcomEntries/job_id"
    )["value"]
    page = requests.get(str(url), timeout=30)  # a browser: no Authorization header
    assert page.status_code == 200, f"{url}: {page.status_code} {page.text[:300]}"
    assert str(job_id).strip('"') in page.text and "Finished" in page.text
    for secret in _secrets(seed):
        assert secret not in str(url) and secret not in page.text, secret


def test_force_false_in_the_conf_does_not_replace_a_newer_model(standalone: AirflowClient) -> None:
    deployed = _record().current
    assert deployed is not None and deployed["dag_id"] == DAG_ID, "the first test deploys the newer model"

    # A string where the Param is a boolean is refused when the run is created, so it cannot mean "true".
    refused = standalone.session.post(
        f"{standalone.url}/api/v2/dags/{DAG_ID}/dagRuns",
        json={"logical_date": datetime.now(UTC).isoformat(), "conf": {"force": "False"}},
        timeout=30,
    )
    assert refused.status_code == 400 and "force" in refused.text, (
        f"{refused.status_code} {refused.text[:300]}"
    )

    # Today's midnight: the same data as the deployed model (so the gate passes), an older data interval.
    today = datetime.now(UTC).date().isoformat()
    backfill = {
        "dag_id": DAG_ID,
        "from_date": f"{today}T00:00:00Z",
        "to_date": f"{today}T00:00:00Z",
        "max_active_runs": 1,
        "reprocess_behavior": "none",
        "dag_run_conf": {"force": False},
    }
    assert standalone.plan_backfill(backfill) == [today]
    standalone.create_backfill(backfill)
    (run,) = standalone.wait_for_runs(DAG_ID, 1, 300, run_type="backfill")
    states = standalone.task_states(DAG_ID, run["dag_run_id"])
    assert run["conf"] == {"force": False}, dump(run)
    assert states["evaluate"] == "success", f"the gate should pass on the same data: {dump(states)}"
    assert states["promote"] == "skipped", f"force=false replaced a newer model: {dump(states)}"
    log = standalone.task_log(DAG_ID, run["dag_run_id"], "promote", 1)
    assert "older, so it is not deployed" in log, log[-2000:]
    assert _record().current["run_id"] == deployed["run_id"]


def test_skip_promotion_skips_the_promote_task_and_says_so(standalone: AirflowClient) -> None:
    before = _record().current
    run_id = standalone.trigger(DAG_ID, {"skip_promotion": True})
    run = standalone.wait_for_run(DAG_ID, run_id, 300)
    states = standalone.task_states(DAG_ID, run_id)
    assert run["state"] == "success", dump(states)
    assert states["retrain"] == "success" and states["evaluate"] == "success", dump(states)
    assert states["promote"] == "skipped", dump(states)
    log = standalone.task_log(DAG_ID, run_id, "promote", 1)
    assert "skip_promotion is set for this run" in log, log[-2000:]
    assert _record().current == before


def test_data_aware_dag_reprocesses_a_day_from_a_manual_trigger(
    standalone: AirflowClient, seed: dict[str, Any]
) -> None:
    standalone.unpause(DATA_DAG_ID)

    # Without a blob: fails at once, on the first try, saying what to pass.
    bare = standalone.trigger(DATA_DAG_ID)
    assert standalone.wait_for_run(DATA_DAG_ID, bare, 180)["state"] == "failed"
    landed = standalone.task_instance(DATA_DAG_ID, bare, "landed_blob")
    assert (landed["state"], landed["try_number"]) == ("failed", 1), dump(landed)
    log = standalone.task_log(DATA_DAG_ID, bare, "landed_blob", 1)
    assert 'conf {"blob": "binary/dt=YYYY-MM-DD/train.csv"}' in log, log[-2000:]

    # With the blob of a day: that day is retrained.
    blob = f"binary/dt={seeded_dates(seed)[0]}/train.csv"
    run_id = standalone.trigger(DATA_DAG_ID, {"blob": blob})
    run = standalone.wait_for_run(DATA_DAG_ID, run_id, 300)
    states = standalone.task_states(DATA_DAG_ID, run_id)
    assert states["landed_blob"] == "success" and states["retrain"] == "success", dump(states)
    assert run["state"] == "success", dump(states)
    xcom = standalone.api(
        "GET", f"/dags/{DATA_DAG_ID}/dagRuns/{run_id}/taskInstances/landed_blob/xcomEntries/return_value"
    )
    assert blob in str(xcom["value"])
    # The BES job read that blob: its page lists the input.
    page = requests.get(
        str(standalone.extra_links(DATA_DAG_ID, run_id, "retrain")["Azure ML BES job"]), timeout=30
    )
    assert page.status_code == 200 and f"training-data/{blob}" in page.text, page.text[:2000]
