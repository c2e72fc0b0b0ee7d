"""The BES request body, blob references, and their resolution from ``wasb`` connections."""

from __future__ import annotations

import pytest

from airflow_provider_amlretrain.api.bes import build_batch_request
from airflow_provider_amlretrain.api.references import BlobLocation, BlobReference
from airflow_provider_amlretrain.blob_references import resolve_blob_spec, resolve_blob_specs
from airflow_provider_amlretrain.exceptions import AzureMLConfigError, AzureMLResponseError
from tests.unit.support import ACCOUNT_KEY, SAS_TOKEN, set_connection

CS = f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={ACCOUNT_KEY};EndpointSuffix=core.windows.net"
MODEL = BlobReference(relative_location="models/runs/x/model.ilearner", connection_string=CS)
EVAL = BlobReference(relative_location="models/runs/x/evaluation.csv", connection_string=CS)
TRAIN = BlobReference(relative_location="data/train.csv", connection_string=CS)


# -- build_batch_request --------------------------------------------------------------------------


def test_full_request_shape():
    body = build_batch_request(
        inputs={"input1": TRAIN},
        outputs={"output1": MODEL, "output2": EVAL},
        global_parameters={"Data URI": "https://acct.blob.core.windows.net/c/data001.csv"},
    )

    assert body == {
        "Inputs": {"input1": {"ConnectionString": CS, "RelativeLocation": "data/train.csv"}},
        "Outputs": {
            "output1": {"ConnectionString": CS, "RelativeLocation": "models/runs/x/model.ilearner"},
            "output2": {"ConnectionString": CS, "RelativeLocation": "models/runs/x/evaluation.csv"},
        },
        "GlobalParameters": {"Data URI": "https://acct.blob.core.windows.net/c/data001.csv"},
    }


@pytest.mark.parametrize("inputs", [None, {}])
def test_inputs_are_left_out_when_there_are_none(inputs):
    body = build_batch_request(inputs=inputs, outputs={"output1": MODEL})

    assert "Inputs" not in body
    assert "Input" not in body
    assert body["GlobalParameters"] == {}
    assert "AzureBatchPoolId" not in body


@pytest.mark.parametrize("outputs", [None, {}])
def test_outputs_are_required(outputs):
    with pytest.raises(AzureMLConfigError, match="at least one output"):
        build_batch_request(inputs={"input1": TRAIN}, outputs=outputs)


def test_global_parameter_scalars_are_kept_as_given():
    params = {"Data URI": "https://x/c/y.csv", "Trees": 8, "Rate": 0.25, "Normalize": True, "Seed": None}

    body = build_batch_request(inputs=None, outputs={"output1": MODEL}, global_parameters=params)

    assert body["GlobalParameters"] == params
    assert type(body["GlobalParameters"]["Trees"]) is int
    assert body["GlobalParameters"]["Normalize"] is True


@pytest.mark.parametrize("value", [["a", "b"], {"nested": 1}, b"bytes", object()])
def test_global_parameters_must_be_scalars(value):
    with pytest.raises(AzureMLConfigError, match="'Bad Param'"):
        build_batch_request(inputs=None, outputs={"output1": MODEL}, global_parameters={"Bad Param": value})


def test_parameter_names_keep_their_case():
    body = build_batch_request(
        inputs=None, outputs={"output1": MODEL}, global_parameters={"data uri": "a", "Data URI": "b"}
    )
    assert body["GlobalParameters"] == {"data uri": "a", "Data URI": "b"}


def test_batch_pool_id():
    body = build_batch_request(inputs=None, outputs={"output1": MODEL}, azure_batch_pool_id="pool-7")
    assert body["AzureBatchPoolId"] == "pool-7"


# -- BlobReference / BlobLocation -------------------------------------------------------------------------


def test_blob_reference_connection_string_form():
    assert MODEL.to_api() == {"ConnectionString": CS, "RelativeLocation": "models/runs/x/model.ilearner"}
    assert (MODEL.container, MODEL.blob_name) == ("models", "runs/x/model.ilearner")


def test_blob_reference_sas_form():
    ref = BlobReference(
        relative_location="models/runs/x/model.ilearner",
        base_location="https://acct.blob.core.windows.net/",
        sas_token=SAS_TOKEN,
    )

    assert ref.to_api() == {
        "BaseLocation": "https://acct.blob.core.windows.net/",
        "RelativeLocation": "models/runs/x/model.ilearner",
        "SasBlobToken": SAS_TOKEN,
    }


@pytest.mark.parametrize(
    "kwargs",
    [
        {"relative_location": "", "connection_string": CS},
        {"relative_location": "no-container", "connection_string": CS},
        {"relative_location": "/container/", "connection_string": CS},
        {"relative_location": "c/x.csv"},
        {"relative_location": "c/x.csv", "base_location": "https://acct.blob.core.windows.net/"},
        {"relative_location": "c/x.csv", "sas_token": SAS_TOKEN},
    ],
)
def test_blob_reference_validation(kwargs):
    with pytest.raises(AzureMLConfigError):
        BlobReference(**kwargs)


def test_blob_location_from_api_and_uri():
    loc = BlobLocation.from_api(
        "output1",
        {
            "BaseLocation": "https://acct.blob.core.windows.net",
            "RelativeLocation": "/c/runs/m.ilearner",
            "SasBlobToken": SAS_TOKEN,
        },
    )

    assert loc.uri == "https://acct.blob.core.windows.net/c/runs/m.ilearner"
    assert loc.signed_url == loc.uri + SAS_TOKEN
    assert (loc.container, loc.blob_name) == ("c", "runs/m.ilearner")
    assert loc.to_summary() == {
        "base_location": "https://acct.blob.core.windows.net",
        "relative_location": "/c/runs/m.ilearner",
        "uri": "https://acct.blob.core.windows.net/c/runs/m.ilearner",
    }


@pytest.mark.parametrize(
    "data",
    [
        "https://x/c/y",
        None,
        {"RelativeLocation": "c/y"},
        {"BaseLocation": "https://x/"},
        {"BaseLocation": "https://x/", "RelativeLocation": ""},
    ],
)
def test_blob_location_from_api_refuses_malformed_results(data):
    with pytest.raises(AzureMLResponseError, match="output1"):
        BlobLocation.from_api("output1", data)


# -- resolution from wasb connections ------------------------------------------------------------------


def test_wasb_connection_string_extra(monkeypatch):
    set_connection(monkeypatch, "blob_cs", conn_type="wasb", extra={"connection_string": CS})

    ref = resolve_blob_spec(
        "output1", {"wasb_conn_id": "blob_cs", "container": "models", "blob": "/runs/1/model.ilearner"}
    )

    assert ref.to_api() == {"ConnectionString": CS, "RelativeLocation": "models/runs/1/model.ilearner"}


def test_wasb_prefixed_connection_string_extra_and_path(monkeypatch):
    set_connection(monkeypatch, "blob_old", conn_type="wasb", extra={"extra__wasb__connection_string": CS})

    ref = resolve_blob_spec("input1", {"wasb_conn_id": "blob_old", "path": "/data/train.csv"})

    assert ref.to_api() == {"ConnectionString": CS, "RelativeLocation": "data/train.csv"}


def test_wasb_account_name_and_key(monkeypatch):
    set_connection(monkeypatch, "blob_key", conn_type="wasb", login="acct", password=ACCOUNT_KEY)

    ref = resolve_blob_spec(
        "output1", {"wasb_conn_id": "blob_key", "container": "models", "blob": "m.ilearner"}
    )

    assert ref.connection_string == (
        f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={ACCOUNT_KEY};EndpointSuffix=core.windows.net;"
    )
    assert ref.relative_location == "models/m.ilearner"


def test_wasb_account_key_with_custom_endpoint(monkeypatch):
    set_connection(
        monkeypatch,
        "blob_azurite",
        conn_type="wasb",
        login="devstoreaccount1",
        password=ACCOUNT_KEY,
        host="http://127.0.0.1:10000/devstoreaccount1/",
    )

    ref = resolve_blob_spec(
        "output1", {"wasb_conn_id": "blob_azurite", "container": "c", "blob": "m.ilearner"}
    )

    assert "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;" in ref.connection_string
    assert "EndpointSuffix" not in ref.connection_string


@pytest.mark.parametrize("token", [SAS_TOKEN, SAS_TOKEN.lstrip("?")])
def test_wasb_sas_token_extra(monkeypatch, token):
    set_connection(monkeypatch, "blob_sas", conn_type="wasb", login="acct", extra={"sas_token": token})

    ref = resolve_blob_spec(
        "output1", {"wasb_conn_id": "blob_sas", "container": "models", "blob": "m.ilearner"}
    )

    assert ref.to_api() == {
        "BaseLocation": "https://acct.blob.core.windows.net/",
        "RelativeLocation": "models/m.ilearner",
        "SasBlobToken": SAS_TOKEN,
    }


def test_wasb_sas_token_without_an_account_is_a_clear_error(monkeypatch):
    set_connection(monkeypatch, "blob_sas_only", conn_type="wasb", extra={"sas_token": SAS_TOKEN})

    with pytest.raises(
        AzureMLConfigError, match=r"'blob_sas_only' has a SAS token but no account: set login"
    ) as info:
        resolve_blob_spec(
            "output1", {"wasb_conn_id": "blob_sas_only", "container": "models", "blob": "m.ilearner"}
        )
    assert "None" not in str(info.value) and SAS_TOKEN not in str(info.value)


def test_wasb_sas_url_extra(monkeypatch):
    set_connection(
        monkeypatch,
        "blob_sas_url",
        conn_type="wasb",
        extra={"sas_token": "https://acct.blob.core.windows.net" + SAS_TOKEN},
    )

    ref = resolve_blob_spec(
        "output1", {"wasb_conn_id": "blob_sas_url", "container": "models", "blob": "m.ilearner"}
    )

    assert ref.base_location == "https://acct.blob.core.windows.net/"
    assert ref.sas_token == SAS_TOKEN


@pytest.mark.parametrize(
    "fields",
    [
        {"login": "client-id", "password": "client-secret", "extra": {"tenant_id": "tenant"}},
        {"login": "client-id", "password": "client-secret", "extra": {"extra__wasb__tenant_id": "tenant"}},
        {"host": "https://acct.blob.core.windows.net", "extra": {"managed_identity_client_id": "mi"}},
        {"login": "acct"},
    ],
)
def test_azure_ad_only_wasb_connection_is_a_clear_error(monkeypatch, fields):
    set_connection(monkeypatch, "blob_aad", conn_type="wasb", **fields)

    with pytest.raises(AzureMLConfigError) as info:
        resolve_blob_spec(
            "output1", {"wasb_conn_id": "blob_aad", "container": "models", "blob": "m.ilearner"}
        )

    message = str(info.value)
    assert "'blob_aad'" in message and "'output1'" in message
    assert "connection_string" in message and "sas_token" in message and "account key" in message
    assert "client-secret" not in message


def test_raw_sas_spec(monkeypatch):
    ref = resolve_blob_spec(
        "output1",
        {
            "base_location": "https://acct.blob.core.windows.net",
            "relative_location": "/c/m.ilearner",
            "sas_token": SAS_TOKEN.lstrip("?"),
        },
    )

    assert ref.to_api() == {
        "BaseLocation": "https://acct.blob.core.windows.net/",
        "RelativeLocation": "c/m.ilearner",
        "SasBlobToken": SAS_TOKEN,
    }


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("models/m.ilearner", "must be a dict"),
        ({"container": "c", "blob": "b"}, "has keys"),
        ({"base_location": "https://x/", "relative_location": "c/b"}, "has keys"),
        ({"wasb_conn_id": "blob_cs", "container": "c"}, "needs 'container' and 'blob'"),
    ],
)
def test_bad_specs(monkeypatch, spec, match):
    set_connection(monkeypatch, "blob_cs", conn_type="wasb", extra={"connection_string": CS})

    with pytest.raises(AzureMLConfigError, match=match):
        resolve_blob_spec("output1", spec)


def test_resolve_blob_specs(monkeypatch):
    set_connection(monkeypatch, "blob_cs", conn_type="wasb", extra={"connection_string": CS})

    assert resolve_blob_specs(None) == {}
    refs = resolve_blob_specs(
        {"output1": {"wasb_conn_id": "blob_cs", "path": "c/m.ilearner"}, "output2": EVAL}
    )
    assert refs == {"output1": BlobReference("c/m.ilearner", connection_string=CS), "output2": EVAL}
    with pytest.raises(AzureMLConfigError):
        resolve_blob_specs([("output1", EVAL)])


def test_unknown_wasb_connection_fails(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_NO_SUCH_BLOB", raising=False)
    with pytest.raises(Exception, match="no_such_blob"):
        resolve_blob_spec("output1", {"wasb_conn_id": "no_such_blob", "path": "c/m.ilearner"})


@pytest.mark.parametrize("params", ["{'Trees': 8}", ["Trees", 8]])
def test_global_parameters_must_be_a_mapping(params):
    with pytest.raises(
        AzureMLConfigError, match=r"global_parameters must map parameter names to values, not (str|list)"
    ):
        build_batch_request(inputs=None, outputs={"output1": MODEL}, global_parameters=params)
