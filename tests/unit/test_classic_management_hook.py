"""The classic management hook on ``responses``: connection, shared request path, endpoints, scoring, secrets."""

from __future__ import annotations

import pytest
import requests

from airflow_provider_amlretrain.api.references import BlobLocation
from airflow_provider_amlretrain.exceptions import (
    AzureMLApiError,
    AzureMLAuthError,
    AzureMLConfigError,
    AzureMLNotFoundError,
    AzureMLTransportError,
)
from airflow_provider_amlretrain.hooks.classic_management import AzureMLClassicManagementHook
from tests.unit.promotion_support import (
    ENDPOINT_KEY,
    MGMT_CONN,
    MGMT_URL,
    WS_TOKEN,
    assert_no_secrets,
    endpoint_body,
)
from tests.unit.support import set_connection

WS = f"{MGMT_URL}/workspaces/ws1/webservices/pred1"
EP = f"{WS}/endpoints/ep1"
SECRETS = (WS_TOKEN, ENDPOINT_KEY)


@pytest.fixture
def mgmt_conn(monkeypatch):
    set_connection(
        monkeypatch,
        MGMT_CONN,
        conn_type="azureml_classic_management",
        host=MGMT_URL,
        password=WS_TOKEN,
        extra={"workspace_id": "ws1", "retry_backoff": 0, "max_retries": 2, "request_timeout": 5},
    )
    return MGMT_CONN


@pytest.fixture
def mgmt(mgmt_conn, sleeps):
    hook = AzureMLClassicManagementHook(mgmt_conn)
    hook._sleep = sleeps
    return hook


def test_get_endpoint_sends_the_workspace_token(mgmt, rsps):
    rsps.add("GET", EP, json=endpoint_body())
    endpoint = mgmt.get_endpoint("pred1", "ep1")
    assert endpoint.primary_key == ENDPOINT_KEY
    assert rsps.calls[0].request.headers["Authorization"] == f"Bearer {WS_TOKEN}"
    assert rsps.calls[0].request.headers["Content-Type"] == "application/json"


def test_host_without_scheme_and_default_host(monkeypatch, rsps):
    set_connection(
        monkeypatch,
        "m2",
        conn_type="azureml_classic_management",
        host="europewest.management.azureml.net",
        password=WS_TOKEN,
        extra={"workspace_id": "ws1"},
    )
    assert (
        AzureMLClassicManagementHook("m2").api.base
        == "https://europewest.management.azureml.net/workspaces/ws1"
    )
    set_connection(
        monkeypatch,
        "m3",
        conn_type="azureml_classic_management",
        password=WS_TOKEN,
        extra={"workspace_id": "ws1"},
    )
    assert AzureMLClassicManagementHook("m3").api.base == f"{MGMT_URL}/workspaces/ws1"


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"password": WS_TOKEN, "extra": {}}, "no 'workspace_id' extra"),
        ({"extra": {"workspace_id": "ws1"}}, "no workspace token"),
        ({"password": WS_TOKEN, "extra": {"workspace_id": "ws1", "max_retries": "many"}}, "non-numeric"),
    ],
)
def test_connection_errors(monkeypatch, fields, match):
    set_connection(monkeypatch, "m4", conn_type="azureml_classic_management", host=MGMT_URL, **fields)
    with pytest.raises(AzureMLConfigError, match=match) as info:
        AzureMLClassicManagementHook("m4").http_settings()
    assert_no_secrets(str(info.value), secrets=SECRETS)


def test_retryable_answers_are_retried_with_the_shared_policy(mgmt, rsps, sleeps, log_text):
    rsps.add("GET", WS, status=503)
    rsps.add("GET", WS, status=429, headers={"Retry-After": "7"})
    rsps.add("GET", WS, json={"Id": "pred1", "DefaultEndpointName": "default"})
    assert mgmt.get_web_service("pred1")["DefaultEndpointName"] == "default"
    assert sleeps.delays == [0, 7]
    assert "retrying" in log_text()


def test_retries_give_up_after_max_retries(mgmt, rsps, sleeps):
    for _ in range(3):
        rsps.add("GET", WS, status=500, json={"error": {"code": "Internal", "message": "boom"}})
    with pytest.raises(AzureMLApiError, match="answered 500 Internal: boom") as info:
        mgmt.get_web_service("pred1")
    assert info.value.status_code == 500
    assert len(rsps.calls) == 3


def test_transport_errors_become_a_transport_error(mgmt, rsps):
    for _ in range(3):
        rsps.add("GET", WS, body=requests.ConnectionError(f"refused Bearer {WS_TOKEN}"))
    with pytest.raises(AzureMLTransportError, match="failed after 3 attempt") as info:
        mgmt.get_web_service("pred1")
    assert_no_secrets(str(info.value), secrets=SECRETS)


def test_not_found_endpoint_is_none_but_missing_service_raises(mgmt, rsps):
    rsps.add("GET", EP, status=404, json={"error": {"code": "EndpointNotFound", "message": "no ep1"}})
    assert mgmt.find_endpoint("pred1", "ep1") is None
    rsps.add(
        "GET",
        f"{WS}/endpoints/ep2",
        status=404,
        json={"error": {"code": "WebServiceNotFound", "message": "no pred1"}},
    )
    with pytest.raises(AzureMLNotFoundError, match="WebServiceNotFound") as info:
        mgmt.find_endpoint("pred1", "ep2")
    assert info.value.request_id is None


def test_errors_echoing_the_token_are_redacted(mgmt, rsps, log_text):
    rsps.add(
        "GET",
        EP,
        status=401,
        json={"error": {"code": "Unauthorized", "message": f"token {WS_TOKEN} is invalid"}},
        headers={"x-ms-request-id": "req-1"},
    )
    with pytest.raises(AzureMLAuthError) as info:
        mgmt.get_endpoint("pred1", "ep1")
    assert "x-ms-request-id req-1" in str(info.value)
    assert_no_secrets(str(info.value), info.value.service_message, log_text(), secrets=SECRETS)


def test_create_endpoint_puts_then_reads(mgmt, rsps):
    rsps.add("PUT", EP, status=201)
    rsps.add("GET", EP, json=endpoint_body())
    endpoint = mgmt.create_endpoint(
        "pred1", "ep1", description="d", throttle_level="Low", max_concurrent_calls=4
    )
    assert endpoint.name == "ep1"
    import json

    assert json.loads(rsps.calls[0].request.body) == {
        "Description": "d",
        "ThrottleLevel": "Low",
        "MaxConcurrentCalls": 4,
    }


@pytest.mark.parametrize("status", [200, 204])
def test_patch_accepts_empty_2xx(mgmt, rsps, status):
    rsps.add("PATCH", EP, status=status)
    mgmt.patch_trained_model(
        "pred1", "ep1", "M", BlobLocation("https://acct.blob.core.windows.net/", "m/v2.ilearner", "?sig=abc")
    )
    assert rsps.calls[0].request.method == "PATCH"


def test_list_endpoints_and_services(mgmt, rsps):
    rsps.add("GET", f"{WS}/endpoints", json=[endpoint_body(), endpoint_body(Name="default")])
    rsps.add("GET", f"{MGMT_URL}/workspaces/ws1/webservices", status=204)
    assert [e.name for e in mgmt.list_endpoints("pred1")] == ["ep1", "default"]
    assert mgmt.list_web_services() == []


def test_delete_endpoint(mgmt, rsps):
    rsps.add("DELETE", EP, status=204)
    assert mgmt.delete_endpoint("pred1", "ep1") is None
    # Exactly one DELETE of that endpoint, authorised with the workspace token (no retries).
    assert [(c.request.method, c.request.url) for c in rsps.calls] == [("DELETE", EP)]
    assert rsps.calls[0].request.headers["Authorization"] == f"Bearer {WS_TOKEN}"

    # An endpoint that is already gone is reported as not found, not silently accepted.
    rsps.add(
        "DELETE",
        f"{WS}/endpoints/gone",
        status=404,
        json={"error": {"code": "EndpointNotFound", "message": "Endpoint 'gone' was not found."}},
    )
    with pytest.raises(AzureMLNotFoundError, match="EndpointNotFound"):
        mgmt.delete_endpoint("pred1", "gone")

    # The service refuses to delete the default endpoint (400): the hook surfaces it, no retry.
    rsps.add(
        "DELETE",
        f"{WS}/endpoints/default",
        status=400,
        json={
            "error": {
                "code": "BadArgument",
                "message": "The default endpoint of a web service cannot be deleted.",
            }
        },
    )
    with pytest.raises(AzureMLApiError, match="default endpoint") as info:
        mgmt.delete_endpoint("pred1", "default")
    assert not isinstance(info.value, AzureMLNotFoundError)
    assert [c.request.url for c in rsps.calls] == [EP, f"{WS}/endpoints/gone", f"{WS}/endpoints/default"]


def test_score_uses_the_endpoint_key_and_redacts_it(mgmt, rsps, log_text):
    endpoint_data = endpoint_body()
    rsps.add("GET", EP, json=endpoint_data)
    endpoint = mgmt.get_endpoint("pred1", "ep1")
    url = f"{endpoint_data['ApiLocation']}/execute?api-version=2.0&details=true"
    rsps.add(
        "POST",
        url,
        json={
            "Results": {
                "output1": {"type": "table", "value": {"ColumnNames": ["Scored Labels"], "Values": [["1"]]}}
            }
        },
    )
    table = mgmt.score(endpoint, input_name="input1", columns=["age"], rows=[[39]])
    assert table.column("Scored Labels") == ["1"]
    assert rsps.calls[1].request.headers["Authorization"] == f"Bearer {ENDPOINT_KEY}"

    rsps.add(
        "POST",
        url,
        status=400,
        json={"error": {"code": "BadInput", "message": f"key {ENDPOINT_KEY} may not score"}},
    )
    with pytest.raises(AzureMLApiError) as info:
        mgmt.score(endpoint, input_name="input1", columns=["age"], rows=[[39]])
    assert_no_secrets(
        str(info.value), repr(info.value), info.value.service_message, log_text(), secrets=SECRETS
    )


def test_score_needs_a_key(mgmt):
    from airflow_provider_amlretrain.api.classic import ClassicEndpoint

    endpoint = ClassicEndpoint.from_api(endpoint_body(PrimaryKey=None))
    with pytest.raises(AzureMLConfigError, match="did not return a key"):
        mgmt.score(endpoint, input_name="input1", columns=[], rows=[])


@pytest.mark.parametrize("api_location", ["", "services/ep1"])
def test_score_needs_an_api_location_url(mgmt, rsps, api_location):
    from airflow_provider_amlretrain.api.classic import ClassicEndpoint
    from airflow_provider_amlretrain.exceptions import AzureMLResponseError

    endpoint = ClassicEndpoint.from_api(endpoint_body(ApiLocation=api_location))
    with pytest.raises(
        AzureMLResponseError, match=r"endpoint 'ep1' without an ApiLocation URL.*retry in a minute"
    ):
        mgmt.score(endpoint, input_name="input1", columns=["a"], rows=[["1"]])
    assert len(rsps.calls) == 0


def test_ui_field_behaviour():
    behaviour = AzureMLClassicManagementHook.get_ui_field_behaviour()
    assert behaviour["relabeling"]["password"] == "Workspace token"
    assert AzureMLClassicManagementHook.conn_type == "azureml_classic_management"
