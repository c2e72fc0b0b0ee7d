"""
Retrain, gate on the evaluation, and promote to a classic web service endpoint.

For each day's data: the training web service retrains through BES; the Evaluate Model metrics
must clear an absolute bar *and* not be worse than the model in production (champion /
challenger, read from the endpoint's deployment record); only then is the new ``.ilearner``
PATCHed into the ``retrained`` endpoint of the *predictive* web service, confirmed, and
smoke-tested with rows of the day's data (a failing smoke test restores the previous model).

Backfills are safe: a run trained on older data never replaces a model trained on newer data,
and two runs promoting at once cannot both win (conditional writes on the deployment record).

Connections: ``azurite_default`` (wasb), ``azureml_train_binary`` (training service),
``azureml_management`` (classic management API: workspace token + ``workspace_id``).
Variable ``amlretrain_binary_web_service_id``: the predictive web service.

**Triggering and reprocessing.** Scheduled runs train the day of their logical date (midnight
UTC) with the defaults: no forced promotion. Unpausing this DAG starts no run for the day already
begun (the first scheduled run is the next midnight), so a manual *Trigger* with "Unpause on
trigger" trains today's partition once, in that manual run. The Trigger form has **Force
promotion** (``{"force": true}``: replace a model trained on newer data) and **Skip
promotion** (``{"skip_promotion": true}``: retrain and gate, leave the endpoint alone).

To reprocess a past day, use **Backfill** for that date with "Reprocess behaviour: All Runs"
(REST: ``POST /api/v2/backfills`` with ``from_date``/``to_date`` that day and
``"reprocess_behavior": "completed"``, optionally ``"dag_run_conf": {"force": true}``): it
re-runs the day's own run rather than adding a second run for the same day, which a manual
trigger for that logical date would. A model trained on a day older than the one the endpoint
serves is gated but not promoted unless forced. After a long pause, unpausing runs the latest
day once: do not also trigger that day.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import DAG, CronTriggerTimetable

from airflow_provider_amlretrain.authoring import RUN_FOLDER, promotion_params, training_outputs
from airflow_provider_amlretrain.operators.batch_execution import AzureMLBatchExecutionOperator
from airflow_provider_amlretrain.operators.evaluation_gate import AzureMLEvaluationGateOperator
from airflow_provider_amlretrain.operators.update_endpoint_model import AzureMLUpdateEndpointModelOperator
from airflow_provider_amlretrain.sensors.wasb_blob import WasbBlobExistsSensor

WASB_CONN_ID = "azurite_default"
DATA_CONTAINER = "training-data"
TRAINING_BLOB = "binary/dt={{ ds }}/train.csv"
RUN_PREFIX = "binary-promote/{{ ds }}/" + RUN_FOLDER
ENDPOINT = "retrained"
TARGET = f"binary-classic-{ENDPOINT}"

with DAG(
    dag_id="amlretrain_retrain_and_promote",
    description="Retrain through BES, gate on Evaluate Model, promote to a classic endpoint.",
    # Daily at midnight UTC. No start_date, so run_immediately applies: unpausing starts no run
    # for the day already begun, and a Trigger with "Unpause on trigger" trains that day once.
    schedule=CronTriggerTimetable("@daily", timezone="UTC", run_immediately=timedelta(0)),
    catchup=False,
    max_active_runs=3,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=10)},
    tags=["azureml", "retraining", "promotion"],
    doc_md=__doc__,
    params=promotion_params("the endpoint"),
) as dag:
    wait_for_data = WasbBlobExistsSensor(
        task_id="wait_for_training_data",
        wasb_conn_id=WASB_CONN_ID,
        container_name=DATA_CONTAINER,
        blob_name=TRAINING_BLOB,
        poke_interval=30,
        timeout=6 * 60 * 60,
        mode="reschedule",
    )

    retrain = AzureMLBatchExecutionOperator(
        task_id="retrain",
        azureml_conn_id="azureml_train_binary",
        inputs={"input1": {"wasb_conn_id": WASB_CONN_ID, "container": DATA_CONTAINER, "blob": TRAINING_BLOB}},
        outputs=training_outputs(WASB_CONN_ID, "models", RUN_PREFIX),
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
            {"metric": "Average Log Loss", "max": 0.5},
        ],
        on_reject="skip",
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
        smoke_test_sample=f"{DATA_CONTAINER}/{TRAINING_BLOB}",
        smoke_test_drop_columns=["label"],
        wait_after_update="{{ var.value.get('amlretrain_wait_after_update', 30) }}",
        force="{{ params.force }}",
        skip_promotion="{{ params.skip_promotion }}",
    )

    wait_for_data >> retrain >> evaluate >> promote
