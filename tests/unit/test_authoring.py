"""The DAG-authoring pieces: promotion Params the operators read strictly, and the model + evaluation outputs."""

from __future__ import annotations

from airflow_provider_amlretrain.authoring import RUN_FOLDER, promotion_params, training_outputs
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
