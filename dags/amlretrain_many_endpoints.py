"""
One training web service, many datasets, many endpoints (Data Factory's "update resource" pattern).

Each endpoint serves a model trained on its own data. The training experiment reads its dataset
from the ``Data URI`` global parameter (no ``Inputs``), so a single training web service serves
them all. A mapped task group retrains, gates and promotes each endpoint independently: one
rejected or failing endpoint does not hold the others back, and each endpoint keeps its own
deployment record, which keeps backfills safe per endpoint.

``plan`` makes one dict per endpoint; the task group is mapped over them (``expand_kwargs``), and
its body, ``retrain_gate_promote`` (``airflow_provider_amlretrain.authoring``), adds that endpoint's
``retrain`` (a BES job, ``AzureMLBatchExecutionOperator``) >> ``evaluate`` (the evaluation gate,
``AzureMLEvaluationGateOperator``) >> ``promote`` (the endpoint update, with a smoke test,
``AzureMLUpdateEndpointModelOperator``). The mapped values go in per endpoint; connections, rules
and waits are the same for all.

Edit ``ENDPOINT_DATA`` to map your endpoints to their data (paths are templated per run).

**Triggering and reprocessing.** Scheduled runs train the day of their logical date (midnight
UTC) with the defaults: no forced promotion. Unpausing this DAG starts no run for the day already
begun (the first scheduled run is the next midnight), so a manual *Trigger* with "Unpause on
trigger" trains today's partition once, in that manual run. The Trigger form has **Force
promotion** (``{"force": true}``: replace a model trained on newer data) and **Skip
promotion** (``{"skip_promotion": true}``: retrain and gate, leave the endpoints alone).

To reprocess a past day, use **Backfill** for that date with "Reprocess behaviour: All Runs"
(REST: ``POST /api/v2/backfills`` with ``from_date``/``to_date`` that day and
``"reprocess_behavior": "completed"``, optionally ``"dag_run_conf": {"force": true}``): it
re-runs the day's own run rather than adding a second run for the same day, which a manual
trigger for that logical date would. A model trained on a day older than the one the endpoints
serves is gated but not promoted unless forced. After a long pause, unpausing runs the latest
day once: do not also trigger that day.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import DAG, CronTriggerTimetable, task, task_group

from airflow_provider_amlretrain.authoring import promotion_params, retrain_gate_promote, training_outputs

WASB_CONN_ID = "azurite_default"
DATA_CONTAINER = "training-data"
#: Endpoint name -> the blob (in DATA_CONTAINER) its model is trained on, templated per run.
ENDPOINT_DATA = {
    "region-east": "binary/dt={{ ds }}/train.csv",
    "region-west": "binary/dt={{ macros.ds_add(ds, -1) }}/train.csv",
    "region-south": "binary/dt={{ macros.ds_add(ds, -2) }}/train.csv",
}

with DAG(
    dag_id="amlretrain_many_endpoints",
    description="Retrain one model per endpoint through a single training web service (Data URI), gate and promote each.",
    # Daily at midnight UTC. No start_date, so run_immediately applies: unpausing starts no run
    # for the day already begun, and a Trigger with "Unpause on trigger" trains that day once.
    schedule=CronTriggerTimetable("@daily", timezone="UTC", run_immediately=timedelta(0)),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=10)},
    tags=["azureml", "retraining", "promotion"],
    doc_md=__doc__,
    params=promotion_params("the endpoints"),
) as dag:

    @task
    def plan(endpoint_data: dict[str, str], run_id: str | None = None) -> list[dict[str, Any]]:
        """One entry per endpoint: its name, the Data URI of its dataset and its output prefix."""
        from airflow.providers.microsoft.azure.hooks.wasb import WasbHook

        account_url = WasbHook(wasb_conn_id=WASB_CONN_ID).get_conn().url.rstrip("/")
        safe_run = (run_id or "manual").replace(":", "").replace("+", "")
        plans = []
        for endpoint, blob in sorted(endpoint_data.items()):
            prefix = f"many-endpoints/{endpoint}/{safe_run}"
            plans.append(
                {
                    "endpoint": endpoint,
                    "target": f"binary-classic-{endpoint}",
                    "global_parameters": {"Data URI": f"{account_url}/{DATA_CONTAINER}/{blob}"},
                    "outputs": training_outputs(WASB_CONN_ID, "models", prefix),
                    "smoke_sample": f"{DATA_CONTAINER}/{blob}",
                }
            )
        return plans

    @task_group
    def retrain_and_promote(
        endpoint: str,
        target: str,
        global_parameters: dict[str, str],
        outputs: dict[str, Any],
        smoke_sample: str,
    ) -> None:
        """Retrain on the endpoint's data, gate against its production model, promote it."""
        retrain_gate_promote(
            # Per endpoint: the mapped arguments, from plan().
            endpoint_name=endpoint,
            deployment_target=target,
            global_parameters=global_parameters,
            outputs=outputs,
            smoke_test_sample=smoke_sample,
            # The same for every endpoint.
            web_service_id="{{ var.value.amlretrain_binary_web_service_id }}",
            rules=[
                {"metric": "AUC", "min": 0.9},
                {"metric": "AUC", "compare_to_baseline": True, "tolerance": 0.02},
            ],
            training_conn_id="azureml_train_binary",
            wasb_conn_id=WASB_CONN_ID,
            azureml_management_conn_id="azureml_management",
            smoke_test_drop_columns=["label"],
            poll_interval=2,
            job_timeout=timedelta(minutes=30),
            # When deferrable: a finished job ends its retrain task in the triggerer (no worker resumption).
            end_from_trigger=True,
            wait_after_update="{{ var.value.get('amlretrain_wait_after_update', 30) }}",
            # force and skip_promotion: the Trigger form's fields (promotion_params), by default.
        )

    retrain_and_promote.expand_kwargs(plan(ENDPOINT_DATA))
