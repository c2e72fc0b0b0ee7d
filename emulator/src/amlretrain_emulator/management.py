"""Classic web service management API: web services and endpoints (the ``endpointapi`` swagger).

Paths under ``/workspaces/{workspaceId}/webservices``; ``Authorization: Bearer <workspace token>``
(calls on one existing endpoint also accept that endpoint's own keys, as the retraining samples
use them). Objects follow the swagger's ``WebService`` and ``Endpoint`` definitions.

Choices where the documentation is silent (the emulator's documented behaviour):

- PUT of a new endpoint answers 200 with the Endpoint object; PUT of an existing one updates its
  Description/ThrottleLevel/MaxConcurrentCalls and answers 200. A new endpoint starts with the
  default endpoint's current model and resources. ThrottleLevel defaults to ``Low``, which caps
  MaxConcurrentCalls at 4 (``High``: 200), as the swagger says.
- PATCH answers 200 with an empty body; the new model serves after
  ``endpoint_update_delay_seconds`` (default 0). PATCH of the default endpoint is refused.
- A service holds at most ``max_endpoints_per_service`` endpoints, the default one included (a free
  workspace allows 3, a paid one 10,000). PUT of one more answers 400 ``EndpointLimitExceeded``.
- DELETE answers 204; the default endpoint cannot be deleted. Refresh answers 200 (empty);
  ``OverwriteResources: true`` copies the default endpoint's model and resources.
"""

from __future__ import annotations

import html
import json
import re
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from amlretrain_emulator.auth import require_bearer
from amlretrain_emulator.context import EmulatorContext, get_context, utc_now
from amlretrain_emulator.errors import bad_request, not_found
from amlretrain_emulator.models import (
    ModelFetchError,
    effective_at,
    fetch_model,
    promote_if_due,
)
from amlretrain_emulator.records import new_endpoint
from amlretrain_emulator.storage import BlobReference, BlobReferenceError, read_location

if TYPE_CHECKING:
    from collections.abc import Callable

BASE = "/workspaces/{workspace_id}/webservices"
ENDPOINT = BASE + "/{webservice_id}/endpoints/{endpoint_name}"
ENDPOINT_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,22}[a-z0-9])?$")
THROTTLE_CAPS = {"Low": 4, "High": 200}
TRACE_LEVELS = ("None", "Error", "All")
PATCH_KEYS = ("Description", "ThrottleLevel", "MaxConcurrentCalls", "DiagnosticsTraceLevel", "Resources")
CREATE_KEYS = ("Description", "ThrottleLevel", "MaxConcurrentCalls", "DiagnosticsTraceLevel")

router = APIRouter()


def _workspace(ctx: EmulatorContext, workspace_id: str) -> dict[str, Any]:
    workspace = ctx.store.workspace()
    if workspace is None or workspace.get("id") != workspace_id:
        raise not_found(f"Workspace '{workspace_id}' was not found.", "WorkspaceNotFound")
    return workspace


def _webservice(ctx: EmulatorContext, webservice_id: str) -> dict[str, Any]:
    webservice = ctx.store.get("webservices", webservice_id)
    if webservice is None:
        raise not_found(
            f"Web service '{webservice_id}' was not found in this workspace.", "WebServiceNotFound"
        )
    return webservice


def _endpoint(webservice: dict[str, Any], name: str) -> dict[str, Any]:
    endpoint = webservice["endpoints"].get(name)
    if endpoint is None:
        raise not_found(
            f"Endpoint '{name}' was not found in web service '{webservice['name']}'.", "EndpointNotFound"
        )
    return endpoint


def _authorize(request: Request, workspace: dict[str, Any], *endpoint_keys: str | None) -> None:
    require_bearer(
        request, (workspace.get("token"), workspace.get("secondary_token"), *endpoint_keys), "workspace token"
    )


def _prepare(request: Request, workspace_id: str) -> tuple[EmulatorContext, dict[str, Any]]:
    ctx = get_context(request)
    workspace = _workspace(ctx, workspace_id)
    _authorize(request, workspace)
    return ctx, workspace


def _prepare_for_endpoint(
    request: Request, workspace_id: str, webservice_id: str, endpoint_name: str
) -> tuple[EmulatorContext, dict[str, Any]]:
    """Authorize a call on one endpoint: the workspace token, or that endpoint's own keys (as the doc says)."""
    ctx = get_context(request)
    workspace = _workspace(ctx, workspace_id)
    webservice = ctx.store.get("webservices", webservice_id)
    endpoint = (webservice or {}).get("endpoints", {}).get(endpoint_name) or {}
    _authorize(request, workspace, endpoint.get("primary_key"), endpoint.get("secondary_key"))
    return ctx, workspace


def render_webservice(webservice: dict[str, Any], workspace_id: str) -> dict[str, Any]:
    """The swagger's ``WebService`` object.

    :param webservice: the record.
    :param workspace_id: the workspace id.
    """
    return {
        "Id": webservice["id"],
        "Name": webservice["name"],
        "Description": webservice.get("description", ""),
        "CreationTime": webservice["created_at"],
        "WorkspaceId": workspace_id,
        "DefaultEndpointName": webservice["default_endpoint"],
    }


def render_endpoint(
    request: Request,
    ctx: EmulatorContext,
    workspace_id: str,
    webservice: dict[str, Any],
    endpoint: dict[str, Any],
) -> dict[str, Any]:
    """The swagger's ``Endpoint`` object (absolute URLs on this emulator's host).

    :param request: the request (gives the host).
    :param ctx: the emulator context.
    :param workspace_id: the workspace id.
    :param webservice: the web service record.
    :param endpoint: the endpoint record.
    """
    host = str(request.base_url).rstrip("/")
    resources = []
    for resource in endpoint.get("resources", []):
        location = resource["location"]
        try:
            reference = BlobReference(
                location["RelativeLocation"],
                None,
                location["BaseLocation"],
                location.get("SasBlobToken") or "?",
            )
            fresh = read_location(reference, ctx.config.storage_connection_string, ctx.config.sas_ttl_seconds)
            fresh.pop("ConnectionString")
        except (BlobReferenceError, ValueError):
            fresh = dict(location)
        resources.append(
            {"Name": resource["name"], "Kind": resource.get("kind", "TrainedModel"), "Location": fresh}
        )
    return {
        "Name": endpoint["name"],
        "Description": endpoint.get("description", ""),
        "CreationTime": endpoint["created_at"],
        "WorkspaceId": workspace_id,
        "WebServiceId": webservice["id"],
        "HelpLocation": f"{host}/workspaces/{workspace_id}/webservices/{webservice['id']}/endpoints/{endpoint['name']}/help",
        # Studio's own experiment page, as the real service gives it (Studio is retired: informational only).
        "ExperimentLocation": (
            f"https://studio.azureml.net/Home/ViewWorkspaceCached/{workspace_id}"
            f"#/experiments/Experiment/{workspace_id}.f-id.{webservice['id']}"
        ),
        "PrimaryKey": endpoint["primary_key"],
        "SecondaryKey": endpoint["secondary_key"],
        "ApiLocation": f"{host}/workspaces/{workspace_id}/services/{endpoint['execution_id']}",
        "Version": endpoint["version"],
        "MaxConcurrentCalls": endpoint["max_concurrent_calls"],
        "DiagnosticsTraceLevel": endpoint.get("diagnostics_trace_level", "None"),
        "ThrottleLevel": endpoint["throttle_level"],
        "Resources": resources,
    }


async def _json_object(request: Request, allow_empty: bool = False) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        if allow_empty:
            return {}
        raise bad_request("The request body is empty; expected a JSON object.")
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise bad_request(f"The request body is not valid JSON: {exc}.") from None
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.")
    return body


def _check_keys(body: dict[str, Any], allowed: tuple[str, ...]) -> None:
    unknown = [key for key in body if key not in allowed]
    if unknown:
        raise bad_request(f"Unknown properties {unknown}; allowed: {list(allowed)} (case-sensitive).")


def _apply_settings(endpoint: dict[str, Any], body: dict[str, Any]) -> None:
    """Validate and apply Description, ThrottleLevel, MaxConcurrentCalls, DiagnosticsTraceLevel."""
    if "Description" in body:
        description = body["Description"]
        if not isinstance(description, str) or len(description) > 2000:
            raise bad_request("Description must be a string of at most 2000 characters.")
        endpoint["description"] = description
    throttle = body.get("ThrottleLevel", endpoint.get("throttle_level", "Low"))
    if throttle not in THROTTLE_CAPS:
        raise bad_request(f"ThrottleLevel must be 'Low' or 'High' (got {throttle!r}).")
    calls = body.get(
        "MaxConcurrentCalls", endpoint.get("max_concurrent_calls", 20 if throttle == "High" else 4)
    )
    if not isinstance(calls, int) or isinstance(calls, bool) or not 1 <= calls <= 200:
        raise bad_request("MaxConcurrentCalls must be an integer from 1 to 200.")
    endpoint["throttle_level"] = throttle
    endpoint["max_concurrent_calls"] = min(calls, THROTTLE_CAPS[throttle])
    if "DiagnosticsTraceLevel" in body:
        if body["DiagnosticsTraceLevel"] not in TRACE_LEVELS:
            raise bad_request(f"DiagnosticsTraceLevel must be one of {list(TRACE_LEVELS)}.")
        endpoint["diagnostics_trace_level"] = body["DiagnosticsTraceLevel"]


def _settle(ctx: EmulatorContext, webservice: dict[str, Any]) -> dict[str, Any]:
    """Promote due pending models of a web service (persisted); returns the fresh record."""
    if not any(e.get("pending_model") for e in webservice["endpoints"].values()):
        return webservice

    def _change(record: dict[str, Any]) -> None:
        for endpoint in record["endpoints"].values():
            promote_if_due(endpoint)

    return ctx.store.update("webservices", webservice["id"], _change) or webservice


def settled_endpoint(ctx: EmulatorContext, webservice: dict[str, Any], name: str) -> dict[str, Any]:
    """An endpoint with its pending model promoted when due (used by RRS and BES scoring).

    :param ctx: the emulator context.
    :param webservice: the web service record.
    :param name: the endpoint name.
    """
    return _settle(ctx, webservice)["endpoints"][name]


def _update(
    ctx: EmulatorContext, webservice_id: str, change: Callable[[dict[str, Any]], None]
) -> dict[str, Any]:
    record = ctx.store.update("webservices", webservice_id, change)
    if record is None:
        raise not_found(
            f"Web service '{webservice_id}' was not found in this workspace.", "WebServiceNotFound"
        )
    return record


@router.get(BASE)
async def list_webservices(request: Request, workspace_id: str) -> JSONResponse:
    """All web services of the workspace."""
    ctx, _ = _prepare(request, workspace_id)
    return JSONResponse([render_webservice(w, workspace_id) for w in ctx.store.list("webservices")])


@router.get(BASE + "/{webservice_id}")
async def get_webservice(request: Request, workspace_id: str, webservice_id: str) -> JSONResponse:
    """One web service."""
    ctx, _ = _prepare(request, workspace_id)
    return JSONResponse(render_webservice(_webservice(ctx, webservice_id), workspace_id))


@router.get(BASE + "/{webservice_id}/endpoints")
async def list_endpoints(request: Request, workspace_id: str, webservice_id: str) -> JSONResponse:
    """All endpoints of a web service."""
    ctx, _ = _prepare(request, workspace_id)
    webservice = _settle(ctx, _webservice(ctx, webservice_id))
    return JSONResponse(
        [render_endpoint(request, ctx, workspace_id, webservice, e) for e in webservice["endpoints"].values()]
    )


@router.get(ENDPOINT)
async def get_endpoint(
    request: Request, workspace_id: str, webservice_id: str, endpoint_name: str
) -> JSONResponse:
    """One endpoint (workspace token or the endpoint's own key)."""
    ctx, _ = _prepare_for_endpoint(request, workspace_id, webservice_id, endpoint_name)
    webservice = _settle(ctx, _webservice(ctx, webservice_id))
    endpoint = _endpoint(webservice, endpoint_name)
    return JSONResponse(render_endpoint(request, ctx, workspace_id, webservice, endpoint))


@router.get(ENDPOINT + "/help")
async def endpoint_help(
    request: Request, workspace_id: str, webservice_id: str, endpoint_name: str
) -> Response:
    """The endpoint's API help page (``HelpLocation``): where to call RRS and BES, and with which key."""
    ctx = get_context(request)
    _workspace(ctx, workspace_id)
    webservice = _webservice(ctx, webservice_id)
    endpoint = _endpoint(webservice, endpoint_name)
    api = f"{str(request.base_url).rstrip('/')}/workspaces/{workspace_id}/services/{endpoint['execution_id']}"
    page = (
        f"<html><head><title>{html.escape(webservice['name'])} / {html.escape(endpoint_name)}</title></head><body>"
        f"<h1>{html.escape(webservice['name'])}: endpoint {html.escape(endpoint_name)}</h1>"
        f"<p>Request-Response: <code>POST {api}/execute?api-version=2.0&amp;details=true</code></p>"
        f"<p>Batch Execution: <code>POST {api}/jobs?api-version=2.0</code></p>"
        "<p>Authorization: <code>Bearer &lt;the endpoint's PrimaryKey or SecondaryKey&gt;</code></p>"
        "</body></html>"
    )
    return Response(page, media_type="text/html")


@router.put(ENDPOINT)
async def put_endpoint(
    request: Request, workspace_id: str, webservice_id: str, endpoint_name: str
) -> JSONResponse:
    """Create an endpoint (or update the settings of an existing one)."""
    ctx, _ = _prepare_for_endpoint(request, workspace_id, webservice_id, endpoint_name)
    _webservice(ctx, webservice_id)
    if not ENDPOINT_NAME.match(endpoint_name):
        raise bad_request(
            f"Invalid endpoint name '{endpoint_name}': use at most 24 characters, lowercase letters, digits "
            "and hyphens, not starting or ending with a hyphen.",
            "InvalidEndpointName",
        )
    body = await _json_object(request, allow_empty=True)
    _check_keys(body, CREATE_KEYS)

    def _change(record: dict[str, Any]) -> None:
        endpoints = record["endpoints"]
        if endpoint_name not in endpoints:
            limit = ctx.config.max_endpoints_per_service
            if len(endpoints) >= limit:
                raise bad_request(
                    f"Web service '{webservice_id}' already has {len(endpoints)} endpoints, the most this workspace "
                    f"allows ({limit}, the default endpoint included). Delete an endpoint that is no longer used, "
                    "reuse an existing one, or move the service to a paid (Standard) plan.",
                    "EndpointLimitExceeded",
                )
            default = endpoints[record["default_endpoint"]]
            promote_if_due(default)
            created = new_endpoint(
                endpoint_name,
                model=default.get("model"),
                resources=json.loads(json.dumps(default.get("resources", []))),
            )
            created["throttle_level"] = "Low"
            created.pop("max_concurrent_calls")
            _apply_settings(created, body)
            endpoints[endpoint_name] = created
        else:
            _apply_settings(endpoints[endpoint_name], body)

    webservice = _update(ctx, webservice_id, _change)
    return JSONResponse(
        render_endpoint(request, ctx, workspace_id, webservice, webservice["endpoints"][endpoint_name])
    )


@router.delete(ENDPOINT)
async def delete_endpoint(
    request: Request, workspace_id: str, webservice_id: str, endpoint_name: str
) -> Response:
    """Delete a non-default endpoint."""
    ctx, _ = _prepare_for_endpoint(request, workspace_id, webservice_id, endpoint_name)
    webservice = _webservice(ctx, webservice_id)
    _endpoint(webservice, endpoint_name)
    if endpoint_name == webservice["default_endpoint"]:
        raise bad_request("The default endpoint of a web service cannot be deleted.")
    _update(ctx, webservice_id, lambda record: record["endpoints"].pop(endpoint_name, None))
    return Response(status_code=204)


@router.post(ENDPOINT + "/refresh")
async def refresh_endpoint(
    request: Request, workspace_id: str, webservice_id: str, endpoint_name: str
) -> Response:
    """Bring an endpoint up to date with the web service (``OverwriteResources`` copies the default model)."""
    ctx, _ = _prepare_for_endpoint(request, workspace_id, webservice_id, endpoint_name)
    webservice = _webservice(ctx, webservice_id)
    _endpoint(webservice, endpoint_name)
    body = await _json_object(request, allow_empty=True)
    _check_keys(body, ("OverwriteResources",))
    overwrite = body.get("OverwriteResources", False)
    if not isinstance(overwrite, bool):
        raise bad_request("OverwriteResources must be true or false.")

    def _change(record: dict[str, Any]) -> None:
        endpoint = record["endpoints"][endpoint_name]
        default = record["endpoints"][record["default_endpoint"]]
        promote_if_due(default)
        if overwrite and endpoint is not default:
            endpoint["model"] = default.get("model")
            endpoint["pending_model"] = None
            endpoint["resources"] = json.loads(json.dumps(default.get("resources", [])))
        endpoint["version"] = utc_now()

    _update(ctx, webservice_id, _change)
    return Response(status_code=200)


@router.patch(ENDPOINT)
async def patch_endpoint(
    request: Request, workspace_id: str, webservice_id: str, endpoint_name: str
) -> Response:
    """Update an endpoint's settings and/or its trained model (``Resources``)."""
    ctx, _ = _prepare_for_endpoint(request, workspace_id, webservice_id, endpoint_name)
    webservice = _webservice(ctx, webservice_id)
    endpoint = _endpoint(webservice, endpoint_name)
    body = await _json_object(request)
    _check_keys(body, PATCH_KEYS)
    if endpoint_name == webservice["default_endpoint"]:
        raise bad_request(
            f"The default endpoint '{endpoint_name}' cannot be patched: create a non-default endpoint "
            f"(PUT .../webservices/{webservice_id}/endpoints/<name>) and patch that one.",
            "DefaultEndpointNotPatchable",
        )
    updates: list[tuple[int, dict[str, Any], dict[str, Any]]] = []
    if "Resources" in body:
        updates = await _fetch_resource_updates(ctx, webservice, endpoint, body["Resources"])
    scratch = json.loads(json.dumps(endpoint))
    _apply_settings(scratch, body)  # validate before writing anything

    def _change(record: dict[str, Any]) -> None:
        target = record["endpoints"][endpoint_name]
        _apply_settings(target, body)
        for index, location, model in updates:
            target["resources"][index]["location"] = location
            target["pending_model"] = {
                "model": model,
                "effective_at": effective_at(ctx.config.endpoint_update_delay_seconds),
            }
            promote_if_due(target)
        if updates:
            target["version"] = utc_now()
            # What tests and people can ask: every model change that reached this endpoint, in order.
            target.setdefault("model_changes", []).extend(
                {"at": target["version"], "resource": target["resources"][index]["name"], **location}
                for index, location, _ in updates
            )

    _update(ctx, webservice_id, _change)
    return Response(status_code=200)


async def _fetch_resource_updates(
    ctx: EmulatorContext, webservice: dict[str, Any], endpoint: dict[str, Any], resources: Any
) -> list[tuple[int, dict[str, Any], dict[str, Any]]]:
    """Validate a PATCH ``Resources`` list and fetch each new model now (through its SAS)."""
    if webservice["kind"] != "predictive" or not endpoint.get("resources"):
        raise bad_request(
            f"Endpoint '{endpoint['name']}' belongs to the training web service '{webservice['name']}', which has "
            "no updatable resources: create and patch an endpoint of the predictive web service instead.",
            "NoUpdatableResources",
        )
    if not isinstance(resources, list) or not resources:
        raise bad_request("Resources must be a non-empty list of {Name, Location} objects.")
    names = [r["name"] for r in endpoint["resources"]]
    updates = []
    for item in resources:
        if (
            not isinstance(item, dict)
            or not isinstance(item.get("Name"), str)
            or not isinstance(item.get("Location"), dict)
        ):
            raise bad_request(
                "Each resource needs a Name and a Location {BaseLocation, RelativeLocation, SasBlobToken}."
            )
        if item["Name"] not in names:
            raise bad_request(
                f"Resource name '{item['Name']}' does not match any resource of endpoint '{endpoint['name']}'; "
                f"valid names: {', '.join(repr(n) for n in names)} (GET the endpoint to see them).",
                "ResourceNotFound",
            )
        location = item["Location"]
        missing = [k for k in ("BaseLocation", "RelativeLocation", "SasBlobToken") if not location.get(k)]
        if missing:
            raise bad_request(f"Location of resource '{item['Name']}' is missing {', '.join(missing)}.")
        try:
            reference = BlobReference.parse(
                {k: location[k] for k in ("BaseLocation", "RelativeLocation", "SasBlobToken")},
                f"resource '{item['Name']}'",
            )
        except BlobReferenceError as exc:
            raise bad_request(f"Invalid Location: {exc}.") from None
        if not reference.relative_location.lower().endswith(".ilearner"):
            raise bad_request(
                f"Resource '{item['Name']}' must point to a trained model (.ilearner), got '{reference.describe()}'."
            )
        try:
            model = await run_in_threadpool(
                fetch_model, reference.client(), reference.describe(), webservice["task"]
            )
        except ModelFetchError as exc:
            raise bad_request(
                f"The trained model could not be read through the given SasBlobToken: {exc}. "
                "If the token has expired, GET the BES job again for a fresh one.",
                "ResourceNotReadable",
            ) from None
        current = (endpoint.get("model") or {}).get("feature_names")
        if current and model["feature_names"] != current:
            raise bad_request(
                f"The model at '{reference.describe()}' was trained on other columns than this experiment's input."
            )
        stored = {k: v for k, v in reference.to_json().items() if k != "ConnectionString"}
        updates.append((names.index(item["Name"]), stored, model))
    return updates
