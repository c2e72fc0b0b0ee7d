"""DAGs for the distributed deployment's crash tests: a retrain that may retry, waiting in the worker or deferred.

``amlretrain_worker_loss`` waits for the BES job in the worker (``deferrable=False``): the tests kill that
worker, or restart the emulator, meanwhile. ``amlretrain_triggerer_loss`` defers the wait: the test kills
the triggerer.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow_provider_amlretrain.operators.batch_execution import AzureMLBatchExecutionOperator

WASB = "azurite_default"
PREFIX = (
    "tests/{{ dag.dag_id }}/{{ ds }}/{{ run_id | replace(':', '') | replace('+', '') }}/{{ ti.try_number }}"
)


def _retrain(deferrable: bool) -> AzureMLBatchExecutionOperator:
    return AzureMLBatchExecutionOperator(
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
        deferrable=deferrable,
    )


def _crash_dag(dag_id: str, deferrable: bool) -> DAG:
    with DAG(
        dag_id,
        schedule=None,
        start_date=datetime(2026, 1, 1),
        default_args={"retries": 1, "retry_delay": timedelta(seconds=0)},
    ) as dag:
        _retrain(deferrable)
    return dag


worker_loss = _crash_dag("amlretrain_worker_loss", deferrable=False)
triggerer_loss = _crash_dag("amlretrain_triggerer_loss", deferrable=True)
