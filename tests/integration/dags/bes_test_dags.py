"""DAGs the BES flow tests run (dag.test() needs them in a DAG bundle)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG

from airflow_provider_amlretrain.operators.batch_execution import AzureMLBatchExecutionOperator
from airflow_provider_amlretrain.sensors.batch_job import AzureMLBatchJobSensor

WASB = "azurite_default"
TRAINING = "azureml_train_binary"


def retrain_dag(
    dag_id: str,
    *,
    retries: int = 0,
    training_blob: str = "binary/dt={{ ds }}/train.csv",
    **operator_kwargs: Any,
) -> DAG:
    """A one-task DAG that retrains the binary model for the run's date."""
    prefix = f"tests/{dag_id}/{{{{ ds }}}}/{{{{ ti.try_number }}}}"
    with DAG(
        dag_id,
        schedule=None,
        start_date=datetime(2026, 1, 1),
        default_args={"retries": retries, "retry_delay": timedelta(seconds=0)},
    ) as dag:
        AzureMLBatchExecutionOperator(
            task_id="retrain",
            azureml_conn_id=TRAINING,
            inputs={"input1": {"wasb_conn_id": WASB, "container": "training-data", "blob": training_blob}},
            outputs={
                "output1": {"wasb_conn_id": WASB, "container": "models", "blob": f"{prefix}/model.ilearner"},
                "output2": {"wasb_conn_id": WASB, "container": "models", "blob": f"{prefix}/evaluation.csv"},
            },
            poll_interval=0.5,
            **operator_kwargs,
        )
    return dag


def sensor_dag(dag_id: str, *, deferrable: bool) -> DAG:
    """A DAG that waits for the job id given in the run's conf."""
    with DAG(dag_id, schedule=None, start_date=datetime(2026, 1, 1)) as dag:
        AzureMLBatchJobSensor(
            task_id="wait",
            job_id="{{ dag_run.conf['job_id'] }}",
            azureml_conn_id=TRAINING,
            poke_interval=0.5,
            timeout=120,
            deferrable=deferrable,
        )
    return dag


bes_sync = retrain_dag("bes_sync", deferrable=False)
bes_deferrable = retrain_dag("bes_deferrable", deferrable=True)
bes_missing_input = retrain_dag("bes_missing_input", training_blob="binary/dt=1999-01-01/missing.csv")
bes_faults = retrain_dag("bes_faults")
# A submit whose answer is lost fails the try (a POST that creates a job is not sent twice); the retry submits.
bes_lost_submit = retrain_dag("bes_lost_submit", retries=1)
bes_timeout = retrain_dag("bes_timeout", job_timeout=2)
bes_timeout_deferrable = retrain_dag("bes_timeout_deferrable", job_timeout=2, deferrable=True)
# The first try hits execution_timeout while the job runs; the retry must reattach to that job.
bes_reattach = retrain_dag(
    "bes_reattach", retries=1, cancel_on_kill=False, execution_timeout=timedelta(seconds=5)
)
bes_sensor_poke = sensor_dag("bes_sensor_poke", deferrable=False)
bes_sensor_deferrable = sensor_dag("bes_sensor_deferrable", deferrable=True)
