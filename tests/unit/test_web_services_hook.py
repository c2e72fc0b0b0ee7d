"""The ARM web services hook on ``responses`` with a fake token credential: LRO polling, keys, scoring, secrets."""

from __future__ import annotations

import json

import pytest

from airflow_provider_amlretrain.api.arm import ARM_SCOPE
from airflow_provider_amlretrain.exceptions import AzureMLApiError, AzureMLConfigError
from airflow_provider_amlretrain.hooks.web_services import AzureMLWebServicesHook
from tests.unit.promotion_support import (
    ARM_CONN,
    ARM_TOKEN,
    ARM_URL,
    SECONDARY_KEY,
    SERVICE_KEY,
    FakeCredential,
    assert_no_secrets,
)
from tests.unit.support import set_connection

CLIENT_SECRET = "clientSECRET-s3cr3t-4321"
SVC = f"{ARM_URL}/subscriptions/sub1/resourceGroups/rg1/providers/Microsoft.MachineLearning/webServices/svc1"
SVC_URL = f"{SVC}?api-version=2017-01-01"
KEYS_URL = f"{SVC}/listKeys?api-version=2017-01-01"
OP_URL = f"{ARM_URL}/subscriptions/sub1/providers/Microsoft.MachineLearning/operationsStatus/op1?api-version=2017-01-01"
EXEC = "https://ussouthcentral.services.azureml.net"
SECRETS = (ARM_TOKEN, SERVICE_KEY, SECONDARY_KEY, CLIENT_SECRET)
MODEL = "https://acct.blob.core.windows.net/models/v1/model.ilearner"


def web_service(uri: str = MODEL, state: str = "Succeeded", **properties):
    return {
        "id": "/subscriptions/sub1/resourceGroups/rg1/providers/Microsoft.MachineLearning/webServices/svc1",
        "name": "svc1",
        "location": "South Central US",
        "type": "Microsoft.MachineLearning/webServices",
        "tags": {},
        "properties": {
            "title": "svc1",
            "provisioningState": state,
            "packageType": "Graph",
            "assets": {
                "asset3": {
                    "name": "Retrain Sample [trained model]",
                    "type": "Resource",
                    "locationInfo": {"uri": uri},
                }
            },
            **properties,
        },
    }


@pytest.fixture
def arm_conn(monkeypatch):
    set_connection(
        monkeypatch,
        ARM_CONN,
        conn_type="azureml_web_services",
        host=ARM_URL,
        login="client-id",
        password=CLIENT_SECRET,
        extra={
            "subscription_id": "sub1",
            "resource_group": "rg1",
            "execution_url": EXEC,
            "retry_backoff": 0,
            "max_retries": 1,
        },
    )
    return ARM_CONN


@pytest.fixture
def credential():
    return FakeCredential()


@pytest.fixture
def arm(arm_conn, sleeps, credential):
    hook = AzureMLWebServicesHook(arm_conn)
    hook.credential = credential  # the cached_property's name: no azure-identity involved
    hook._sleep = sleeps
    return hook


def test_get_sends_an_arm_bearer_token(arm, rsps, credential):
    rsps.add("GET", SVC_URL, json=web_service())
    assert arm.get_web_service("svc1")["name"] == "svc1"
    assert rsps.calls[0].request.headers["Authorization"] == f"Bearer {ARM_TOKEN}"
    assert credential.scopes == [ARM_SCOPE]


@pytest.mark.parametrize(
    ("extra", "match"),
    [({"resource_group": "rg1"}, r"\['subscription_id'\]"), ({}, r"\['subscription_id', 'resource_group'\]")],
)
def test_missing_extras(monkeypatch, extra, match):
    set_connection(monkeypatch, "arm2", conn_type="azureml_web_services", extra=extra)
    with pytest.raises(AzureMLConfigError, match=match):
        AzureMLWebServicesHook("arm2").http_settings()


def test_default_arm_url(monkeypatch):
    set_connection(
        monkeypatch,
        "arm3",
        conn_type="azureml_web_services",
        extra={"subscription_id": "s", "resource_group": "r"},
    )
    assert AzureMLWebServicesHook("arm3").api.base.startswith("https://management.azure.com/subscriptions/s/")


def test_credential_kind_follows_the_connection(monkeypatch, arm_conn):
    pytest.importorskip("azure.identity")
    from azure.identity import ClientSecretCredential, ManagedIdentityCredential

    set_connection(
        monkeypatch,
        "sp",
        conn_type="azureml_web_services",
        login="cid",
        password=CLIENT_SECRET,
        extra={"subscription_id": "s", "resource_group": "r", "tenant_id": "t"},
    )
    assert isinstance(AzureMLWebServicesHook("sp").credential, ClientSecretCredential)
    set_connection(
        monkeypatch,
        "mi",
        conn_type="azureml_web_services",
        extra={"subscription_id": "s", "resource_group": "r", "use_managed_identity": "true"},
    )
    assert isinstance(AzureMLWebServicesHook("mi").credential, ManagedIdentityCredential)


@pytest.mark.parametrize(
    ("extra", "managed"), [(True, True), ("False", False), (False, False), (None, False)]
)
def test_use_managed_identity_is_read_strictly(monkeypatch, extra, managed):
    from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

    set_connection(
        monkeypatch,
        "mi",
        conn_type="azureml_web_services",
        extra={"subscription_id": "s", "resource_group": "r", "use_managed_identity": extra},
    )
    expected = ManagedIdentityCredential if managed else DefaultAzureCredential
    assert isinstance(AzureMLWebServicesHook("mi").credential, expected)


def test_unclear_use_managed_identity_is_refused(monkeypatch):
    set_connection(
        monkeypatch,
        "mi",
        conn_type="azureml_web_services",
        extra={"subscription_id": "s", "resource_group": "r", "use_managed_identity": "sometimes"},
    )
    with pytest.raises(
        AzureMLConfigError,
        match="Connection 'mi': extra use_managed_identity must be true or false, not 'sometimes'",
    ):
        _ = AzureMLWebServicesHook("mi").credential


def test_update_polls_the_async_operation_until_succeeded(arm, rsps, sleeps):
    rsps.add("PATCH", SVC_URL, status=202, headers={"Azure-AsyncOperation": OP_URL})
    rsps.add("GET", OP_URL, json={"status": "InProgress", "percentComplete": 10})
    rsps.add("GET", OP_URL, json={"status": "InProgress", "percentComplete": 60})
    rsps.add("GET", OP_URL, json={"status": "Succeeded"})
    rsps.add("GET", SVC_URL, json=web_service("https://acct.blob.core.windows.net/models/v2/model.ilearner"))
    definition = web_service()
    updated = arm.update_web_service("svc1", definition, poll_interval=3)
    assert updated["properties"]["assets"]["asset3"]["locationInfo"]["uri"].endswith("v2/model.ilearner")
    assert sleeps.delays == [3, 3]
    sent = json.loads(rsps.calls[0].request.body)
    assert set(sent) == {"location", "tags", "properties"}
    assert [c.request.method for c in rsps.calls] == ["PATCH", "GET", "GET", "GET", "GET"]


@pytest.mark.parametrize("field", ["status", "provisioningState"])
def test_failed_provisioning_raises_with_the_service_message(arm, rsps, field, log_text):
    rsps.add("PATCH", SVC_URL, status=202, headers={"Azure-AsyncOperation": OP_URL})
    rsps.add(
        "GET",
        OP_URL,
        json={
            field: "Failed",
            "errorInfo": {"code": "BadModel", "message": "The model blob cannot be read."},
        },
    )
    with pytest.raises(
        AzureMLApiError, match=r"ended Failed: The model blob cannot be read.*keeps its previous definition"
    ):
        arm.update_web_service("svc1", web_service())


def test_failed_provisioning_message_is_redacted(arm, rsps, log_text):
    echo = f"request with Authorization: Bearer {ARM_TOKEN} and key {SERVICE_KEY} failed"
    rsps.add("PATCH", SVC_URL, status=202, headers={"Azure-AsyncOperation": OP_URL})
    rsps.add("GET", OP_URL, json={"status": "Failed", "errorInfo": {"message": echo}})
    with pytest.raises(AzureMLApiError) as info:
        arm.update_web_service("svc1", web_service())
    assert_no_secrets(str(info.value), log_text(), secrets=(ARM_TOKEN,))


def test_keys_read_through_list_keys_are_scrubbed_from_later_messages(arm, rsps, log_text):
    rsps.add("GET", KEYS_URL, json={"primary": SERVICE_KEY, "secondary": SECONDARY_KEY})
    echo = f"service keys {SERVICE_KEY} / {SECONDARY_KEY} are not valid for this model"
    rsps.add("PATCH", SVC_URL, status=202, headers={"Azure-AsyncOperation": OP_URL})
    rsps.add("GET", OP_URL, json={"status": "Failed", "errorInfo": {"message": echo}})

    assert arm.list_keys("svc1")["primary"] == SERVICE_KEY
    with pytest.raises(
        AzureMLApiError, match=r"ended Failed: service keys \*\*\* / \*\*\* are not valid"
    ) as info:
        arm.update_web_service("svc1", web_service())
    assert_no_secrets(str(info.value), log_text(), secrets=SECRETS)


def test_without_async_header_the_definition_state_is_polled(arm, rsps, sleeps):
    rsps.add("PATCH", SVC_URL, status=200, json=web_service(state="Provisioning"))
    rsps.add("GET", SVC_URL, json=web_service(state="Provisioning"))
    rsps.add("GET", SVC_URL, json=web_service(state="Succeeded"))
    assert (
        arm.update_web_service("svc1", web_service(), poll_interval=1)["properties"]["provisioningState"]
        == "Succeeded"
    )
    assert sleeps.delays == [1]


def test_provisioning_that_does_not_end_times_out(arm, rsps):
    rsps.add("PATCH", SVC_URL, status=202, headers={"Azure-AsyncOperation": OP_URL})
    rsps.add("GET", OP_URL, json={"status": "InProgress"})
    with pytest.raises(AzureMLApiError, match=r"did not finish within 0 s \(last status InProgress\)"):
        arm.update_web_service("svc1", web_service(), timeout=0)


def test_score_uses_the_primary_key_from_list_keys_and_redacts(arm, rsps, log_text):
    rsps.add("GET", KEYS_URL, json={"primary": SERVICE_KEY, "secondary": SECONDARY_KEY})
    rsps.add(
        "GET",
        SVC_URL,
        json=web_service(swaggerLocation=f"{EXEC}/subscriptions/sub1/services/abc/swagger.json?x=1"),
    )
    score_url = f"{EXEC}/subscriptions/sub1/services/abc/execute?api-version=2.0&details=true"
    rsps.add(
        "POST",
        score_url,
        json={
            "Results": {
                "output1": {"type": "table", "value": {"ColumnNames": ["Scored Labels"], "Values": [["1"]]}}
            }
        },
    )
    assert arm.score("svc1", input_name="input1", columns=["a"], rows=[["1"]]).values == [["1"]]
    assert rsps.calls[2].request.headers["Authorization"] == f"Bearer {SERVICE_KEY}"

    rsps.add("POST", score_url, status=401, body=f"key {SERVICE_KEY} rejected, token {ARM_TOKEN}")
    with pytest.raises(AzureMLApiError) as info:
        arm.score("svc1", input_name="input1", columns=["a"], rows=[["1"]])
    assert_no_secrets(
        str(info.value), repr(info.value), info.value.service_message, log_text(), secrets=SECRETS
    )


def test_score_needs_a_primary_key(arm, rsps):
    rsps.add("GET", KEYS_URL, json={"secondary": SECONDARY_KEY})
    with pytest.raises(AzureMLConfigError, match="no primary key") as info:
        arm.score("svc1", input_name="input1", columns=["a"], rows=[["1"]])
    assert_no_secrets(str(info.value), secrets=SECRETS)


def test_execution_location(arm, monkeypatch):
    assert arm.execution_location("svc1", web_service()) == f"{EXEC}/subscriptions/sub1/services/svc1"
    swagger = web_service(swaggerLocation="https://x.azureml.net/subscriptions/s/services/id9/swagger.json")
    assert arm.execution_location("svc1", swagger) == "https://x.azureml.net/subscriptions/s/services/id9"
    set_connection(
        monkeypatch,
        "arm4",
        conn_type="azureml_web_services",
        extra={"subscription_id": "s", "resource_group": "r"},
    )
    hook = AzureMLWebServicesHook("arm4")
    with pytest.raises(AzureMLConfigError, match="no 'execution_url' extra"):
        hook.execution_location("svc1", web_service())


def test_arm_errors_never_show_the_token(arm, rsps, log_text):
    rsps.add(
        "GET",
        SVC_URL,
        status=403,
        json={
            "error": {
                "code": "AuthorizationFailed",
                "message": f"token {ARM_TOKEN} lacks access; secret {CLIENT_SECRET}",
            }
        },
    )
    with pytest.raises(AzureMLApiError) as info:
        arm.get_web_service("svc1")
    assert info.value.status_code == 403
    assert_no_secrets(str(info.value), info.value.service_message, log_text(), secrets=SECRETS)


def test_update_through_armpolling_reads_the_ml_provisioning_state_field(arm, rsps, sleeps):
    # The webServices spec's AsyncOperationStatus names its status provisioningState (no generic 'status').
    rsps.add(
        "PATCH",
        SVC_URL,
        status=200,
        json=web_service(state="Provisioning"),
        headers={"Azure-AsyncOperation": OP_URL},
    )
    rsps.add("GET", OP_URL, json={"provisioningState": "Provisioning", "percentComplete": 50})
    rsps.add("GET", OP_URL, json={"provisioningState": "Succeeded"})
    rsps.add("GET", SVC_URL, json=web_service("https://acct.blob.core.windows.net/models/v2/model.ilearner"))

    updated = arm.update_web_service("svc1", web_service(), poll_interval=2)

    assert updated["properties"]["assets"]["asset3"]["locationInfo"]["uri"].endswith("v2/model.ilearner")
    assert sleeps.delays == [2]
    assert [c.request.url for c in rsps.calls] == [SVC_URL, OP_URL, OP_URL, SVC_URL]
    assert all(c.request.headers["Authorization"] == f"Bearer {ARM_TOKEN}" for c in rsps.calls)


def test_an_error_answer_while_polling_is_a_typed_secret_free_error(arm, rsps, log_text):
    from airflow_provider_amlretrain.exceptions import AzureMLNotFoundError

    rsps.add("PATCH", SVC_URL, status=202, headers={"Azure-AsyncOperation": OP_URL})
    rsps.add(
        "GET",
        OP_URL,
        status=404,
        json={"error": {"code": "OperationNotFound", "message": f"no op for {ARM_TOKEN}"}},
    )

    with pytest.raises(
        AzureMLNotFoundError, match="poll the update of web service svc1.*404 OperationNotFound"
    ) as info:
        arm.update_web_service("svc1", web_service())
    assert_no_secrets(str(info.value), log_text(), secrets=SECRETS)


def test_an_operation_status_without_status_is_a_response_error(arm, rsps):
    rsps.add("PATCH", SVC_URL, status=202, headers={"Azure-AsyncOperation": OP_URL})
    rsps.add("GET", OP_URL, json={"percentComplete": 10})

    with pytest.raises(AzureMLApiError, match="without status"):
        arm.update_web_service("svc1", web_service())


def test_tokens_go_over_https_only_except_to_a_loopback_emulator(monkeypatch):
    set_connection(
        monkeypatch,
        "arm_http",
        conn_type="azureml_web_services",
        host="http://management.example.com",
        extra={"subscription_id": "s", "resource_group": "r"},
    )
    with pytest.raises(AzureMLConfigError, match="only sent over https"):
        AzureMLWebServicesHook("arm_http").api  # noqa: B018
    set_connection(
        monkeypatch,
        "arm_local",
        conn_type="azureml_web_services",
        host="http://127.0.0.1:8080",
        extra={"subscription_id": "s", "resource_group": "r"},
    )
    assert AzureMLWebServicesHook("arm_local").api.base.startswith("http://127.0.0.1:8080/")


@pytest.mark.parametrize("flag", [True, "true"])
def test_tokens_go_over_plain_http_to_an_emulator_in_another_container_only_when_the_extra_says_so(
    monkeypatch, rsps, credential, flag
):
    compose = "http://emulator:8080"  # docker-compose: the emulator is another container, not loopback
    extra = {"subscription_id": "sub1", "resource_group": "rg1", "use_managed_identity": True}
    set_connection(monkeypatch, "arm_compose", conn_type="azureml_web_services", host=compose, extra=extra)
    with pytest.raises(AzureMLConfigError, match="with extra http_emulator: true"):
        AzureMLWebServicesHook("arm_compose").api  # noqa: B018
    set_connection(
        monkeypatch,
        "arm_compose",
        conn_type="azureml_web_services",
        host=compose,
        extra={**extra, "http_emulator": flag},
    )
    hook = AzureMLWebServicesHook("arm_compose")
    hook.credential = credential
    url = SVC_URL.replace(ARM_URL, compose)
    rsps.add("GET", url, json=web_service())

    assert hook.get_web_service("svc1")["name"] == "svc1"
    assert rsps.calls[0].request.url == url
    assert rsps.calls[0].request.headers["Authorization"] == f"Bearer {ARM_TOKEN}"


def test_unclear_http_emulator_is_refused(monkeypatch):
    set_connection(
        monkeypatch,
        "arm_compose",
        conn_type="azureml_web_services",
        host="http://emulator:8080",
        extra={"subscription_id": "s", "resource_group": "r", "http_emulator": "maybe"},
    )
    with pytest.raises(
        AzureMLConfigError,
        match="Connection 'arm_compose': extra http_emulator must be true or false, not 'maybe'",
    ):
        AzureMLWebServicesHook("arm_compose").api  # noqa: B018


def test_workload_identity_uses_the_azure_providers_default_credential(monkeypatch):
    from azure.identity import DefaultAzureCredential

    set_connection(
        monkeypatch,
        "wi",
        conn_type="azureml_web_services",
        extra={
            "subscription_id": "s",
            "resource_group": "r",
            "managed_identity_client_id": "mi-client",
            "workload_identity_tenant_id": "tenant-1",
        },
    )
    assert isinstance(AzureMLWebServicesHook("wi").credential, DefaultAzureCredential)
