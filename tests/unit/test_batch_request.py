"""The BES request body, blob references, and their resolution from ``wasb`` connections."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl

import pytest
from azure.core.credentials import AccessTokenInfo

from airflow_provider_amlretrain.api.bes import build_batch_request
from airflow_provider_amlretrain.api.references import BlobLocation, BlobReference
from airflow_provider_amlretrain.blob_references import resolve_blob_spec, resolve_blob_specs
from airflow_provider_amlretrain.blob_sas import BlobAccess, sas_lifetime
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


def _sas_fields(ref: BlobReference) -> dict[str, str]:
    assert ref.connection_string is None and ref.sas_token and ref.sas_token.startswith("?")
    return dict(parse_qsl(ref.sas_token[1:]))


def _assert_verifies(ref: BlobReference, account: str, key: str, relative: str) -> None:
    """The SAS's signature is the account key's HMAC over the string-to-sign of exactly this blob."""
    fields = _sas_fields(ref)
    canonical = f"/blob/{account}/{relative}"
    string_to_sign = "\n".join(
        [
            fields["sp"],
            fields.get("st", ""),
            fields["se"],
            canonical,
            fields.get("si", ""),
            fields.get("sip", ""),
            fields.get("spr", ""),
            fields["sv"],
            fields["sr"],
            fields.get("snapshot", ""),
            fields.get("ses", ""),
            fields.get("rscc", ""),
            fields.get("rscd", ""),
            fields.get("rsce", ""),
            fields.get("rscl", ""),
            fields.get("rsct", ""),
        ]
    )
    digest = hmac.new(base64.b64decode(key), string_to_sign.encode(), hashlib.sha256).digest()
    assert fields["sig"] == base64.b64encode(digest).decode()


@pytest.mark.parametrize(
    ("fields", "base"),
    [
        ({"extra": {"connection_string": CS}}, "https://acct.blob.core.windows.net/"),
        ({"extra": {"extra__wasb__connection_string": CS}}, "https://acct.blob.core.windows.net/"),
        ({"login": "acct", "password": ACCOUNT_KEY}, "https://acct.blob.core.windows.net/"),
        (
            {"login": "acct", "extra": {"shared_access_key": ACCOUNT_KEY}},
            "https://acct.blob.core.windows.net/",
        ),
        ({"login": "acct", "extra": {"account_key": ACCOUNT_KEY}}, "https://acct.blob.core.windows.net/"),
        (
            {"login": "acct", "password": ACCOUNT_KEY, "host": "http://127.0.0.1:10000/acct"},
            "http://127.0.0.1:10000/acct/",
        ),
    ],
    ids=[
        "connection-string",
        "prefixed-extra",
        "login-password",
        "shared-access-key",
        "account-key",
        "endpoint",
    ],
)
@pytest.mark.parametrize(("access", "permission"), [(BlobAccess.READ, "r"), (BlobAccess.WRITE, "cw")])
def test_account_key_forms_give_bes_a_blob_sas_never_the_key(monkeypatch, fields, base, access, permission):
    set_connection(monkeypatch, "blob_key", conn_type="wasb", **fields)
    before = datetime.now(UTC)

    ref = resolve_blob_spec(
        "output1",
        {"wasb_conn_id": "blob_key", "container": "models", "blob": "/runs/1/model.ilearner"},
        access,
        ttl_seconds=3600,
    )

    api = ref.to_api()
    assert set(api) == {"BaseLocation", "RelativeLocation", "SasBlobToken"}
    assert api["BaseLocation"] == base and api["RelativeLocation"] == "models/runs/1/model.ilearner"
    assert ACCOUNT_KEY not in repr(api) and "AccountKey" not in repr(api)
    sas = _sas_fields(ref)
    assert sas["sr"] == "b" and sas["sp"] == permission, "one blob, only what BES does with it"
    expiry = datetime.fromisoformat(sas["se"].replace("Z", "+00:00"))
    assert before + timedelta(seconds=3599) <= expiry <= datetime.now(UTC) + timedelta(seconds=3601)
    _assert_verifies(ref, "acct", ACCOUNT_KEY, "models/runs/1/model.ilearner")


def test_operator_lifetime_of_a_sas():
    assert sas_lifetime(None) == 24 * 3600
    assert sas_lifetime(600) == 600 + 3600


@pytest.mark.parametrize("token", [SAS_TOKEN, SAS_TOKEN.lstrip("?")])
def test_wasb_sas_token_extra_is_passed_on_as_given(monkeypatch, token):
    set_connection(monkeypatch, "blob_sas", conn_type="wasb", login="acct", extra={"sas_token": token})

    ref = resolve_blob_spec(
        "output1", {"wasb_conn_id": "blob_sas", "container": "models", "blob": "m.ilearner"}, BlobAccess.WRITE
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


@pytest.mark.parametrize(
    "extra",
    [
        {"sas_token": "https://acct.blob.core.windows.net" + SAS_TOKEN},
        {
            "connection_string": "BlobEndpoint=https://acct.blob.core.windows.net/;SharedAccessSignature="
            + SAS_TOKEN[1:]
        },
    ],
    ids=["sas-url", "sas-connection-string"],
)
def test_wasb_sas_url_and_sas_connection_string(monkeypatch, extra):
    set_connection(monkeypatch, "blob_sas_url", conn_type="wasb", extra=extra)

    ref = resolve_blob_spec(
        "output1", {"wasb_conn_id": "blob_sas_url", "container": "models", "blob": "m.ilearner"}
    )

    assert ref.base_location == "https://acct.blob.core.windows.net/"
    assert ref.sas_token == SAS_TOKEN and ref.connection_string is None


def fake_aad_token(monkeypatch) -> None:
    """Azure AD answers the service principal with a token (the identity platform is not called)."""
    expires = int(datetime.now(UTC).timestamp()) + 3600
    monkeypatch.setattr(
        "azure.identity.ClientSecretCredential.get_token_info",
        lambda self, *scopes, **kwargs: AccessTokenInfo("aad-token", expires),
    )


DELEGATION_KEY = base64.b64encode(b"user-delegation-key-bytes-32....").decode()


def test_azure_ad_connection_signs_with_a_user_delegation_key(monkeypatch):
    import responses

    set_connection(
        monkeypatch,
        "blob_aad",
        conn_type="wasb",
        login="client-id",
        password="client-secret",
        host="https://acct.blob.core.windows.net",
        extra={"tenant_id": "tenant"},
    )
    fake_aad_token(monkeypatch)
    key_xml = (
        "<?xml version='1.0' encoding='utf-8'?><UserDelegationKey><SignedOid>oid</SignedOid>"
        "<SignedTid>tid</SignedTid><SignedStart>2026-12-01T00:00:00Z</SignedStart>"
        "<SignedExpiry>2026-12-03T00:00:00Z</SignedExpiry><SignedService>b</SignedService>"
        f"<SignedVersion>2020-02-10</SignedVersion><Value>{DELEGATION_KEY}</Value></UserDelegationKey>"
    )
    with responses.RequestsMock() as rsps:
        rsps.add(
            "POST",
            "https://acct.blob.core.windows.net/",
            body=key_xml,
            status=200,
            content_type="application/xml",
        )
        ref = resolve_blob_spec(
            "input1", {"wasb_conn_id": "blob_aad", "path": "data/train.csv"}, BlobAccess.READ
        )
        assert len(rsps.calls) == 1
        assert "comp=userdelegationkey" in rsps.calls[0].request.url
        assert rsps.calls[0].request.headers["Authorization"] == "Bearer aad-token"

    sas = _sas_fields(ref)
    assert sas["sr"] == "b" and sas["sp"] == "r" and sas["skoid"] == "oid" and sas["sktid"] == "tid"
    assert "client-secret" not in repr(ref.to_api())


def test_azure_ad_without_delegation_rights_is_a_clear_error(monkeypatch):
    import responses

    set_connection(
        monkeypatch,
        "blob_aad",
        conn_type="wasb",
        login="client-id",
        password="client-secret",
        host="https://acct.blob.core.windows.net",
        extra={"tenant_id": "tenant"},
    )
    fake_aad_token(monkeypatch)
    with responses.RequestsMock() as rsps:
        rsps.add("POST", "https://acct.blob.core.windows.net/", status=403, body="")
        with pytest.raises(AzureMLConfigError, match="Storage Blob Delegator") as info:
            resolve_blob_spec("input1", {"wasb_conn_id": "blob_aad", "path": "data/train.csv"})
    assert "client-secret" not in str(info.value)


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
    assert refs["output2"] == EVAL and refs["output1"].relative_location == "c/m.ilearner"
    assert _sas_fields(refs["output1"])["sp"] == "r"
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


def test_a_minted_sas_is_masked_in_logs(monkeypatch):
    from airflow.providers.common.compat.sdk import redact

    set_connection(monkeypatch, "blob_key", conn_type="wasb", login="acct", password=ACCOUNT_KEY)

    ref = resolve_blob_spec("input1", {"wasb_conn_id": "blob_key", "path": "data/masked.csv"})

    assert ref.sas_token is not None
    signature = ref.sas_token.split("sig=", 1)[1].split("&", 1)[0]  # as sent, URL-encoded
    assert signature in str(ref.to_api())
    assert signature not in str(redact(f"request body {ref.to_api()}")), (
        "the SAS must be registered as a secret"
    )
