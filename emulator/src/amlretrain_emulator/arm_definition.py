"""The ``Microsoft.MachineLearning/webServices`` definition: building, merging, validating."""

from __future__ import annotations

import copy
from typing import Any
from urllib.parse import urlsplit

from amlretrain_emulator.context import utc_now
from amlretrain_emulator.datasets import TASKS
from amlretrain_emulator.records import resource_name

RESOURCE_TYPE = "Microsoft.MachineLearning/webServices"
MODEL_ASSET = "asset3"
TOP_LEVEL_KEYS = ("id", "name", "location", "type", "tags", "properties")


def resource_id(subscription_id: str, resource_group: str, name: str) -> str:
    """The ARM id of a web service.

    :param subscription_id: subscription.
    :param resource_group: resource group.
    :param name: web service name.
    """
    return (
        f"/subscriptions/{subscription_id}/resourceGroups/{resource_group}/providers/{RESOURCE_TYPE}/{name}"
    )


def build_definition(
    subscription_id: str,
    resource_group: str,
    name: str,
    location: str,
    task: str,
    feature_names: list[str],
    model_uri: str,
    workspace_id: str,
    storage_account: str,
) -> dict[str, Any]:
    """A Graph web service definition whose ``asset3`` is the trained model resource.

    :param subscription_id: subscription.
    :param resource_group: resource group.
    :param name: web service name.
    :param location: Azure region.
    :param task: ``binary`` or ``regression``.
    :param feature_names: the input columns.
    :param model_uri: blob URL of the ``.ilearner`` (BaseLocation + RelativeLocation).
    :param workspace_id: the classic workspace id.
    :param storage_account: storage account name.
    """
    spec = TASKS[task]
    columns = {feature: {"type": "Number", "format": "Double"} for feature in feature_names}
    return {
        "id": resource_id(subscription_id, resource_group, name),
        "name": name,
        "location": location,
        "type": RESOURCE_TYPE,
        "tags": {},
        "properties": {
            "title": f"{spec.experiment} [Predictive Exp.]",
            "description": f"Scores {spec.experiment} data with the retrained model.",
            "provisioningState": "Succeeded",
            "createdOn": utc_now(),
            "modifiedOn": utc_now(),
            "packageType": "Graph",
            "keys": None,
            "readOnly": False,
            "exposeSampleData": False,
            "realtimeConfiguration": {"maxConcurrentCalls": 20},
            "diagnostics": {"level": "None", "expiry": None},
            "storageAccount": {"name": storage_account, "key": None},
            "machineLearningWorkspace": {"id": workspace_id},
            "commitmentPlan": {
                "id": f"/subscriptions/{subscription_id}/resourceGroups/{resource_group}/providers/"
                "Microsoft.MachineLearning/commitmentPlans/amlretrain-plan"
            },
            "input": {
                "type": "object",
                "properties": {"input1": {"type": "object", "title": "input1", "properties": columns}},
            },
            "output": {
                "type": "object",
                "properties": {
                    "output1": {
                        "type": "object",
                        "title": "output1",
                        "properties": {**columns, "Scored Labels": {"type": "Number", "format": "Double"}},
                    }
                },
            },
            "exampleRequest": {"inputs": {"input1": [feature_names]}, "globalParameters": {}},
            "parameters": {},
            "assets": {
                "asset1": {
                    "name": "Web service input",
                    "type": "Module",
                    "locationInfo": {"uri": "aml://module/webserviceinput"},
                },
                "asset2": {
                    "name": "Score Model",
                    "type": "Module",
                    "locationInfo": {"uri": "aml://module/scoremodel"},
                },
                MODEL_ASSET: {
                    "name": resource_name(task),
                    "type": "Resource",
                    "locationInfo": {"uri": model_uri},
                    "outputPorts": {"Results dataset": {"type": "Dataset"}},
                },
            },
            "package": {
                "nodes": {
                    "node1": {"assetId": "asset1", "parameters": {}},
                    "node2": {"assetId": "asset2", "parameters": {}},
                    "node3": {"assetId": MODEL_ASSET, "parameters": {}},
                },
                "edges": [
                    {
                        "sourceNodeId": "node1",
                        "sourcePortId": "output1",
                        "targetNodeId": "node2",
                        "targetPortId": "dataset",
                    },
                    {
                        "sourceNodeId": "node3",
                        "sourcePortId": "Results dataset",
                        "targetNodeId": "node2",
                        "targetPortId": "model",
                    },
                ],
                "graphParameters": {},
            },
        },
    }


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON merge patch (``null`` removes a member).

    :param target: the current document.
    :param patch: the patch.
    """
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def model_asset(definition: dict[str, Any]) -> tuple[str, str]:
    """The (asset id, uri) of the definition's trained-model ``Resource`` asset.

    :param definition: the definition.
    :raises ValueError: naming the problem.
    """
    properties = definition.get("properties")
    if not isinstance(properties, dict):
        raise ValueError("the definition has no properties object")
    if properties.get("packageType", "Graph") != "Graph":
        raise ValueError("properties.packageType must be 'Graph'")
    assets = properties.get("assets")
    if not isinstance(assets, dict) or not assets:
        raise ValueError("properties.assets must be a non-empty object")
    resources = sorted(
        key for key, asset in assets.items() if isinstance(asset, dict) and asset.get("type") == "Resource"
    )
    if not resources:
        raise ValueError("properties.assets has no asset of type 'Resource' (the trained model)")
    asset_id = resources[0]
    uri = (assets[asset_id].get("locationInfo") or {}).get("uri")
    if not isinstance(uri, str) or not uri:
        raise ValueError(f"properties.assets.{asset_id}.locationInfo.uri is missing")
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.path.lower().endswith(".ilearner"):
        raise ValueError(
            f"properties.assets.{asset_id}.locationInfo.uri must be an http(s) URL of an .ilearner blob"
        )
    return asset_id, uri
