"""The parse-cost baseline: a DAG of the example DAGs' shape that imports only ``airflow.sdk``."""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import DAG, CronTriggerTimetable, task

with DAG(
    dag_id="baseline_sdk_only",
    schedule=CronTriggerTimetable("@daily", timezone="UTC"),
    catchup=False,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=10)},
) as dag:

    @task
    def wait_for_data() -> str:
        return "data"

    @task
    def retrain(data: str) -> str:
        return data

    @task
    def promote(model: str) -> None:
        print(model)

    promote(retrain(wait_for_data()))
