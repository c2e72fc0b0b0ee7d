"""Request builders and objects of the classic management API and the ARM web services API."""

from __future__ import annotations

import pytest

from airflow_provider_amlretrain.api.arm import (
    ARM_API_VERSION,
    WebServicesApi,
    operation_status,
    provisioning_state,
)
from airflow_provider_amlretrain.api.classic import ClassicEndpoint, ClassicManagementApi, check_endpoint_name
from airflow_provider_amlretrain.api.references import BlobLocation
from airflow_provider_amlretrain.api.states import ProvisioningStatus
from airflow_provider_amlretrain.exceptions import AzureMLConfigError, AzureMLResponseError
from tests.unit.promotion_support import ENDPOINT_KEY, endpoint_body


@pytest.mark.parametrize("name", ["a", "ep1", "retrain-2024", "a" * 24, "0-9"])
def test_valid_endpoint_names(name):
    assert check_endpoint_name(name) == name


@pytest.mark.parametrize("name", ["", "a" * 25, "-ep", "ep-", "Ep1", "ep_1", "ep 1", "ep1\n", None, 7])
def test_invalid_endpoint_names(name):
    with pytest.raises(AzureMLConfigError, match="is not valid: use at most 24 lowercase"):
        check_endpoint_name(name)


def test_endpoint_from_api():
    endpoint = ClassicEndpoint.from_api(endpoint_body())
    assert endpoint.name == "ep1" and endpoint.web_service_id == "pred1" and endpoint.workspace_id == "ws1"
    assert endpoint.primary_key == ENDPOINT_KEY
    assert ENDPOINT_KEY not in repr(endpoint)
    (resource,) = endpoint.resources
    assert resource.location == BlobLocation("https://acct.blob.core.windows.net/", "m/v1.ilearner", "?sig=x")


def test_resource_without_location():
    endpoint = ClassicEndpoint.from_api(endpoint_body([{"Name": "M", "Location": {"BaseLocation": "x"}}]))
    assert endpoint.resources[0].location is None
    assert endpoint.resources[0].kind == "TrainedModel"


@pytest.mark.parametrize("body", [None, [], {"Description": "no name"}, {"Name": ""}])
def test_endpoint_without_name_is_refused(body):
    with pytest.raises(AzureMLResponseError, match="without a Name"):
        ClassicEndpoint.from_api(body)


def test_endpoint_without_name_names_the_keys_found_but_never_their_values():
    with pytest.raises(AzureMLResponseError) as caught:
        ClassicEndpoint.from_api({"PrimaryKey": "pk-value-123", "SecondaryKey": "sk-value-456"})
    message = str(caught.value)
    assert "['PrimaryKey', 'SecondaryKey']" in message and "management API" in message
    assert "pk-value-123" not in message and "sk-value-456" not in message


def test_trained_model_without_resources_points_to_the_predictive_service():
    for resources in ([], [{"Name": "Data", "Kind": "Dataset"}]):
        endpoint = ClassicEndpoint.from_api(endpoint_body(resources))
        with pytest.raises(
            AzureMLConfigError, match=r"no updatable trained-model resources.*\*predictive\* web service"
        ):
            endpoint.trained_model(None)


def test_trained_model_by_name_or_the_only_one():
    models = [
        {"Name": "A [trained model]", "Kind": "TrainedModel"},
        {"Name": "B [trained model]", "Kind": "TrainedModel"},
    ]
    endpoint = ClassicEndpoint.from_api(endpoint_body(models))
    assert endpoint.trained_model("B [trained model]").name == "B [trained model]"
    with pytest.raises(
        AzureMLConfigError,
        match=r"several trained models \(A \[trained model\], B \[trained model\]\).*resource_name",
    ):
        endpoint.trained_model(None)
    with pytest.raises(
        AzureMLConfigError,
        match=r"no resource named 'C'; its trained models are: 'A \[trained model\]', 'B \[trained model\]'",
    ):
        endpoint.trained_model("C")
    only = ClassicEndpoint.from_api(endpoint_body(models[:1]))
    assert only.trained_model(None).name == "A [trained model]"


def test_management_request_urls():
    api = ClassicManagementApi("https://management.azureml.net/", "ws 1")
    base = "https://management.azureml.net/workspaces/ws%201"
    assert api.list_web_services().url == f"{base}/webservices"
    assert api.get_web_service("pred/1").url == f"{base}/webservices/pred%2F1"
    assert api.list_endpoints("pred1").url == f"{base}/webservices/pred1/endpoints"
    assert api.get_endpoint("pred1", "ep1").url == f"{base}/webservices/pred1/endpoints/ep1"
    assert api.delete_endpoint("pred1", "ep1").method == "DELETE"
    with pytest.raises(AzureMLConfigError):
        api.get_endpoint("pred1", "Bad_Name")


def test_create_endpoint_request():
    api = ClassicManagementApi("https://management.azureml.net", "ws1")
    request = api.create_endpoint(
        "pred1", "ep1", description="d", throttle_level="Low", max_concurrent_calls=4
    )
    assert request.method == "PUT"
    assert request.json_body == {"Description": "d", "ThrottleLevel": "Low", "MaxConcurrentCalls": 4}
    with pytest.raises(AzureMLConfigError, match="throttle_level"):
        api.create_endpoint("pred1", "ep1", description="d", throttle_level="Medium", max_concurrent_calls=4)
    for calls in (0, 201):
        with pytest.raises(AzureMLConfigError, match="max_concurrent_calls must be 1..200"):
            api.create_endpoint(
                "pred1", "ep1", description="d", throttle_level="High", max_concurrent_calls=calls
            )


def test_patch_request_shape():
    api = ClassicManagementApi("https://management.azureml.net", "ws1")
    location = BlobLocation("https://acct.blob.core.windows.net/", "m/v2/model.ilearner", "?sv=1&sig=abc")
    request = api.patch_trained_model("pred1", "ep1", "Census Model [trained model]", location)
    assert request.method == "PATCH"
    assert request.expected == (200, 202, 204)
    assert request.json_body == {
        "Resources": [
            {
                "Name": "Census Model [trained model]",
                "Location": {
                    "BaseLocation": "https://acct.blob.core.windows.net/",
                    "RelativeLocation": "m/v2/model.ilearner",
                    "SasBlobToken": "?sv=1&sig=abc",
                },
            }
        ]
    }
    with pytest.raises(AzureMLConfigError, match="not an .ilearner"):
        api.patch_trained_model("pred1", "ep1", "R", BlobLocation("https://a/", "m/eval.csv"))


def test_arm_requests():
    api = WebServicesApi("https://management.azure.com/", "sub 1", "rg1")
    url = f"https://management.azure.com/subscriptions/sub%201/resourceGroups/rg1/providers/Microsoft.MachineLearning/webServices/svc?api-version={ARM_API_VERSION}"
    assert api.get("svc").url == url
    patch = api.patch("svc", {"id": "x", "name": "svc", "location": "l", "properties": {"p": 1}, "type": "t"})
    assert patch.method == "PATCH" and patch.json_body == {"location": "l", "properties": {"p": 1}}
    assert "/svc/listKeys?api-version=" in api.list_keys("svc").url
    assert WebServicesApi.poll("https://op/1?x=1").url == "https://op/1?x=1"


def test_provisioning_state_and_operation_status():
    assert (
        provisioning_state({"properties": {"provisioningState": "Succeeded"}}) is ProvisioningStatus.SUCCEEDED
    )
    assert (
        provisioning_state({"properties": {"provisioningState": "Provisioning"}})
        is ProvisioningStatus.IN_PROGRESS
    )
    assert provisioning_state({"properties": {}}) is ProvisioningStatus.SUCCEEDED, (
        "no state: no update running"
    )
    with pytest.raises(AzureMLResponseError):
        provisioning_state([])
    with pytest.raises(AzureMLResponseError, match="not a name: 3"):
        provisioning_state({"properties": {"provisioningState": 3}})
    assert operation_status({"status": "InProgress"}) == (ProvisioningStatus.IN_PROGRESS, "InProgress", None)
    assert operation_status(
        {"provisioningState": "Failed", "errorInfo": {"code": "X", "message": "bad"}}
    ) == (
        ProvisioningStatus.FAILED,
        "Failed",
        "bad",
    )
    assert operation_status({"status": "Failed", "error": {"message": "worse"}})[2] == "worse"
    for body in ({}, "Succeeded"):
        with pytest.raises(AzureMLResponseError):
            operation_status(body)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Succeeded", ProvisioningStatus.SUCCEEDED),
        ("succeeded", ProvisioningStatus.SUCCEEDED),
        ("Failed", ProvisioningStatus.FAILED),
        ("Canceled", ProvisioningStatus.CANCELED),
        ("Cancelled", ProvisioningStatus.CANCELED),
        ("Provisioning", ProvisioningStatus.IN_PROGRESS),
        ("Accepted", ProvisioningStatus.IN_PROGRESS),
        ("Unknown", ProvisioningStatus.IN_PROGRESS),
    ],
)
def test_provisioning_status_follows_arm_terminal_states(raw, expected):
    status = ProvisioningStatus.parse(raw)
    assert status is expected
    assert status.is_terminal is (expected is not ProvisioningStatus.IN_PROGRESS)
    assert status.is_success is (expected is ProvisioningStatus.SUCCEEDED)


@pytest.mark.parametrize("resources", ["not-a-list", ["not-an-object"]])
def test_endpoint_with_malformed_resources_is_a_clear_error(resources):
    from airflow_provider_amlretrain.api.classic import ClassicEndpoint
    from airflow_provider_amlretrain.exceptions import AzureMLResponseError

    with pytest.raises(AzureMLResponseError, match="Resources that are not a list of objects"):
        ClassicEndpoint.from_api({"Name": "ep1", "Resources": resources})
