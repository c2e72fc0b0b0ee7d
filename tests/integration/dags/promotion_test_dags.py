"""Pipelines the promotion flow tests run; each test picks its endpoint, rules and sample through params."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, Param

from airflow_provider_amlretrain.operators.batch_execution import AzureMLBatchExecutionOperator
from airflow_provider_amlretrain.operators.evaluation_gate import AzureMLEvaluationGateOperator
from airflow_provider_amlretrain.operators.update_endpoint_model import AzureMLUpdateEndpointModelOperator
from airflow_provider_amlretrain.operators.update_web_service_model import (
    AzureMLUpdateWebServiceModelOperator,
)

WASB = "azurite_default"
TRAINING = "azureml_train_binary"
TRAINING_BLOB = "binary/dt={{ ds }}/train.csv"
PREFIX = (
    "tests/{{ dag.dag_id }}/{{ params.target }}/{{ ds }}/{{ run_id | replace(':', '') | replace('+', '') }}"
)
SMOKE_SAMPLE = "{{ params.smoke_sample or 'training-data/binary/dt=' ~ ds ~ '/train.csv' }}"
DEFAULT_RULES = [
    {"metric": "AUC", "min": 0.8},
    {"metric": "AUC", "compare_to_baseline": True, "tolerance": 0.05},
]


def _params(**extra: object) -> dict[str, Param]:
    return {
        "target": Param("t", type="string"),
        "rules": Param(DEFAULT_RULES, type="array"),
        "on_reject": Param("skip", type="string"),
        # Empty: smoke-test with rows of the day the run trained on (the seed's dates move with the calendar).
        "smoke_sample": Param("", type="string"),
        "force": Param(False, type="boolean"),
        **{k: Param(v) for k, v in extra.items()},
    }


def _retrain_and_gate() -> tuple[AzureMLBatchExecutionOperator, AzureMLEvaluationGateOperator]:
    retrain = AzureMLBatchExecutionOperator(
        task_id="retrain",
        azureml_conn_id=TRAINING,
        inputs={"input1": {"wasb_conn_id": WASB, "container": "training-data", "blob": TRAINING_BLOB}},
        outputs={
            "output1": {"wasb_conn_id": WASB, "container": "models", "blob": f"{PREFIX}/model.ilearner"},
            "output2": {"wasb_conn_id": WASB, "container": "models", "blob": f"{PREFIX}/evaluation.csv"},
        },
        poll_interval=0.3,
    )
    evaluate = AzureMLEvaluationGateOperator(
        task_id="evaluate",
        training_result=retrain.output,
        wasb_conn_id=WASB,
        deployment_target="{{ params.target }}",
        rules="{{ params.rules }}",
        on_reject="skip",
    )
    retrain >> evaluate
    return retrain, evaluate


with DAG(
    "promote_classic",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    render_template_as_native_obj=True,
    default_args={"retries": 0, "retry_delay": timedelta(seconds=0)},
    params=_params(endpoint="retrained", web_service_id=""),
) as promote_classic:
    retrain, evaluate = _retrain_and_gate()
    evaluate >> AzureMLUpdateEndpointModelOperator(
        task_id="promote",
        deployment_target="{{ params.target }}",
        training_result=retrain.output,
        gate_result=evaluate.output,
        training_conn_id=TRAINING,
        wasb_conn_id=WASB,
        azureml_management_conn_id="azureml_management",
        web_service_id="{{ params.web_service_id or var.value.amlretrain_binary_web_service_id }}",
        endpoint_name="{{ params.endpoint }}",
        smoke_test_sample=SMOKE_SAMPLE,
        smoke_test_drop_columns=["label"],
        force="{{ params.force }}",
        wait_after_update=0,
    )

with DAG(
    "promote_web_service",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    render_template_as_native_obj=True,
    params=_params(),
) as promote_web_service:
    retrain, evaluate = _retrain_and_gate()
    evaluate >> AzureMLUpdateWebServiceModelOperator(
        task_id="promote",
        deployment_target="{{ params.target }}",
        training_result=retrain.output,
        gate_result=evaluate.output,
        training_conn_id=TRAINING,
        wasb_conn_id=WASB,
        azureml_arm_conn_id="azureml_arm",
        web_service_name="{{ var.value.amlretrain_binary_arm_web_service }}",
        smoke_test_sample=SMOKE_SAMPLE,
        smoke_test_drop_columns=["label"],
        poll_interval=0.3,
        force="{{ params.force }}",
    )
