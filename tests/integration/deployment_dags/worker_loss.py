"""A DAG for the distributed deployment's worker-loss test: a non-deferrable retrain that may retry.

Its first try waits for the BES job in the worker (``deferrable=False``); the test kills that worker.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow_provider_amlretrain.operators.batch_execution import AzureMLBatchExecutionOperator

WASB = "azurite_default"
PREFIX = "tests/worker_loss/{{ ds }}/{{ ti.try_number }}"

with DAG(
    "amlretrain_worker_loss",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    default_args={"retries": 1, "retry_delay": timedelta(seconds=0)},
) as dag:
    AzureMLBatchExecutionOperator(
        task_id="retrain",
        azureml_conn_id="azureml_train_binary",
        inputs={
            "input1": {
                "wasb_conn_id": WASB,
                "container": "training-data",
                "blob": "binary/dt={{ ds }}/train.csv",
            }
        },
        outputs={
            "output1": {"wasb_conn_id": WASB, "container": "models", "blob": f"{PREFIX}/model.ilearner"},
            "output2": {"wasb_conn_id": WASB, "container": "models", "blob": f"{PREFIX}/evaluation.csv"},
        },
        poll_interval=1,
        deferrable=False,
    )
