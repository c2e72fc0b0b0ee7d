"""The DAG-authoring pieces: promotion Params the operators read strictly, the model + evaluation outputs, and
one endpoint's retrain >> evaluate >> promote."""

from __future__ import annotations

import re
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk import DAG, task_group

from airflow_provider_amlretrain.authoring import (
    RUN_FOLDER,
    promotion_params,
    retrain_gate_promote,
    training_outputs,
)
from airflow_provider_amlretrain.exceptions import AzureMLConfigError
from airflow_provider_amlretrain.flags import parse_flag


def test_promotion_params_are_false_boolean_fields_naming_the_target():
    params = promotion_params("the web service")
    assert sorted(params) == ["force", "skip_promotion"]
    for param in params.values():
        assert param.value is False and param.schema["type"] == "boolean" and param.schema["title"]
    assert params["skip_promotion"].description == "Retrain and gate, but leave the web service as it is."
    # What "{{ params.force }}" renders for the default is read as false by the operators.
    assert parse_flag(str(params["force"].value), owner="promote", field="force") is False


def test_training_outputs_put_model_and_evaluation_in_the_run_folder():
    outputs = training_outputs("wasb", "models", "binary/{{ ds }}/" + RUN_FOLDER + "/")
    assert outputs == {
        "output1": {
            "wasb_conn_id": "wasb",
            "container": "models",
            "blob": "binary/{{ ds }}/{{ run_id | replace(':', '') | replace('+', '') }}/model.ilearner",
        },
        "output2": {
            "wasb_conn_id": "wasb",
            "container": "models",
            "blob": "binary/{{ ds }}/{{ run_id | replace(':', '') | replace('+', '') }}/evaluation.csv",
        },
    }


def test_training_outputs_take_the_services_port_names():
    outputs = training_outputs("wasb", "models", "f", model_port="trained", evaluation_port="scores")
    assert sorted(outputs) == ["scores", "trained"]
    assert outputs["trained"]["blob"] == "f/model.ilearner"


# -- retrain_gate_promote: one endpoint's retrain >> evaluate >> promote ---------------------------------

RULES = [{"metric": "AUC", "min": 0.9}]
ENDPOINTS = [
    {"endpoint": "east", "target": "t-east", "data": {"Data URI": "u-east"}, "sample": "c/east.csv"},
    {"endpoint": "west", "target": "t-west", "data": {"Data URI": "u-west"}, "sample": "c/west.csv"},
]


def _fixed(**overrides: Any) -> dict[str, Any]:
    """What is the same for every endpoint: the factory's required arguments, with ``overrides``."""
    return {
        "web_service_id": "{{ var.value.scoring_service }}",
        "rules": RULES,
        "training_conn_id": "train",
        "wasb_conn_id": "wasb",
        "azureml_management_conn_id": "management",
        **overrides,
    }


def _one_endpoint(**overrides: Any) -> tuple[Any, Any, Any]:
    """The three tasks for one endpoint given plain values, in a DAG of their own."""
    with DAG(dag_id="one_endpoint", schedule=None):
        return retrain_gate_promote(
            endpoint_name="east",
            deployment_target="t-east",
            global_parameters={"Data URI": "u-east"},
            outputs=training_outputs("wasb", "models", "east"),
            **_fixed(**overrides),
        )


def test_the_tasks_are_chained_and_each_reads_what_the_one_before_returned():
    with DAG(dag_id="mapped", schedule=None) as dag:

        @task_group
        def per_endpoint(endpoint: str, target: str, data: dict[str, str], sample: str) -> None:
            retrain_gate_promote(
                endpoint_name=endpoint,
                deployment_target=target,
                global_parameters=data,
                outputs={},
                smoke_test_sample=sample,
                **_fixed(),
            )

        per_endpoint.expand_kwargs(ENDPOINTS)

    assert sorted(dag.task_dict) == ["per_endpoint.evaluate", "per_endpoint.promote", "per_endpoint.retrain"]
    retrain, evaluate, promote = (
        dag.get_task(f"per_endpoint.{name}") for name in ("retrain", "evaluate", "promote")
    )
    assert retrain.upstream_task_ids == set()
    assert evaluate.upstream_task_ids == {retrain.task_id}
    assert promote.upstream_task_ids == {retrain.task_id, evaluate.task_id}
    assert (evaluate.training_result.operator, evaluate.training_result.key) == (retrain, "return_value")
    assert (promote.training_result.operator, promote.training_result.key) == (retrain, "return_value")
    assert (promote.gate_result.operator, promote.gate_result.key) == (evaluate, "return_value")
    # The group's arguments reach the tasks per endpoint: the second mapped instance reads the second dict.
    second = {"ti": SimpleNamespace(map_index=1)}
    assert retrain.global_parameters.resolve(second) == {"Data URI": "u-west"}
    assert evaluate.deployment_target.resolve(second) == "t-west"
    assert promote.deployment_target.resolve(second) == "t-west"
    assert promote.endpoint_name.resolve(second) == "west"
    assert promote.smoke_test_sample.resolve(second) == "c/west.csv"


def test_every_argument_reaches_its_task():
    tasks = _one_endpoint(
        smoke_test_sample="c/east.csv",
        smoke_test_drop_columns=["label"],
        deferrable=True,
        poll_interval=2,
        max_poll_interval=30,
        job_timeout=timedelta(minutes=30),
        wait_after_update=0,
        force=True,
        skip_promotion="{{ params.dry_run }}",
    )
    retrain, evaluate, promote = tasks
    assert [t.task_id for t in tasks] == ["retrain", "evaluate", "promote"]
    assert (retrain.azureml_conn_id, retrain.global_parameters) == ("train", {"Data URI": "u-east"})
    assert retrain.outputs == training_outputs("wasb", "models", "east")
    assert (retrain.deferrable, retrain.poll_interval, retrain.max_poll_interval) == (True, 2, 30)
    assert retrain.job_timeout == 1800
    assert (evaluate.wasb_conn_id, evaluate.deployment_target, evaluate.rules) == ("wasb", "t-east", RULES)
    assert (promote.training_conn_id, promote.wasb_conn_id, promote.azureml_management_conn_id) == (
        "train",
        "wasb",
        "management",
    )
    assert (promote.web_service_id, promote.endpoint_name) == ("{{ var.value.scoring_service }}", "east")
    assert (promote.deployment_target, promote.smoke_test_sample) == ("t-east", "c/east.csv")
    assert (promote.smoke_test_drop_columns, promote.wait_after_update) == (["label"], 0)
    assert (promote.force, promote.skip_promotion) == (True, "{{ params.dry_run }}")


def test_arguments_left_out_keep_the_operators_defaults_and_the_trigger_forms_flags():
    retrain, _, promote = _one_endpoint()
    assert (retrain.deferrable, retrain.poll_interval, retrain.max_poll_interval, retrain.job_timeout) == (
        False,
        15.0,
        None,
        None,
    )
    assert (promote.smoke_test_sample, promote.smoke_test_drop_columns) == (None, ("label", "target"))
    assert promote.wait_after_update == 30.0
    # The names of promotion_params' fields.
    assert sorted(promotion_params()) == ["force", "skip_promotion"]
    assert (promote.force, promote.skip_promotion) == ("{{ params.force }}", "{{ params.skip_promotion }}")


def test_further_operator_arguments_reach_their_task():
    retrain, evaluate, promote = _one_endpoint(
        retrain_kwargs={"pool": "aml_workspace", "cancel_on_kill": False},
        evaluate_kwargs={"on_reject": "fail"},
        promote_kwargs={"pool": "aml_workspace", "create_endpoint": False},
    )
    assert (retrain.pool, retrain.cancel_on_kill) == ("aml_workspace", False)
    assert evaluate.on_reject == "fail"
    assert (promote.pool, promote.create_endpoint) == ("aml_workspace", False)


@pytest.mark.parametrize(
    ("further", "clash"),
    [
        ({"retrain_kwargs": {"poll_interval": 1}}, "retrain_kwargs sets ['poll_interval']"),
        ({"evaluate_kwargs": {"task_id": "gate", "rules": []}}, "evaluate_kwargs sets ['rules', 'task_id']"),
        ({"promote_kwargs": {"gate_result": None}}, "promote_kwargs sets ['gate_result']"),
    ],
)
def test_further_arguments_may_not_set_what_the_factory_sets(further, clash):
    with pytest.raises(AzureMLConfigError, match=re.escape(clash)) as caught:
        _one_endpoint(**further)
    assert "use retrain_gate_promote's own parameters" in str(caught.value)
