"""
Retrain, gate, and ask a person before promoting a borderline model.

The gate decides three ways. A model clearly better than production (by more than the review
margin), or the first model of the endpoint, is promoted at once. A model that breaks a rule is
rejected: the promotion is skipped and the run stays green. A model that passes but is within the
review margin of production is *borderline*: the ``approve`` task asks a person, showing the gate's
verdicts (each metric, the production value, the reason). **Approve** promotes it; **Reject** skips
the promotion, so the endpoint keeps serving its model and the run stays green.

Answer in the UI (the ``approve`` task's *Required Action* tab), or through the REST API:
``PATCH /api/v2/dags/amlretrain_approve_borderline/dagRuns/{run_id}/taskInstances/approve/-1/hitlDetails``
with ``{"chosen_options": ["Approve"]}`` (or ``["Reject"]``).

Run it by hand for one day of data (Trigger, with a logical date): the form's ``tolerance`` and
``review_margin`` tune the champion/challenger rule for that run. Put it on a schedule for production.

Connections: ``azurite_default`` (wasb), ``azureml_train_binary`` (training service),
``azureml_management`` (classic management API). Variable ``amlretrain_binary_web_service_id``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import DAG, Param, task

from airflow_provider_amlretrain.authoring import RUN_FOLDER, training_outputs
from airflow_provider_amlretrain.operators.batch_execution import AzureMLBatchExecutionOperator
from airflow_provider_amlretrain.operators.evaluation_gate import AzureMLEvaluationGateOperator
from airflow_provider_amlretrain.operators.update_endpoint_model import AzureMLUpdateEndpointModelOperator

WASB_CONN_ID = "azurite_default"
DATA_CONTAINER = "training-data"
TRAINING_BLOB = "binary/dt={{ ds }}/train.csv"
RUN_PREFIX = "binary-approve/{{ ds }}/" + RUN_FOLDER
ENDPOINT = "approved"
TARGET = f"binary-classic-{ENDPOINT}"

with DAG(
    dag_id="amlretrain_approve_borderline",
    description="Retrain, gate, ask a person about borderline models, promote to a classic endpoint.",
    schedule=None,
    start_date=datetime(2026, 11, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=10)},
    params={
        "tolerance": Param(0.02, type="number", minimum=0, title="How much worse than production AUC may be"),
        "review_margin": Param(
            0.01,
            type="number",
            minimum=0,
            title="Ask a person unless AUC beats production by more than this",
        ),
    },
    tags=["azureml", "retraining", "promotion", "approval"],
    doc_md=__doc__,
) as dag:
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
            {
                "metric": "AUC",
                "compare_to_baseline": True,
                "tolerance": "{{ params.tolerance }}",
                "review_margin": "{{ params.review_margin }}",
            },
            {"metric": "Average Log Loss", "max": 0.5},
        ],
        on_reject="skip",
    )

    @task.branch
    def promote_or_ask(gate: dict[str, Any]) -> str:
        """Promote a clear pass at once; send a borderline model to a person first."""
        return "approve" if gate["outcome"] == "review" else "promote"

    approve = ApprovalOperator(
        task_id="approve",
        subject="Promote the model retrained on {{ ds }} to endpoint '" + ENDPOINT + "'?",
        body="{{ ti.xcom_pull(task_ids='evaluate', key='gate_decision')['report'] }}",
        # Nobody answered in two days: keep the production model (the run stays green).
        response_timeout=timedelta(days=2),
        defaults="Reject",
        retries=0,
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
        # After the branch, one of its two upstreams (the branch itself or "approve") is skipped.
        trigger_rule="none_failed_min_one_success",
    )

    choice = promote_or_ask(evaluate.output)
    retrain >> evaluate >> choice
    choice >> [approve, promote]
    approve >> promote
