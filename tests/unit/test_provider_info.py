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
    assert set(conn["conn-fields"]) == {"job_page_url", "request_timeout", "max_retries", "retry_backoff"}


def test_versions_match_the_package():
    from airflow_provider_amlretrain import __version__

    assert INFO["versions"] == [__version__]
    assert INFO["package-name"] == "airflow-provider-amlretrain"


def _fields(conn_type: str) -> dict:
    (conn,) = [c for c in INFO["connection-types"] if c["connection-type"] == conn_type]
    return conn["conn-fields"]


def _says(field: dict, *words: str) -> bool:
    text = f"{field['label']} {field.get('description', '')}"
    return all(word in text for word in words)


@pytest.mark.parametrize(
    "conn_type", ["azureml_studio", "azureml_classic_management", "azureml_web_services"]
)
def test_every_extra_field_says_what_empty_means(conn_type):
    """The 3.3 UI shows no placeholders for extras: the label or description must name the default."""
    for name, field in _fields(conn_type).items():
        assert field.get("description"), f"{conn_type}.{name} has no description"
        text = f"{field['label']} {field['description']}"
        assert "default" in text.lower() or "empty" in text.lower(), f"{conn_type}.{name}: {text}"


def test_http_defaults_shown_are_the_ones_the_hooks_apply():
    from airflow_provider_amlretrain.hooks.http_settings import http_tuning

    timeout, policy = http_tuning("c", {})
    for conn_type in ("azureml_studio", "azureml_classic_management", "azureml_web_services"):
        fields = _fields(conn_type)
        assert _says(fields["request_timeout"], f"(default {timeout:g})", f"Empty: {timeout:g}.")
        assert _says(
            fields["max_retries"],
            f"(default {policy.max_attempts - 1})",
            f"Empty: {policy.max_attempts - 1};",
        )
        assert _says(
            fields["retry_backoff"],
            f"(default {policy.backoff_base:.1f})",
            f"Empty: {policy.backoff_base:.1f}.",
        )


def test_web_services_form_has_a_managed_identity_switch_the_hook_reads(monkeypatch):
    from azure.identity import ManagedIdentityCredential

    from airflow_provider_amlretrain.hooks.web_services import AzureMLWebServicesHook
    from tests.unit.support import set_connection

    fields = _fields("azureml_web_services")
    assert fields["use_managed_identity"]["schema"] == {"type": ["boolean", "null"]}
    assert _says(fields["use_managed_identity"], "(default off)")
    # What the UI stores for the switch (a JSON boolean) selects the managed identity.
    set_connection(
        monkeypatch,
        "mi_form",
        conn_type="azureml_web_services",
        extra={"subscription_id": "s", "resource_group": "r", "use_managed_identity": True},
    )
    assert isinstance(AzureMLWebServicesHook("mi_form").credential, ManagedIdentityCredential)


def test_airflow_loads_every_field_with_its_label_and_description():
    """What the API server sends the UI, as Airflow's own providers manager reads it from our provider info."""
    from airflow.providers_manager import ProvidersManager

    widgets = ProvidersManager().connection_form_widgets
    for conn in INFO["connection-types"]:
        for name, field in conn["conn-fields"].items():
            widget = widgets[f"extra__{conn['connection-type']}__{name}"].field
            assert widget["schema"]["title"] == field["label"]
            assert widget["description"] == field["description"]
            assert widget["value"] is None, f"{name}: a pre-filled value would be stored in the extra"
