"""
Retrain and promote to a new-style (Azure Resource Manager) web service.

The same retrain and gate as ``amlretrain_retrain_and_promote``; promotion edits the web
service definition with a JSON Patch (``test`` the current ``.ilearner`` URI, ``replace`` it),
PATCHes it through ARM, waits for provisioning, smoke-tests through RRS, and applies the
inverse patch if the smoke test fails.

Connections: ``azurite_default`` (wasb), ``azureml_train_binary`` (training service),
``azureml_arm`` (subscription, resource group; tokens from azure-identity).
Variable ``amlretrain_binary_arm_web_service``: the web service's resource name.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow_provider_amlretrain.operators.batch_execution import AzureMLBatchExecutionOperator
from airflow_provider_amlretrain.operators.evaluation_gate import AzureMLEvaluationGateOperator
from airflow_provider_amlretrain.operators.update_web_service_model import (
    AzureMLUpdateWebServiceModelOperator,
)

WASB_CONN_ID = "azurite_default"
TRAINING_BLOB = "binary/dt={{ ds }}/train.csv"
RUN_PREFIX = "binary-arm/{{ ds }}/{{ run_id | replace(':', '') | replace('+', '') }}"
TARGET = "binary-arm-web-service"

with DAG(
    dag_id="amlretrain_retrain_web_service",
    description="Retrain through BES, gate, promote to an ARM web service with a JSON Patch.",
    schedule="@daily",
    start_date=datetime(2026, 11, 1),
    catchup=False,
    max_active_runs=3,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=10)},
    tags=["azureml", "retraining", "promotion"],
    doc_md=__doc__,
) as dag:
    retrain = AzureMLBatchExecutionOperator(
        task_id="retrain",
        azureml_conn_id="azureml_train_binary",
        inputs={
            "input1": {"wasb_conn_id": WASB_CONN_ID, "container": "training-data", "blob": TRAINING_BLOB}
        },
        outputs={
            "output1": {
                "wasb_conn_id": WASB_CONN_ID,
                "container": "models",
                "blob": f"{RUN_PREFIX}/model.ilearner",
            },
            "output2": {
                "wasb_conn_id": WASB_CONN_ID,
                "container": "models",
                "blob": f"{RUN_PREFIX}/evaluation.csv",
            },
        },
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
    )

    retrain >> evaluate >> promote
