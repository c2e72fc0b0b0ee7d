"""
Retrain, gate and promote whenever a new training partition lands (data-aware scheduling).

An ``AssetWatcher`` runs :class:`WasbBlobArrivalTrigger` in the triggerer: each new
``binary/dt=*/train.csv`` blob becomes an asset event, and each asset event a run of this DAG,
which retrains on exactly the blob that landed (read from the triggering asset event), gates
the model, and promotes it to the ``on-new-data`` endpoint. Runs for data that lands out of
order are safe: the deployment record never lets older data replace newer data. The trigger reports a
blob at least once (a triggerer that dies right after an event reports it again): a run whose blob and ETag
an earlier asset event already reported skips, so a landed blob trains once; an overwritten blob trains again.

**Reprocess a day** (retrain on a blob that is already there): *Trigger* this DAG and fill in
**Training blob**, e.g. ``binary/dt=2026-11-05/train.csv`` (in the ``training-data`` container).
Through the REST API: ``POST /api/v2/dags/amlretrain_on_new_data/dagRuns`` with
``{"logical_date": null, "conf": {"blob": "binary/dt=2026-11-05/train.csv"}}``; several days are
one trigger each. Each such run submits a new BES job and writes under its own run id. Tick
**Force promotion** only to replace a model trained on newer data on purpose; **Skip promotion**
retrains and gates but leaves the endpoint as it is.

A manual trigger without a training blob fails at once, without retries, saying what to pass
(as does a blob that does not exist). This DAG has no Backfill: its runs follow data, not dates
(an ``AssetOrTimeSchedule`` would make backfills possible, but its daily runs would train each
day a second time after the arrival run did); reprocess days by triggering with a blob as above.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, Asset, AssetWatcher, Param, task

from airflow_provider_amlretrain.authoring import RUN_FOLDER, promotion_params, training_outputs
from airflow_provider_amlretrain.operators.batch_execution import AzureMLBatchExecutionOperator
from airflow_provider_amlretrain.operators.evaluation_gate import AzureMLEvaluationGateOperator
from airflow_provider_amlretrain.operators.update_endpoint_model import AzureMLUpdateEndpointModelOperator
from airflow_provider_amlretrain.triggers.blob_arrival import WasbBlobArrivalTrigger

WASB_CONN_ID = "azurite_default"
DATA_CONTAINER = "training-data"
ENDPOINT = "on-new-data"
TARGET = f"binary-classic-{ENDPOINT}"
RECENT_ARRIVALS = 200
"""How many earlier arrivals a run compares its blob with (repeats come right after the original)."""

new_training_data = Asset(
    "amlretrain_binary_training_data",
    uri="wasb://training-data/binary/",
    watchers=[
        AssetWatcher(
            name="binary_training_data_arrivals",
            trigger=WasbBlobArrivalTrigger(
                wasb_conn_id=WASB_CONN_ID,
                container=DATA_CONTAINER,
                prefix="binary/",
                suffix="/train.csv",
                poll_interval=5,
                # A day that lands late sorts below the newest name, so only a full scan sees it: once a
                # minute here (a listing of a few thousand names is one request).
                full_scan_interval=60,
            ),
        )
    ],
)

with DAG(
    dag_id="amlretrain_on_new_data",
    description="Retrain, gate and promote each time a training partition lands.",
    schedule=[new_training_data],
    start_date=datetime(2026, 11, 1),
    catchup=False,
    max_active_runs=3,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=10)},
    tags=["azureml", "retraining", "promotion", "data-aware"],
    doc_md=__doc__,
    params={
        "blob": Param(
            None,
            type=["null", "string"],
            title="Training blob",
            description="Reprocess: retrain on this blob of the training-data container, e.g. "
            "binary/dt=2026-11-05/train.csv. Required for a manual trigger; runs started by a blob "
            "arrival use the blob that landed.",
        ),
        **promotion_params("the endpoint"),
    },
) as dag:

    @task(inlets=[new_training_data])
    def landed_blob(
        params: dict[str, Any] | None = None, triggering_asset_events: Any = None, inlet_events: Any = None
    ) -> str:
        """
        The blob to train on: the Training blob param, else the one whose arrival triggered this run.

        The trigger reports a blob at least once: a run whose blob and ETag an earlier asset event already
        reported (a repeat after a triggerer crash) is skipped, so one landed blob trains once.
        """
        from airflow.providers.common.compat.sdk import AirflowSkipException
        from airflow.providers.microsoft.azure.hooks.wasb import WasbHook

        from airflow_provider_amlretrain.exceptions import AzureMLConfigError

        chosen = str((params or {}).get("blob") or "").strip()
        if not chosen:
            arrivals = [
                (event.timestamp, event.extra["payload"])
                for events in (triggering_asset_events or {}).values()
                for event in events
                if isinstance(event.extra, dict) and event.extra.get("payload")
            ]
            if not arrivals:
                raise AzureMLConfigError(
                    "This run has no training blob: it was not started by a blob arrival. To reprocess a "
                    'day, trigger it with the Training blob, conf {"blob": "binary/dt=YYYY-MM-DD/train.csv"}.'
                )
            # The newest, when several arrivals were batched into one run.
            payload = max((p for _, p in arrivals), key=lambda p: p.get("last_modified") or "")
            chosen = str(payload["blob"])
            first = min(moment for moment, _ in arrivals)
            earlier = (
                inlet_events[new_training_data]
                .before(first.isoformat())
                .ascending(False)
                .limit(RECENT_ARRIVALS)
            )
            for event in earlier:
                reported = (event.extra or {}).get("payload") or {}
                if (
                    event.timestamp < first
                    and reported.get("blob") == chosen
                    and reported.get("etag") == payload.get("etag")
                ):
                    raise AirflowSkipException(
                        f"Blob {chosen} (ETag {payload.get('etag')}) was already reported by asset event "
                        f"{event.id} at {event.timestamp.isoformat()}: this repeated arrival does not train again."
                    )
        if not WasbHook(wasb_conn_id=WASB_CONN_ID).check_for_blob(DATA_CONTAINER, chosen):
            raise AzureMLConfigError(
                f"Training blob {chosen!r} does not exist in container {DATA_CONTAINER!r}: pass a blob "
                'path inside it, e.g. {"blob": "binary/dt=YYYY-MM-DD/train.csv"}.'
            )
        return chosen

    blob = landed_blob()
    prefix = "on-new-data/" + RUN_FOLDER
    retrain = AzureMLBatchExecutionOperator(
        task_id="retrain",
        azureml_conn_id="azureml_train_binary",
        inputs={
            "input1": {
                "wasb_conn_id": WASB_CONN_ID,
                "container": DATA_CONTAINER,
                "blob": "{{ ti.xcom_pull(task_ids='landed_blob') }}",
            }
        },
        outputs=training_outputs(WASB_CONN_ID, "models", prefix),
        poll_interval=2,
        job_timeout=timedelta(minutes=30),
    )
    evaluate = AzureMLEvaluationGateOperator(
        task_id="evaluate",
        training_result=retrain.output,
        wasb_conn_id=WASB_CONN_ID,
        deployment_target=TARGET,
        rules=[
            {"metric": "AUC", "min": 0.9},
            {"metric": "AUC", "compare_to_baseline": True, "tolerance": 0.02},
        ],
    )
    promote = AzureMLUpdateEndpointModelOperator(
        task_id="promote",
        deployment_target=TARGET,
        training_result=retrain.output,
        gate_result=evaluate.output,
        training_conn_id="azureml_train_binary",
        wasb_conn_id=WASB_CONN_ID,
        azureml_management_conn_id="azureml_management",
        web_service_id="{{ var.value.amlretrain_binary_web_service_id }}",
        endpoint_name=ENDPOINT,
        smoke_test_sample=DATA_CONTAINER + "/{{ ti.xcom_pull(task_ids='landed_blob') }}",
        # Asset runs have no data interval: the data version is the date in the blob's path (dt=YYYY-MM-DD).
        data_version_blob=DATA_CONTAINER + "/{{ ti.xcom_pull(task_ids='landed_blob') }}",
        smoke_test_drop_columns=["label"],
        wait_after_update="{{ var.value.get('amlretrain_wait_after_update', 30) }}",
        force="{{ params.force }}",
        skip_promotion="{{ params.skip_promotion }}",
    )
    blob >> retrain >> evaluate >> promote
