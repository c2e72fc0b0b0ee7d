"""Predictive side: classic management API, RRS, endpoint model updates, ARM web services, MSI."""

from __future__ import annotations

import csv
import datetime as dt
import io
import threading
import time
from typing import Any

import pytest

IDENTITY = "identity-secret-for-tests"


def _ws_headers(emulator: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {emulator.seed['workspace_token']}"}


def _predictive(emulator: Any, task: str = "binary") -> dict[str, Any]:
    return emulator.service(task, "predictive")


def _sample(emulator: Any, task: str = "binary") -> tuple[list[str], list[list[str]]]:
    from amlretrain_emulator.datasets import sample_csv

    rows = list(csv.reader(io.StringIO(sample_csv(task).decode())))
    return rows[0], rows[1:]


def _rrs(emulator: Any, path: str, key: str, details: bool = True, task: str = "binary") -> Any:
    names, values = _sample(emulator, task)
    query = "?api-version=2.0" + ("&details=true" if details else "")
    body = {"Inputs": {"input1": {"ColumnNames": names, "Values": values}}, "GlobalParameters": {}}
    return emulator.client.post(
        path + "/execute" + query, json=body, headers={"Authorization": f"Bearer {key}"}
    )


def _endpoint_path(emulator: Any, service: dict[str, Any], name: str) -> str:
    return f"{service['management_path']}/endpoints/{name}"


def _create_endpoint(emulator: Any, service: dict[str, Any], name: str, **body: Any) -> dict[str, Any]:
    answer = emulator.client.put(
        _endpoint_path(emulator, service, name), json=body, headers=_ws_headers(emulator)
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def _api_path(endpoint: dict[str, Any]) -> str:
    return "/" + endpoint["ApiLocation"].split("/", 3)[3]


def _trained_model_location(emulator: Any, run: str, date_index: int = 2) -> dict[str, Any]:
    training = emulator.service("binary", "training")
    _, status = emulator.run(training, emulator.body(training, run, date_index))
    assert status["StatusCode"] == "Finished", status
    result = status["Results"]["output1"]
    return {k: result[k] for k in ("BaseLocation", "RelativeLocation", "SasBlobToken")}


def test_list_and_get_webservices(emulator: Any) -> None:
    workspace = emulator.seed["workspace_id"]
    answer = emulator.client.get(f"/workspaces/{workspace}/webservices", headers=_ws_headers(emulator))
    assert answer.status_code == 200 and answer.headers["x-ms-request-id"]
    services = answer.json()
    assert {s["Name"] for s in services} >= {"amlretrain-binary-training", "amlretrain-binary-predictive"}
    assert set(services[0]) == {
        "Id",
        "Name",
        "Description",
        "CreationTime",
        "WorkspaceId",
        "DefaultEndpointName",
    }
    one = emulator.client.get(
        f"/workspaces/{workspace}/webservices/{services[0]['Id']}", headers=_ws_headers(emulator)
    )
    assert one.json() == services[0]
    assert emulator.client.get(f"/workspaces/{workspace}/webservices").status_code == 401
    key = {"Authorization": f"Bearer {_predictive(emulator)['api_key']}"}
    assert emulator.client.get(f"/workspaces/{workspace}/webservices", headers=key).status_code == 401
    missing = emulator.client.get(
        f"/workspaces/{workspace}/webservices/{'0' * 32}", headers=_ws_headers(emulator)
    )
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "WebServiceNotFound"


def test_default_endpoint_object(emulator: Any) -> None:
    import requests

    from amlretrain_emulator.scoring import load_model

    service = _predictive(emulator)
    path = _endpoint_path(emulator, service, "default")
    endpoint = emulator.client.get(path, headers=_ws_headers(emulator)).json()
    # Exactly the properties of the endpointapi swagger's ``Endpoint`` definition.
    assert set(endpoint) == {
        "Name",
        "Description",
        "CreationTime",
        "WorkspaceId",
        "WebServiceId",
        "HelpLocation",
        "ExperimentLocation",
        "PrimaryKey",
        "SecondaryKey",
        "ApiLocation",
        "Version",
        "MaxConcurrentCalls",
        "DiagnosticsTraceLevel",
        "ThrottleLevel",
        "Resources",
    }
    assert endpoint["PrimaryKey"] == service["api_key"] and endpoint["ApiLocation"].endswith(
        service["api_location"]
    )
    (resource,) = endpoint["Resources"]
    assert resource["Name"] == "Breast Cancer Model [trained model]" and resource["Kind"] == "TrainedModel"
    location = resource["Location"]
    model = requests.get(
        location["BaseLocation"] + location["RelativeLocation"] + location["SasBlobToken"], timeout=10
    )
    assert load_model(model.content)["task"] == "binary"
    # The endpoint's own key may read the endpoint, not list the service's endpoints.
    key = {"Authorization": f"Bearer {service['api_key']}"}
    assert emulator.client.get(path, headers=key).status_code == 200
    assert emulator.client.get(path.rsplit("/", 1)[0], headers=key).status_code == 401
    assert len(emulator.client.get(path.rsplit("/", 1)[0], headers=_ws_headers(emulator)).json()) == 1


@pytest.mark.parametrize("name", ["Upper", "-lead", "trail-", "a" * 25, "under_score"])
def test_endpoint_name_rules(emulator: Any, name: str) -> None:
    answer = emulator.client.put(
        _endpoint_path(emulator, _predictive(emulator), name), json={}, headers=_ws_headers(emulator)
    )
    assert answer.status_code == 400 and "endpoint name" in answer.json()["error"]["message"]


def test_create_update_delete_endpoint(emulator: Any) -> None:
    service = _predictive(emulator)
    created = _create_endpoint(
        emulator, service, "a" * 24, Description="x", ThrottleLevel="Low", MaxConcurrentCalls=50
    )
    assert created["MaxConcurrentCalls"] == 4 and created["ThrottleLevel"] == "Low"
    assert created["PrimaryKey"] != service["api_key"] and created["Resources"][0]["Name"].endswith(
        "[trained model]"
    )
    updated = _create_endpoint(emulator, service, "a" * 24, ThrottleLevel="High", MaxConcurrentCalls=50)
    assert updated["MaxConcurrentCalls"] == 50 and updated["PrimaryKey"] == created["PrimaryKey"]
    bad = emulator.client.put(
        _endpoint_path(emulator, service, "b1"), json={"ThrottleLevel": "Max"}, headers=_ws_headers(emulator)
    )
    assert bad.status_code == 400
    path = _endpoint_path(emulator, service, "a" * 24)
    assert (
        emulator.client.post(
            path + "/refresh", json={"OverwriteResources": True}, headers=_ws_headers(emulator)
        ).status_code
        == 200
    )
    listing = service["management_path"] + "/endpoints"

    def names() -> list[str]:
        answer = emulator.client.get(listing, headers=_ws_headers(emulator))
        assert answer.status_code == 200, answer.text
        return sorted(e["Name"] for e in answer.json())

    assert names() == sorted(["a" * 24, "default"])
    assert emulator.client.delete(path, headers=_ws_headers(emulator)).status_code == 204
    gone = emulator.client.get(path, headers=_ws_headers(emulator))
    assert gone.status_code == 404 and gone.headers.get("x-ms-request-id")
    assert set(gone.json()) == {"error"} and gone.json()["error"]["code"] == "EndpointNotFound"
    assert "a" * 24 in gone.json()["error"]["message"]
    assert names() == ["default"]
    # Its RRS no longer answers with the deleted endpoint's key.
    scored = _rrs(emulator, _api_path(created), created["PrimaryKey"])
    assert scored.status_code == 404 and scored.json()["error"]["code"] == "WebServiceNotFound"
    again = emulator.client.delete(path, headers=_ws_headers(emulator))
    assert again.status_code == 404 and again.json()["error"]["code"] == "EndpointNotFound"
    # The default endpoint cannot be deleted, and stays.
    default = _endpoint_path(emulator, service, "default")
    refused = emulator.client.delete(default, headers=_ws_headers(emulator))
    assert refused.status_code == 400 and set(refused.json()) == {"error"}
    assert "default endpoint" in refused.json()["error"]["message"]
    assert emulator.client.get(default, headers=_ws_headers(emulator)).status_code == 200
    assert names() == ["default"]


def test_rrs_scoring(emulator: Any) -> None:
    service = _predictive(emulator)
    answer = _rrs(emulator, service["api_location"], service["api_key"])
    assert answer.status_code == 200, answer.text
    value = answer.json()["Results"]["output1"]
    assert value["type"] == "table"
    table = value["value"]
    assert table["ColumnNames"][-2:] == ["Scored Labels", "Scored Probabilities"]
    assert len(table["ColumnTypes"]) == len(table["ColumnNames"])
    assert all(isinstance(v, str) for row in table["Values"] for v in row) and len(table["Values"]) == 5
    plain = _rrs(emulator, service["api_location"], service["api_key"], details=False).json()["Results"][
        "output1"
    ]["value"]
    assert set(plain) == {"Values"} and plain["Values"] == table["Values"]
    regression = _predictive(emulator, "regression")
    reg = _rrs(emulator, regression["api_location"], regression["api_key"], task="regression").json()
    assert reg["Results"]["output1"]["value"]["ColumnNames"][-1] == "Scored Labels"
    assert _rrs(emulator, service["api_location"], "wrong").status_code == 401
    training = emulator.service("binary", "training")
    answer = _rrs(emulator, training["api_location"], training["api_key"])
    assert answer.status_code == 400 and "BES" in answer.json()["error"]["message"]
    bad = emulator.client.post(
        service["api_location"] + "/execute?api-version=2.0",
        json={"Inputs": {"input1": {"ColumnNames": ["x"], "Values": [["1"]]}}},
        headers={"Authorization": f"Bearer {service['api_key']}"},
    )
    assert bad.status_code == 400 and "missing feature columns" in bad.json()["error"]["message"]


def test_retrain_and_patch_endpoint(emulator: Any) -> None:
    service = _predictive(emulator)
    endpoint = _create_endpoint(emulator, service, "retrained", ThrottleLevel="High", MaxConcurrentCalls=10)
    before = _rrs(emulator, _api_path(endpoint), endpoint["PrimaryKey"]).json()
    location = _trained_model_location(emulator, "patch-ok")
    patch = {"Resources": [{"Name": endpoint["Resources"][0]["Name"], "Location": location}]}
    answer = emulator.client.patch(
        _endpoint_path(emulator, service, "retrained"), json=patch, headers=_ws_headers(emulator)
    )
    assert answer.status_code == 200 and answer.content == b""
    after = _rrs(emulator, _api_path(endpoint), endpoint["PrimaryKey"]).json()
    probabilities = [row[-1] for row in after["Results"]["output1"]["value"]["Values"]]
    assert probabilities != [row[-1] for row in before["Results"]["output1"]["value"]["Values"]]
    # The default endpoint still serves the initial model.
    default = _rrs(emulator, service["api_location"], service["api_key"]).json()
    assert default == before
    refreshed = emulator.client.get(
        _endpoint_path(emulator, service, "retrained"), headers=_ws_headers(emulator)
    ).json()
    assert refreshed["Resources"][0]["Location"]["RelativeLocation"] == location["RelativeLocation"]
    assert refreshed["Version"] != endpoint["Version"]


def test_patch_errors(emulator: Any) -> None:
    from azure.storage.blob import BlobSasPermissions, generate_blob_sas

    from amlretrain_emulator.storage import account_of

    service = _predictive(emulator)
    endpoint = _create_endpoint(emulator, service, "errors")
    location = _trained_model_location(emulator, "patch-errors")
    name = endpoint["Resources"][0]["Name"]
    headers = _ws_headers(emulator)

    def patch(target: str, body: dict[str, Any], svc: dict[str, Any] = service) -> dict[str, Any]:
        answer = emulator.client.patch(_endpoint_path(emulator, svc, target), json=body, headers=headers)
        assert answer.status_code == 400, answer.text
        return answer.json()["error"]

    good = {"Resources": [{"Name": name, "Location": location}]}
    assert "non-default endpoint" in patch("default", good)["message"]
    wrong = patch("errors", {"Resources": [{"Name": "Census Model [trained model]", "Location": location}]})
    assert name in wrong["message"] and "valid names" in wrong["message"]
    account, key, _ = account_of(emulator.cs)
    container, blob = location["RelativeLocation"].split("/", 1)
    expired = generate_blob_sas(
        account,
        container,
        blob,
        account_key=key,
        permission=BlobSasPermissions(read=True),
        expiry=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1),
    )
    message = patch(
        "errors", {"Resources": [{"Name": name, "Location": {**location, "SasBlobToken": "?" + expired}}]}
    )["message"]
    assert "SasBlobToken" in message and "403" in message and "sig=" not in message
    missing = patch(
        "errors",
        {"Resources": [{"Name": name, "Location": {**location, "RelativeLocation": "runs/nope/x.ilearner"}}]},
    )
    assert "runs/nope/x.ilearner" in missing["message"]  # a blob SAS does not cover another blob
    training = emulator.service("binary", "training")
    _create_endpoint(emulator, training, "train-ep")
    assert "predictive" in patch("train-ep", good, training)["message"]


def test_rrs_concurrency_limit(make_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Calls beyond MaxConcurrentCalls get a 429 while the others are in flight, per endpoint.

    The first call is held inside its slot (in the emulator's minimum-duration wait) until the
    test releases it, so "in flight" does not depend on thread scheduling or sleeps.
    """
    import asyncio

    from amlretrain_emulator import rrs

    entered, release = threading.Event(), threading.Event()
    real_sleep = asyncio.sleep

    async def held(seconds: float) -> None:
        if entered.is_set():  # only the first call is held; later ones wait as configured
            await real_sleep(seconds)
            return
        entered.set()
        while not release.is_set():
            await real_sleep(0.01)

    emulator = make_emulator(rrs_min_seconds=0.01)
    monkeypatch.setattr(rrs, "asyncio", type("HeldAsyncio", (), {"sleep": staticmethod(held)}))
    service = _predictive(emulator)
    endpoint = _create_endpoint(emulator, service, "narrow", ThrottleLevel="High", MaxConcurrentCalls=1)
    codes: list[int] = []
    first = threading.Thread(
        target=lambda: codes.append(_rrs(emulator, _api_path(endpoint), endpoint["PrimaryKey"]).status_code)
    )
    first.start()
    try:
        assert entered.wait(60), "the first call never reached its scoring slot"
        for _ in range(2):
            refused = _rrs(emulator, _api_path(endpoint), endpoint["PrimaryKey"])
            assert refused.status_code == 429, refused.text
            assert refused.headers["Retry-After"] == "1"
            assert refused.json()["error"]["code"] == "TooManyRequests"
        # The limit is per endpoint: the default endpoint of the same service still answers.
        other = _rrs(emulator, service["api_location"], service["api_key"])
        assert other.status_code == 200, other.text
        assert codes == []  # the first call is still in flight
    finally:
        release.set()
        first.join(60)
    assert not first.is_alive()
    assert codes == [200]
    # Its slot is free again.
    assert _rrs(emulator, _api_path(endpoint), endpoint["PrimaryKey"]).status_code == 200


@pytest.fixture
def arm_emulator(make_emulator: Any) -> Any:
    return make_emulator(identity_header=IDENTITY, arm_provisioning_seconds=0.3)


def _token(emulator: Any, resource: str = "https://management.azure.com/") -> str:
    answer = emulator.client.get(
        f"/msi/token?api-version=2019-08-01&resource={resource}", headers={"X-IDENTITY-HEADER": IDENTITY}
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (
        body["token_type"] == "Bearer"
        and body["resource"] == resource
        and int(body["expires_on"]) > time.time()
    )
    return body["access_token"]


def test_msi_token_endpoint(arm_emulator: Any) -> None:
    assert arm_emulator.client.get("/msi/token?api-version=2019-08-01&resource=x").status_code == 401
    wrong = arm_emulator.client.get(
        "/msi/token?api-version=2019-08-01&resource=x", headers={"X-IDENTITY-HEADER": "no"}
    )
    assert wrong.status_code == 401
    _token(arm_emulator)


def test_arm_auth(arm_emulator: Any) -> None:
    arm = arm_emulator.seed["arm"]
    path = arm["web_services"][0]["arm_path"] + "?api-version=2017-01-01"
    assert arm_emulator.client.get(path).status_code == 401
    assert (
        arm_emulator.client.get(path, headers={"Authorization": "Bearer forged.token.x"}).status_code == 401
    )
    other = _token(arm_emulator, "https://storage.azure.com/")
    assert arm_emulator.client.get(path, headers={"Authorization": f"Bearer {other}"}).status_code == 401
    token = {"Authorization": f"Bearer {_token(arm_emulator)}"}
    assert arm_emulator.client.get(path, headers=token).status_code == 200
    assert arm_emulator.client.get(path.replace("2017-01-01", "2020-01-01"), headers=token).status_code == 400
    missing = arm_emulator.client.get(path.replace("-web?", "-nope?"), headers=token)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "ResourceNotFound"


def _poll_operation(emulator: Any, url: str, headers: dict[str, str]) -> dict[str, Any]:
    path = "/" + url.split("/", 3)[3]
    deadline = time.monotonic() + 60  # generous: only bounds a hang, never decides a result
    while True:
        body = emulator.client.get(path, headers=headers).json()
        if body["status"] != "InProgress":
            return body
        if time.monotonic() > deadline:
            raise TimeoutError(path)
        time.sleep(0.05)


def test_arm_retrain_flow(arm_emulator: Any) -> None:
    emulator = arm_emulator
    service = emulator.seed["arm"]["web_services"][0]
    assert service["task"] == "binary"
    path = service["arm_path"] + "?api-version=2017-01-01"
    headers = {"Authorization": f"Bearer {_token(emulator)}"}
    definition = emulator.client.get(path, headers=headers).json()
    properties = definition["properties"]
    assert properties["keys"] is None and properties["storageAccount"]["key"] is None
    assert properties["provisioningState"] == "Succeeded" and properties["packageType"] == "Graph"
    asset = properties["assets"][service["model_asset"]]
    assert asset["type"] == "Resource" and asset["locationInfo"]["uri"].endswith(".ilearner")
    keys = emulator.client.post(
        service["arm_path"] + "/listKeys?api-version=2017-01-01", headers=headers
    ).json()
    assert set(keys) == {"primary", "secondary"}
    before = _rrs(emulator, service["api_location"], keys["primary"]).json()

    location = _trained_model_location(emulator, "arm-ok")
    new_uri = location["BaseLocation"] + location["RelativeLocation"]
    pointer = f"/properties/assets/{service['model_asset']}/locationInfo/uri"
    stale = [
        {"op": "test", "path": pointer, "value": "https://elsewhere/x.ilearner"},
        {"op": "replace", "path": pointer, "value": new_uri},
    ]
    assert emulator.client.patch(path, json=stale, headers=headers).status_code == 409
    patch = [
        {"op": "test", "path": pointer, "value": asset["locationInfo"]["uri"]},
        {"op": "replace", "path": pointer, "value": new_uri},
    ]
    answer = emulator.client.patch(path, json=patch, headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.json()["properties"]["provisioningState"] == "Provisioning"
    assert (
        emulator.client.patch(path, json=patch, headers=headers).status_code == 409
    )  # operation in progress
    operation = _poll_operation(emulator, answer.headers["Azure-AsyncOperation"], headers)
    assert operation["status"] == "Succeeded" and operation["endTime"]
    updated = emulator.client.get(path, headers=headers).json()["properties"]
    assert updated["provisioningState"] == "Succeeded"
    assert updated["assets"][service["model_asset"]]["locationInfo"]["uri"] == new_uri
    after = _rrs(emulator, service["api_location"], keys["primary"]).json()
    assert after != before

    # A model URI that cannot be read: the operation fails and the previous definition stays.
    merge = {
        "properties": {
            "assets": {
                service["model_asset"]: {
                    "locationInfo": {"uri": new_uri.replace("model.ilearner", "gone.ilearner")}
                }
            }
        }
    }
    answer = emulator.client.patch(path, json=merge, headers=headers)
    assert answer.status_code == 200
    failed = _poll_operation(emulator, answer.headers["Azure-AsyncOperation"], headers)
    assert failed["status"] == "Failed" and "does not exist" in failed["errorInfo"]["message"]
    current = emulator.client.get(path, headers=headers).json()["properties"]
    assert current["provisioningState"] == "Failed"
    assert current["assets"][service["model_asset"]]["locationInfo"]["uri"] == new_uri
    assert _rrs(emulator, service["api_location"], keys["primary"]).json() == after
    bad = emulator.client.patch(
        path, json={"properties": {"assets": {service["model_asset"]: {"type": "Module"}}}}, headers=headers
    )
    assert bad.status_code == 400


def test_free_workspace_endpoint_limit(make_emulator: Any) -> None:
    emulator = make_emulator(max_endpoints_per_service=3)
    service = _predictive(emulator)
    _create_endpoint(emulator, service, "second")
    _create_endpoint(emulator, service, "third")
    refused = emulator.client.put(
        _endpoint_path(emulator, service, "fourth"), json={}, headers=_ws_headers(emulator)
    )
    assert refused.status_code == 400, refused.text
    error = refused.json()["error"]
    assert (
        error["code"] == "EndpointLimitExceeded" and "(3, the default endpoint included)" in error["message"]
    )
    assert refused.headers["x-ms-request-id"]
    listed = emulator.client.get(
        _endpoint_path(emulator, service, "")[:-1], headers=_ws_headers(emulator)
    ).json()
    assert sorted(e["Name"] for e in listed) == ["default", "second", "third"]
    # Updating an existing endpoint's settings is not a new endpoint; deleting one frees a place.
    assert (
        _create_endpoint(emulator, service, "third", Description="still fine")["Description"] == "still fine"
    )
    assert (
        emulator.client.delete(
            _endpoint_path(emulator, service, "second"), headers=_ws_headers(emulator)
        ).status_code
        == 204
    )
    assert _create_endpoint(emulator, service, "fourth")["Name"] == "fourth"


def test_an_endpoint_key_authorizes_calls_on_that_endpoint_only(emulator: Any) -> None:
    service = _predictive(emulator)
    mine = _create_endpoint(emulator, service, "keyed")
    other = _create_endpoint(emulator, service, "other")
    location = _trained_model_location(emulator, "patch-with-endpoint-key")
    patch = {"Resources": [{"Name": mine["Resources"][0]["Name"], "Location": location}]}
    path = _endpoint_path(emulator, service, "keyed")

    def bearer(key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}

    assert emulator.client.patch(path, json=patch, headers=bearer(other["PrimaryKey"])).status_code == 401
    answer = emulator.client.patch(path, json=patch, headers=bearer(mine["SecondaryKey"]))
    assert answer.status_code == 200, answer.text
    got = emulator.client.get(path, headers=bearer(mine["PrimaryKey"])).json()
    assert got["Resources"][0]["Location"]["RelativeLocation"] == location["RelativeLocation"]
    # Calls that are not on one endpoint need the workspace token.
    listing = emulator.client.get(
        _endpoint_path(emulator, service, "")[:-1], headers=bearer(mine["PrimaryKey"])
    )
    assert listing.status_code == 401
    assert emulator.client.delete(path, headers=bearer(other["PrimaryKey"])).status_code == 401
    assert emulator.client.delete(path, headers=bearer(mine["PrimaryKey"])).status_code == 204


def test_endpoint_help_and_experiment_locations(emulator: Any) -> None:
    service = _predictive(emulator)
    endpoint = _create_endpoint(emulator, service, "helped")
    assert endpoint["ExperimentLocation"].startswith("https://studio.azureml.net/")
    page = emulator.client.get("/" + endpoint["HelpLocation"].split("/", 3)[3])
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert f"{endpoint['ApiLocation']}/execute?api-version=2.0" in page.text
    assert endpoint["PrimaryKey"] not in page.text


def test_arm_spec_rules(arm_emulator: Any) -> None:
    emulator = arm_emulator
    service = emulator.seed["arm"]["web_services"][0]
    path = service["arm_path"] + "?api-version=2017-01-01"
    headers = {"Authorization": f"Bearer {_token(emulator)}"}
    before = emulator.client.get(path, headers=headers).json()["properties"]
    assert before["createdOn"] and before["modifiedOn"]
    assert {c["type"] for c in before["input"]["properties"]["input1"]["properties"].values()} == {"Number"}

    too_many = emulator.client.patch(
        path, json={"properties": {"realtimeConfiguration": {"maxConcurrentCalls": 1000}}}, headers=headers
    )
    assert too_many.status_code == 400 and "from 4 to 200" in too_many.json()["error"]["message"]

    answer = emulator.client.patch(path, json={"properties": {"readOnly": True}}, headers=headers)
    assert answer.status_code == 200, answer.text
    operation = _poll_operation(emulator, answer.headers["Azure-AsyncOperation"], headers)
    assert operation["status"] == operation["provisioningState"] == "Succeeded"
    after = emulator.client.get(path, headers=headers).json()["properties"]
    assert after["createdOn"] == before["createdOn"] and after["modifiedOn"] > before["modifiedOn"]
    refused = emulator.client.patch(path, json={"properties": {"description": "x"}}, headers=headers)
    assert refused.status_code == 409 and "read-only" in refused.json()["error"]["message"]

    # A read-only service can still be removed; removing it again (or one never created) answers 204 too.
    assert emulator.client.delete(path, headers=headers).status_code == 204
    assert emulator.client.get(path, headers=headers).status_code == 404
    assert emulator.client.delete(path, headers=headers).status_code == 204
    assert emulator.client.delete(path, headers={}).status_code == 401


def test_rrs_swagger_format_takes_and_gives_rows_as_objects(emulator: Any) -> None:
    service = _predictive(emulator)
    names, values = _sample(emulator)
    headers = {"Authorization": f"Bearer {service['api_key']}"}
    rows = [dict(zip(names, row, strict=True)) for row in values]
    answer = emulator.client.post(
        service["api_location"] + "/execute?api-version=2.0&format=swagger",
        json={"Inputs": {"input1": rows}, "GlobalParameters": {}},
        headers=headers,
    )
    assert answer.status_code == 200, answer.text
    scored = answer.json()["Results"]["output1"]
    table = _rrs(emulator, service["api_location"], service["api_key"]).json()["Results"]["output1"]["value"]
    assert scored == [dict(zip(table["ColumnNames"], row, strict=True)) for row in table["Values"]]
    wrong = emulator.client.post(
        service["api_location"] + "/execute?api-version=2.0&format=swagger",
        json={"Inputs": {"input1": {"ColumnNames": names, "Values": values}}},
        headers=headers,
    )
    assert wrong.status_code == 400 and "list of rows as objects" in wrong.json()["error"]["message"]


def test_admin_listing_says_which_job_trained_the_model_each_endpoint_scores_with(emulator: Any) -> None:
    service = _predictive(emulator)
    endpoint = _create_endpoint(emulator, service, "listed")
    training = emulator.service("binary", "training")
    job_id, status = emulator.run(training, emulator.body(training, "listed", 2))
    result = status["Results"]["output1"]
    location = {k: result[k] for k in ("BaseLocation", "RelativeLocation", "SasBlobToken")}

    def served() -> dict[str, Any]:
        answer = emulator.client.get("/_emulator/endpoints")
        assert answer.status_code == 200
        return {
            e["endpoint"]: e["model"]
            for e in answer.json()["endpoints"]
            if e["web_service_id"] == service["web_service_id"]
        }

    assert served()["listed"]["job_id"] is None  # a new endpoint serves the seed's model
    patch = {"Resources": [{"Name": endpoint["Resources"][0]["Name"], "Location": location}]}
    answer = emulator.client.patch(
        _endpoint_path(emulator, service, "listed"), json=patch, headers=_ws_headers(emulator)
    )
    assert answer.status_code == 200, answer.text

    listing = served()
    assert listing["listed"]["job_id"] == job_id
    assert listing[service["endpoint_name"]]["job_id"] is None
    text = emulator.client.get("/_emulator/endpoints").text
    assert endpoint["PrimaryKey"] not in text and "sig=" not in text
