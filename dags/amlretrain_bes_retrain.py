"""
Retrain a model through the Batch Execution Service, once a day or for any date backfilled.

Each run waits for its day's training partition, runs the *training* web service on it (BES
job: submit, persist the id, start, wait), and reports the Evaluate Model metrics and where
the new ``.ilearner`` is. Outputs are written under the run's own prefix, so runs and their
retries never overwrite each other's models.

Connections (``make up`` writes them for the local stack; ``python -m amlretrain_devstack env``
prints them):

- ``azurite_default`` (``wasb``): the storage account holding data and models;
- ``azureml_train_binary`` (``azureml_studio``): the training web service's API location and key.

**Triggering and reprocessing.** Unpausing this DAG starts no run for the day already begun (the
first scheduled run is the next midnight UTC), so a manual *Trigger* with "Unpause on trigger"
trains today's partition once. To retrain a past day, use **Backfill** for that date with
"Reprocess behaviour: All Runs" (REST: ``POST /api/v2/backfills``, ``"reprocess_behavior":
"completed"``): it re-runs the day's own run instead of adding a second one.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import DAG, CronTriggerTimetable, task

from airflow_provider_amlretrain.authoring import RUN_FOLDER, training_outputs
from airflow_provider_amlretrain.operators.batch_execution import AzureMLBatchExecutionOperator
from airflow_provider_amlretrain.sensors.wasb_blob import WasbBlobExistsSensor

WASB_CONN_ID = "azurite_default"
TRAINING_CONN_ID = "azureml_train_binary"
DATA_CONTAINER = "training-data"
MODEL_CONTAINER = "models"
TRAINING_BLOB = "binary/dt={{ ds }}/train.csv"
RUN_PREFIX = "binary/{{ ds }}/" + RUN_FOLDER

with DAG(
    dag_id="amlretrain_bes_retrain",
    description="Retrain the binary classifier through Azure ML BES for each day's data.",
    # Daily at midnight UTC. No start_date, so run_immediately applies: unpausing starts no run
    # for the day already begun, and a Trigger with "Unpause on trigger" trains that day once.
    schedule=CronTriggerTimetable("@daily", timezone="UTC", run_immediately=timedelta(0)),
    catchup=False,
    max_active_runs=3,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=10)},
    tags=["azureml", "retraining"],
    doc_md=__doc__,
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
        azureml_conn_id=TRAINING_CONN_ID,
        inputs={"input1": {"wasb_conn_id": WASB_CONN_ID, "container": DATA_CONTAINER, "blob": TRAINING_BLOB}},
        outputs=training_outputs(WASB_CONN_ID, MODEL_CONTAINER, RUN_PREFIX),
        poll_interval=2,
        job_timeout=timedelta(minutes=30),
    )

    @task
    def report(result: dict[str, Any]) -> dict[str, Any]:
        """Read the evaluation the job wrote and say what was produced."""
        from airflow.providers.microsoft.azure.hooks.wasb import WasbHook

        from airflow_provider_amlretrain.promotion.evaluation import parse_evaluation_csv

        evaluation = result["outputs"]["output2"]
        container, blob = evaluation["relative_location"].split("/", 1)
        text = WasbHook(wasb_conn_id=WASB_CONN_ID).read_file(container_name=container, blob_name=blob)
        metrics = parse_evaluation_csv(text, source=evaluation["uri"]).metrics
        summary = {
            "job_id": result["job_id"],
            "duration_seconds": result["duration_seconds"],
            "model_uri": result["outputs"]["output1"]["uri"],
            "metrics": metrics,
        }
        print(f"BES job {summary['job_id']} finished in {summary['duration_seconds']} s")
        print(f"model: {summary['model_uri']}")
        for name, value in metrics.items():
            print(f"  {name}: {value:.4f}")
        return summary

    wait_for_data >> retrain
    report(retrain.output)
