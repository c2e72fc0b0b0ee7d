"""Unit tests: Airflow connection environment built from a stack.json document."""

from __future__ import annotations

import json
import shlex

from amlretrain_devstack.connections import airflow_connection_env, shell_exports

EMULATOR = "http://127.0.0.1:8123"
CS = "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=k;BlobEndpoint=http://127.0.0.1:1/devstoreaccount1;"


def _stack(services: object, **seed_extra: object) -> dict[str, object]:
    return {
        "azurite": {"connection_string": CS},
        "emulator": {"url": EMULATOR, "pid": 1},
        "seed": {"workspace_id": "ws1", "workspace_token": "wstoken", "services": services, **seed_extra},
    }


def test_wasb_connection_only_for_azurite_only_stack() -> None:
    env = airflow_connection_env({"azurite": {"connection_string": CS}, "emulator": None, "seed": None})
    assert list(env) == ["AIRFLOW_CONN_AZURITE_DEFAULT"]
    assert json.loads(env["AIRFLOW_CONN_AZURITE_DEFAULT"]) == {
        "conn_type": "wasb",
        "extra": {"connection_string": CS},
    }


def test_training_and_predictive_services_from_seed_shape() -> None:
    services = [
        {
            "name": "amlretrain-binary-training",
            "kind": "training",
            "task": "binary",
            "web_service_id": "w1",
            "api_key": "k1",
            "api_location": "/workspaces/ws1/services/s1",
        },
        {
            "name": "amlretrain-regression-training",
            "kind": "training",
            "task": "regression",
            "web_service_id": "w2",
            "api_key": "k2",
            "api_location": "workspaces/ws1/services/s2",
        },
        {
            "name": "amlretrain-binary-scoring",
            "kind": "predictive",
            "task": "binary",
            "api_key": "k3",
            "api_location": "/workspaces/ws1/services/s3",
            "web_service_id": "wsvc3",
        },
    ]
    env = airflow_connection_env(_stack(services))
    assert sorted(k for k in env if k.startswith("AIRFLOW_CONN_")) == [
        "AIRFLOW_CONN_AZUREML_MANAGEMENT",
        "AIRFLOW_CONN_AZUREML_PREDICT_BINARY",
        "AIRFLOW_CONN_AZUREML_TRAIN_BINARY",
        "AIRFLOW_CONN_AZUREML_TRAIN_REGRESSION",
        "AIRFLOW_CONN_AZURITE_DEFAULT",
    ]
    train = json.loads(env["AIRFLOW_CONN_AZUREML_TRAIN_BINARY"])
    assert train == {
        "conn_type": "azureml_studio",
        "host": f"{EMULATOR}/workspaces/ws1/services/s1",
        "password": "k1",
        "extra": {"job_page_url": f"{EMULATOR}/_emulator/ui/jobs/{{job_id}}"},
    }
    regression = json.loads(env["AIRFLOW_CONN_AZUREML_TRAIN_REGRESSION"])
    assert regression["host"] == f"{EMULATOR}/workspaces/ws1/services/s2"
    predict = json.loads(env["AIRFLOW_CONN_AZUREML_PREDICT_BINARY"])
    assert predict["password"] == "k3"
    assert predict["extra"] == {"job_page_url": f"{EMULATOR}/_emulator/ui/jobs/{{job_id}}"}
    assert env["AIRFLOW_VAR_AMLRETRAIN_BINARY_WEB_SERVICE_ID"] == "wsvc3"
    assert env["AIRFLOW_VAR_AMLRETRAIN_BINARY_TRAINING_WEB_SERVICE_ID"] == "w1"
    assert json.loads(env["AIRFLOW_CONN_AZUREML_MANAGEMENT"]) == {
        "conn_type": "azureml_classic_management",
        "host": EMULATOR,
        "password": "wstoken",
        "extra": {"workspace_id": "ws1"},
    }


def test_services_without_task_use_their_name() -> None:
    env = airflow_connection_env(_stack([{"name": "My Service", "api_key": "k", "api_location": "/x"}]))
    assert json.loads(env["AIRFLOW_CONN_AZUREML_MY_SERVICE"])["extra"] == {
        "job_page_url": f"{EMULATOR}/_emulator/ui/jobs/{{job_id}}"
    }


def test_services_keyed_by_name_and_explicit_conn_id() -> None:
    services = {"train_binary": {"api_key": "k1", "api_location": "/a", "conn_id": "custom_conn"}}
    env = airflow_connection_env(_stack(services))
    assert json.loads(env["AIRFLOW_CONN_CUSTOM_CONN"])["host"] == f"{EMULATOR}/a"


def test_shell_exports_quote_json() -> None:
    env = {"AIRFLOW_CONN_X": json.dumps({"password": "it's $secret"})}
    line = shell_exports(env).strip()
    assert line.startswith("export AIRFLOW_CONN_X=")
    assert json.loads(shlex.split(line.removeprefix("export AIRFLOW_CONN_X="))[0]) == {
        "password": "it's $secret"
    }
