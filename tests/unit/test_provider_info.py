"""Provider metadata against Airflow's own schema, and every name in it importable."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import airflow
import jsonschema
import pytest

from airflow_provider_amlretrain.get_provider_info import get_provider_info

INFO = get_provider_info()


def test_validates_against_airflows_provider_info_schema():
    schema_path = Path(airflow.__file__).parent / "provider_info.schema.json"
    schema = json.loads(schema_path.read_text())

    jsonschema.validate(INFO, schema)


def _modules() -> list[str]:
    return [
        m
        for section in ("hooks", "operators", "sensors", "triggers")
        for entry in INFO.get(section, [])
        for m in entry["python-modules"]
    ]


def _classes() -> list[str]:
    return list(INFO.get("extra-links", [])) + [
        c["hook-class-name"] for c in INFO.get("connection-types", [])
    ]


@pytest.mark.parametrize("module", _modules())
def test_modules_import(module):
    importlib.import_module(module)


@pytest.mark.parametrize("path", _classes())
def test_classes_import(path):
    module, _, name = path.rpartition(".")
    assert isinstance(getattr(importlib.import_module(module), name), type)


def test_connection_type_matches_the_hook():
    (conn,) = [c for c in INFO["connection-types"] if c["connection-type"] == "azureml_studio"]
    module, _, name = conn["hook-class-name"].rpartition(".")
    hook = getattr(importlib.import_module(module), name)

    assert conn["connection-type"] == hook.conn_type
    assert conn["hook-name"] == hook.hook_name
    behaviour = hook.get_ui_field_behaviour()
    assert conn["ui-field-behaviour"]["hidden-fields"] == behaviour["hidden-fields"]
    assert conn["ui-field-behaviour"]["relabeling"] == behaviour["relabeling"]
    assert set(conn["conn-fields"]) == {"request_timeout", "max_retries", "retry_backoff"}


def test_versions_match_the_package():
    from airflow_provider_amlretrain import __version__

    assert INFO["versions"] == [__version__]
    assert INFO["package-name"] == "airflow-provider-amlretrain"
