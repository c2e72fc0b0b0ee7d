"""New-style web services on ARM: ``Microsoft.MachineLearning/webServices`` (api-version 2017-01-01).

``/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.MachineLearning/webServices/{name}``:
GET (definition without keys nor storage key), PUT (create 201 / replace 200), PATCH (RFC 7396
merge patch object, or an RFC 6902 JSON Patch list whose failing ``test`` answers 409), and
``listKeys`` (POST or GET) answering ``{primary, secondary}``. Auth: tokens from ``/msi/token``.

PUT and PATCH are long-running: they answer at once (PUT 201/200, PATCH 200) with
``properties.provisioningState: Provisioning`` and an ``Azure-AsyncOperation`` header; the
model named by the ``Resource`` asset's ``locationInfo.uri`` is read right away (a URI without
SAS is read with the emulator's storage key, like the service's own storage account), and after
``arm_provisioning_seconds`` the operation reads ``Succeeded`` (new model serving) or ``Failed``
(``errorInfo`` says why; the previous definition and model stay). The operation status carries
both ``status`` (what generic ARM pollers read) and the spec's ``provisioningState``.

As in the spec: a ``readOnly`` service refuses PUT and PATCH (409) but can be deleted;
``realtimeConfiguration.maxConcurrentCalls`` must be 4..200; ``createdOn`` is kept across updates
and ``modifiedOn`` changes with each. DELETE removes the service at once and answers 204, also
when it did not exist (the emulator's choice: the spec allows 202 + async operation or 204).
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from amlretrain_emulator.arm_definition import (
    RESOURCE_TYPE,
    TOP_LEVEL_KEYS,
    merge_patch,
    model_asset,
    resource_id,
)
from amlretrain_emulator.auth import require_bearer
from amlretrain_emulator.context import EmulatorContext, get_context, utc_now
from amlretrain_emulator.errors import ApiError, bad_request
from amlretrain_emulator.models import ModelFetchError, fetch_model
from amlretrain_emulator.msi import require_arm_token
from amlretrain_emulator.records import new_id, new_key
from amlretrain_emulator.rrs import execute
from amlretrain_emulator.storage import blob_client_from_url, describe_url

API_VERSIONS = ("2017-01-01", "2016-05-01-preview")
PROVIDER = (
    "/subscriptions/{subscription_id}/resourceGroups/{resource_group}/providers/Microsoft.MachineLearning"
)
SERVICE = PROVIDER + "/webServices/{name}"
OPERATION = "/subscriptions/{subscription_id}/providers/Microsoft.MachineLearning/locations/{location}/operationsStatus/{operation_id}"

router = APIRouter()


def _check_api_version(request: Request) -> None:
    version = request.query_params.get("api-version")
    if version not in API_VERSIONS:
        raise ApiError(
            400,
            "InvalidApiVersionParameter" if version else "MissingApiVersionParameter",
            f"The api-version '{version or ''}' is invalid. The supported versions are '{', '.join(API_VERSIONS)}'.",
        )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _iso(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _prepare(
    request: Request, subscription_id: str, resource_group: str
) -> tuple[EmulatorContext, dict[str, Any]]:
    require_arm_token(request)
    _check_api_version(request)
    ctx = get_context(request)
    workspace = ctx.store.workspace() or {}
    if workspace.get("subscription_id") != subscription_id:
        raise ApiError(
            404, "SubscriptionNotFound", f"The subscription '{subscription_id}' could not be found."
        )
    if str(workspace.get("resource_group", "")).lower() != resource_group.lower():
        raise ApiError(404, "ResourceGroupNotFound", f"Resource group '{resource_group}' could not be found.")
    return ctx, workspace


def _not_found(resource_group: str, name: str) -> ApiError:
    return ApiError(
        404,
        "ResourceNotFound",
        f"The Resource '{RESOURCE_TYPE}/{name}' under resource group '{resource_group}' was not found.",
    )


def settle(ctx: EmulatorContext, name: str) -> dict[str, Any] | None:
    """The ARM record with its operation finished when due (persisted).

    :param ctx: the emulator context.
    :param name: the web service name.
    """

    def _change(record: dict[str, Any]) -> None:
        operation = record.get("operation")
        if not operation or operation["status"] != "InProgress" or operation["ready_at"] > _iso(_now()):
            return
        operation["endTime"] = utc_now()
        operation["percentComplete"] = 1.0
        if operation.get("error"):
            operation["status"] = "Failed"
            previous = record.get("previous_definition") or record["definition"]
            record["definition"] = previous
            record["definition"]["properties"]["provisioningState"] = "Failed"
        else:
            operation["status"] = "Succeeded"
            record["definition"]["properties"]["provisioningState"] = "Succeeded"
            if operation.get("model") is not None:
                record["model"] = operation["model"]
        operation.pop("model", None)
        record["previous_definition"] = None
        record.setdefault("operations", {})[operation["id"]] = {
            k: v for k, v in operation.items() if k != "ready_at"
        }

    return ctx.store.update("arm", name, _change)


def _load(ctx: EmulatorContext, subscription_id: str, resource_group: str, name: str) -> dict[str, Any]:
    record = ctx.store.get("arm", name)
    if (
        record is None
        or record["subscription_id"] != subscription_id
        or record["resource_group"].lower() != resource_group.lower()
    ):
        raise _not_found(resource_group, name)
    return settle(ctx, name) or record


def _render(request: Request, record: dict[str, Any]) -> dict[str, Any]:
    definition = copy.deepcopy(record["definition"])
    properties = definition["properties"]
    properties["keys"] = None
    if isinstance(properties.get("storageAccount"), dict):
        properties["storageAccount"]["key"] = None
    host = str(request.base_url).rstrip("/")
    properties["swaggerLocation"] = (
        f"{host}/subscriptions/{record['subscription_id']}/services/{record['service_id']}/swagger.json"
    )
    return definition


def _operation_url(request: Request, record: dict[str, Any], operation_id: str) -> str:
    host = str(request.base_url).rstrip("/")
    location = record["definition"].get("location", "southcentralus")
    return (
        f"{host}/subscriptions/{record['subscription_id']}/providers/Microsoft.MachineLearning/locations/"
        f"{location}/operationsStatus/{operation_id}?api-version={API_VERSIONS[0]}"
    )


async def _read_model(ctx: EmulatorContext, uri: str, task: str) -> tuple[dict[str, Any] | None, str | None]:
    try:
        client = blob_client_from_url(uri, ctx.config.storage_connection_string)
        return await run_in_threadpool(fetch_model, client, describe_url(uri), task), None
    except (ModelFetchError, ValueError) as exc:
        return None, f"The trained model asset could not be loaded: {exc}."


async def _start_operation(
    request: Request,
    ctx: EmulatorContext,
    record: dict[str, Any],
    new_definition: dict[str, Any],
    status: int,
) -> JSONResponse:
    """Store the new definition as Provisioning and answer with the async-operation header."""
    current = record.get("definition") or {}
    if (current.get("properties") or {}).get("readOnly") is True:
        raise ApiError(
            409,
            "Conflict",
            f"Web service '{record['name']}' is read-only: it can no longer be updated, only removed.",
        )
    try:
        asset_id, uri = model_asset(new_definition)
    except ValueError as exc:
        raise bad_request(f"Invalid web service definition: {exc}.", "InvalidRequestContent") from None
    _check_realtime_configuration(new_definition["properties"])
    old_uri = None
    if record.get("definition"):
        try:
            old_uri = model_asset(record["definition"])[1]
        except ValueError:
            old_uri = None
    model, error = (None, None)
    if uri != old_uri or record.get("model") is None:
        model, error = await _read_model(ctx, uri, record["task"])
    keys = (new_definition.get("properties") or {}).get("keys")
    if isinstance(keys, dict) and keys.get("primary") and keys.get("secondary"):
        record["keys"] = {"primary": str(keys["primary"]), "secondary": str(keys["secondary"])}
    new_definition["properties"]["keys"] = None
    new_definition["properties"]["provisioningState"] = "Provisioning"
    new_definition["properties"]["modifiedOn"] = utc_now()
    new_definition["properties"]["createdOn"] = (current.get("properties") or {}).get(
        "createdOn"
    ) or utc_now()
    operation_id = new_id()
    ready = _now() + dt.timedelta(seconds=ctx.config.arm_provisioning_seconds)
    record["previous_definition"] = record.get("definition")
    record["definition"] = new_definition
    record["operation"] = {
        "id": operation_id,
        "name": operation_id,
        "status": "InProgress",
        "startTime": utc_now(),
        "endTime": None,
        "percentComplete": 0.0,
        "ready_at": _iso(ready),
        "model": model,
        "error": None if error is None else {"code": "ResourceNotReadable", "message": error, "details": []},
        "asset": asset_id,
    }
    ctx.store.put("arm", record["name"], record)
    record = settle(ctx, record["name"]) or record
    headers = {"Azure-AsyncOperation": _operation_url(request, record, operation_id)}
    return JSONResponse(_render(request, record), status_code=status, headers=headers)


def _check_realtime_configuration(properties: dict[str, Any]) -> None:
    """``realtimeConfiguration.maxConcurrentCalls`` must be an integer from 4 to 200 (the spec's bounds)."""
    configuration = properties.get("realtimeConfiguration")
    if configuration is None:
        return
    calls = configuration.get("maxConcurrentCalls") if isinstance(configuration, dict) else configuration
    if calls is None:
        return
    if isinstance(calls, bool) or not isinstance(calls, int) or not 4 <= calls <= 200:
        raise bad_request(
            f"realtimeConfiguration.maxConcurrentCalls must be an integer from 4 to 200, not {calls!r}.",
            "InvalidRequestContent",
        )


async def _json(request: Request) -> Any:
    try:
        return json.loads(await request.body())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise bad_request(f"The request body is not valid JSON: {exc}.", "InvalidRequestContent") from None


def _check_identity(body: dict[str, Any], record: dict[str, Any]) -> None:
    unknown = [key for key in body if key not in TOP_LEVEL_KEYS]
    if unknown:
        raise bad_request(f"Unknown top-level properties {unknown}.", "InvalidRequestContent")
    current = record["definition"]
    for key in ("id", "name", "type", "location"):
        if key in body and str(body[key]).lower() != str(current.get(key)).lower():
            raise bad_request(f"'{key}' of a web service cannot be changed.", "InvalidRequestContent")


@router.get(PROVIDER + "/webServices")
async def list_services(request: Request, subscription_id: str, resource_group: str) -> JSONResponse:
    """The web services of the resource group."""
    ctx, _ = _prepare(request, subscription_id, resource_group)
    records = [
        settle(ctx, r["name"]) or r
        for r in ctx.store.list("arm")
        if r["resource_group"].lower() == resource_group.lower()
    ]
    return JSONResponse({"value": [_render(request, r) for r in records]})


@router.get(SERVICE)
async def get_service(request: Request, subscription_id: str, resource_group: str, name: str) -> JSONResponse:
    """The definition, without keys nor storage key."""
    ctx, _ = _prepare(request, subscription_id, resource_group)
    return JSONResponse(_render(request, _load(ctx, subscription_id, resource_group, name)))


@router.patch(SERVICE)
async def patch_service(
    request: Request, subscription_id: str, resource_group: str, name: str
) -> JSONResponse:
    """Partial update (merge patch object or JSON Patch list), long-running."""
    ctx, _ = _prepare(request, subscription_id, resource_group)
    record = _load(ctx, subscription_id, resource_group, name)
    if (record.get("operation") or {}).get("status") == "InProgress":
        raise ApiError(
            409,
            "Conflict",
            f"Another operation is in progress on web service '{name}'; wait for it to finish.",
        )
    body = await _json(request)
    current = copy.deepcopy(record["definition"])
    if isinstance(body, list):
        import jsonpatch

        try:
            updated = jsonpatch.apply_patch(current, body)
        except jsonpatch.JsonPatchTestFailed as exc:
            raise ApiError(409, "Conflict", f"A JSON Patch 'test' operation failed: {exc}.") from None
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
            raise bad_request(f"Invalid JSON Patch: {exc}.", "InvalidRequestContent") from None
        if not isinstance(updated, dict):
            raise bad_request("The JSON Patch must leave a definition object.", "InvalidRequestContent")
        _check_identity(updated, record)
    elif isinstance(body, dict):
        _check_identity(body, record)
        updated = merge_patch(current, body)
    else:
        raise bad_request(
            "The PATCH body must be a JSON object (merge patch) or a JSON Patch list.",
            "InvalidRequestContent",
        )
    return await _start_operation(request, ctx, record, updated, 200)


@router.put(SERVICE)
async def put_service(request: Request, subscription_id: str, resource_group: str, name: str) -> JSONResponse:
    """Create (201) or replace (200) a web service, long-running."""
    ctx, workspace = _prepare(request, subscription_id, resource_group)
    body = await _json(request)
    if not isinstance(body, dict) or not isinstance(body.get("properties"), dict):
        raise bad_request(
            "The body must be a web service definition with 'location' and 'properties'.",
            "InvalidRequestContent",
        )
    from amlretrain_emulator.state import StateStore

    if not StateStore.valid_id(name):
        raise bad_request(f"Invalid web service name '{name}'.", "InvalidResourceName")
    record = ctx.store.get("arm", name)
    created = record is None
    if record is None:
        task = body.get("tags", {}).get("task") if isinstance(body.get("tags"), dict) else None
        record = {
            "name": name,
            "subscription_id": subscription_id,
            "resource_group": workspace["resource_group"],
            "service_id": new_id(),
            "task": task if task in ("binary", "regression") else "binary",
            "keys": {"primary": new_key(), "secondary": new_key()},
            "definition": None,
            "model": None,
            "max_concurrent_calls": 20,
        }
    else:
        record = settle(ctx, name) or record
        if (record.get("operation") or {}).get("status") == "InProgress":
            raise ApiError(409, "Conflict", f"Another operation is in progress on web service '{name}'.")
    definition = {key: body[key] for key in TOP_LEVEL_KEYS if key in body}
    definition.update(
        {
            "id": resource_id(subscription_id, record["resource_group"], name),
            "name": name,
            "type": RESOURCE_TYPE,
        }
    )
    definition.setdefault("location", "southcentralus")
    definition.setdefault("tags", {})
    return await _start_operation(request, ctx, record, definition, 201 if created else 200)


@router.delete(SERVICE)
async def delete_service(request: Request, subscription_id: str, resource_group: str, name: str) -> Response:
    """Remove a web service (read-only ones too). Answers 204, also when it did not exist."""
    ctx, _ = _prepare(request, subscription_id, resource_group)
    if ctx.store.get("arm", name) is not None:
        record = settle(ctx, name) or _load(ctx, subscription_id, resource_group, name)
        if (record.get("operation") or {}).get("status") == "InProgress":
            raise ApiError(409, "Conflict", f"Another operation is in progress on web service '{name}'.")
        ctx.store.delete("arm", name)
    return Response(status_code=204)


@router.api_route(SERVICE + "/listKeys", methods=["POST", "GET"])
async def list_keys(request: Request, subscription_id: str, resource_group: str, name: str) -> JSONResponse:
    """The web service's keys."""
    ctx, _ = _prepare(request, subscription_id, resource_group)
    record = _load(ctx, subscription_id, resource_group, name)
    return JSONResponse({"primary": record["keys"]["primary"], "secondary": record["keys"]["secondary"]})


@router.get(OPERATION)
async def operation_status(
    request: Request, subscription_id: str, location: str, operation_id: str
) -> JSONResponse:
    """Status of a long-running PUT/PATCH."""
    require_arm_token(request)
    _check_api_version(request)
    ctx = get_context(request)
    for record in ctx.store.list("arm"):
        if record["subscription_id"] != subscription_id:
            continue
        operation = (
            (record.get("operation") or {})
            if (record.get("operation") or {}).get("id") == operation_id
            else None
        )
        if operation is None and operation_id not in record.get("operations", {}):
            continue
        record = settle(ctx, record["name"]) or record
        operation = record.get("operations", {}).get(operation_id) or record["operation"]
        answer = {
            "id": f"/subscriptions/{subscription_id}/providers/Microsoft.MachineLearning/locations/{location}/operationsStatus/{operation_id}",
            "name": operation_id,
            "status": operation["status"],
            "provisioningState": "Provisioning"
            if operation["status"] == "InProgress"
            else operation["status"],
            "startTime": operation["startTime"],
            "endTime": operation["endTime"],
            "percentComplete": operation["percentComplete"],
        }
        if operation.get("error") and operation["status"] == "Failed":
            answer["errorInfo"] = operation["error"]
        return JSONResponse(answer)
    raise ApiError(404, "OperationNotFound", f"Operation '{operation_id}' was not found.")


@router.post("/subscriptions/{subscription_id}/services/{service_id}/execute")
async def execute_arm(request: Request, subscription_id: str, service_id: str) -> JSONResponse:
    """RRS on a new-style web service (keys from listKeys)."""
    ctx = get_context(request)
    record = next(
        (
            r
            for r in ctx.store.list("arm")
            if r["subscription_id"] == subscription_id and r["service_id"] == service_id
        ),
        None,
    )
    if record is None:
        raise ApiError(404, "WebServiceNotFound", f"Web service '{service_id}' was not found.")
    require_bearer(request, (record["keys"]["primary"], record["keys"]["secondary"]), "api key")
    record = settle(ctx, record["name"]) or record
    calls = int(
        (record["definition"]["properties"].get("realtimeConfiguration") or {}).get("maxConcurrentCalls")
        or 20
    )
    return await execute(request, record.get("model"), service_id, calls)
