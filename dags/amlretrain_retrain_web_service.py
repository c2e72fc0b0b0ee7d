"""
Retrain and promote to a new-style (Azure Resource Manager) web service.

The same retrain and gate as ``amlretrain_retrain_and_promote``; promotion edits the web
service definition with a JSON Patch (``test`` the current ``.ilearner`` URI, ``replace`` it),
PATCHes it through ARM, waits for provisioning, smoke-tests through RRS, and applies the
inverse patch if the smoke test fails.

Connections: ``azurite_default`` (wasb), ``azureml_train_binary`` (training service),
``azureml_arm`` (subscription, resource group; tokens from azure-identity).
Variable ``amlretrain_binary_arm_web_service``: the web service's resource name.

**Triggering and reprocessing.** Scheduled runs train the day of their logical date (midnight
UTC) with the defaults: no forced promotion. Unpausing this DAG starts no run for the day already
begun (the first scheduled run is the next midnight), so a manual *Trigger* with "Unpause on
trigger" trains today's partition once, in that manual run. The Trigger form has **Force
promotion** (``{"force": true}``: replace a model trained on newer data) and **Skip
promotion** (``{"skip_promotion": true}``: retrain and gate, leave the web service alone).

To reprocess a past day, use **Backfill** for that date with "Reprocess behaviour: All Runs"
(REST: ``POST /api/v2/backfills`` with ``from_date``/``to_date`` that day and
``"reprocess_behavior": "completed"``, optionally ``"dag_run_conf": {"force": true}``): it
re-runs the day's own run rather than adding a second run for the same day, which a manual
trigger for that logical date would. A model trained on a day older than the one the web service
serves is gated but not promoted unless forced. After a long pause, unpausing runs the latest
day once: do not also trigger that day.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import DAG, CronTriggerTimetable

from airflow_provider_amlretrain.authoring import RUN_FOLDER, promotion_params, training_outputs
from airflow_provider_amlretrain.operators.batch_execution import AzureMLBatchExecutionOperator
from airflow_provider_amlretrain.operators.evaluation_gate import AzureMLEvaluationGateOperator
from airflow_provider_amlretrain.operators.update_web_service_model import (
    AzureMLUpdateWebServiceModelOperator,
)

WASB_CONN_ID = "azurite_default"
TRAINING_BLOB = "binary/dt={{ ds }}/train.csv"
RUN_PREFIX = "binary-arm/{{ ds }}/" + RUN_FOLDER
TARGET = "binary-arm-web-service"

with DAG(
    dag_id="amlretrain_retrain_web_service",
    description="Retrain through BES, gate, promote to an ARM web service with a JSON Patch.",
    # Daily at midnight UTC. No start_date, so run_immediately applies: unpausing starts no run
    # for the day already begun, and a Trigger with "Unpause on trigger" trains that day once.
    schedule=CronTriggerTimetable("@daily", timezone="UTC", run_immediately=timedelta(0)),
    catchup=False,
    max_active_runs=3,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=10)},
    tags=["azureml", "retraining", "promotion"],
    doc_md=__doc__,
    params=promotion_params("the web service"),
) as dag:
    retrain = AzureMLBatchExecutionOperator(
        task_id="retrain",
        azureml_conn_id="azureml_train_binary",
        inputs={
            "input1": {"wasb_conn_id": WASB_CONN_ID, "container": "training-data", "blob": TRAINING_BLOB}
        },
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
        ],
    )

    promote = AzureMLUpdateWebServiceModelOperator(
        task_id="promote",
        deployment_target=TARGET,
        training_result=retrain.output,
        gate_result=evaluate.output,
        training_conn_id="azureml_train_binary",
        wasb_conn_id=WASB_CONN_ID,
        azureml_arm_conn_id="azureml_arm",
        web_service_name="{{ var.value.amlretrain_binary_arm_web_service }}",
        smoke_test_sample="training-data/" + TRAINING_BLOB,
        smoke_test_drop_columns=["label"],
        poll_interval=0.5,
        force="{{ params.force }}",
        skip_promotion="{{ params.skip_promotion }}",
    )

    retrain >> evaluate >> promote
