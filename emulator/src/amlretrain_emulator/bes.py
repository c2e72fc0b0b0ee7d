"""The Batch Execution Service routes: submit, start, status, cancel (``api-version=2.0``).

Base: ``/workspaces/{workspaceId}/services/{serviceId}`` where ``serviceId`` is the execution id
of one endpoint of a web service.

Choices where the documentation is silent (the emulator's documented behaviour):

- start of a job that is already queued, running or ended answers 400 ``CannotStartJob`` ("The job
  cannot be started because it is in Running state") and changes nothing;
- a started job stays ``NotStarted`` while it waits in the FIFO queue, then turns ``Running``;
- DELETE of a job that has ended answers 204 and changes nothing (its outputs stay);
- check order: unknown workspace/service 404, then credentials 401, then ``api-version`` 400,
  then unknown job 404, then the body 400.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from amlretrain_emulator.auth import require_bearer
from amlretrain_emulator.context import EmulatorContext, get_context, utc_now
from amlretrain_emulator.errors import bad_request, not_found
from amlretrain_emulator.experiments import DATA_URI, OUTPUT_SUFFIXES
from amlretrain_emulator.jobs import JobStatus
from amlretrain_emulator.storage import (
    BlobReference,
    BlobReferenceError,
    read_location,
)

API_VERSION = "2.0"
BASE = "/workspaces/{workspace_id}/services/{service_id}"
REQUEST_KEYS = ("Inputs", "Input", "Outputs", "GlobalParameters", "AzureBatchPoolId")

router = APIRouter()


def check_api_version(request: Request, supported: str = API_VERSION) -> None:
    """Raise a 400 unless ``api-version`` is the supported one.

    :param request: the request.
    :param supported: the accepted version.
    """
    version = request.query_params.get("api-version")
    if version is None:
        raise bad_request(
            f"The api-version query parameter is required; use api-version={supported}.", "MissingApiVersion"
        )
    if version != supported:
        raise bad_request(
            f"Unsupported api-version '{version}'; this API supports api-version={supported}.",
            "InvalidApiVersion",
        )


def resolve_endpoint(
    ctx: EmulatorContext, workspace_id: str, service_id: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The web service and endpoint behind an execution URL (404 if unknown).

    :param ctx: the emulator context.
    :param workspace_id: workspace id from the URL.
    :param service_id: service (endpoint execution) id from the URL.
    """
    workspace = ctx.store.workspace()
    if workspace is None or workspace.get("id") != workspace_id:
        raise not_found(f"Workspace '{workspace_id}' was not found.", "WorkspaceNotFound")
    found = ctx.store.find_endpoint(workspace_id, service_id)
    if found is None:
        raise not_found(
            f"Web service '{service_id}' was not found in workspace '{workspace_id}'.", "WebServiceNotFound"
        )
    webservice, name = found
    return webservice, webservice["endpoints"][name]


def authorize_endpoint(request: Request, endpoint: dict[str, Any]) -> None:
    """Require the endpoint's primary or secondary key.

    :param request: the request.
    :param endpoint: the endpoint record.
    """
    require_bearer(request, (endpoint.get("primary_key"), endpoint.get("secondary_key")), "api key")


def _prepare(
    request: Request, workspace_id: str, service_id: str
) -> tuple[EmulatorContext, dict[str, Any], dict[str, Any]]:
    ctx = get_context(request)
    webservice, endpoint = resolve_endpoint(ctx, workspace_id, service_id)
    authorize_endpoint(request, endpoint)
    check_api_version(request)
    return ctx, webservice, endpoint


def _load_job(ctx: EmulatorContext, service_id: str, job_id: str) -> dict[str, Any]:
    job = ctx.store.get("jobs", job_id)
    if job is None or job.get("service_id") != service_id:
        raise not_found(f"Job '{job_id}' was not found for this web service.", "JobNotFound")
    return job


def _names(values: Any) -> str:
    return ", ".join(f"'{v}'" for v in values) or "(none)"


def validate_batch_request(webservice: dict[str, Any], body: Any) -> dict[str, Any]:
    """Validate a BES request body against the web service's ports and parameters.

    :param webservice: the web service record.
    :param body: the parsed JSON body.
    :return: the normalised request (legacy ``Input`` turned into ``Inputs``).
    :raises ~.errors.ApiError: 400 naming the problem.
    """
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object with Inputs, Outputs and GlobalParameters.")
    unknown = [key for key in body if key not in REQUEST_KEYS]
    if unknown:
        raise bad_request(
            f"Unknown request properties {_names(unknown)}; expected {_names(REQUEST_KEYS)} (case-sensitive)."
        )
    request = {
        key: body[key] for key in ("Inputs", "Outputs", "GlobalParameters", "AzureBatchPoolId") if key in body
    }
    input_ports: list[str] = webservice["input_ports"]
    if "Input" in body and body["Input"] is not None:
        if body.get("Inputs"):
            raise bad_request("Give either Inputs or the legacy Input, not both.")
        request["Inputs"] = {input_ports[0]: body["Input"]}
    inputs = request.get("Inputs") or {}
    if not isinstance(inputs, dict):
        raise bad_request("Inputs must be an object mapping input names to blob references.")
    for port, reference in inputs.items():
        if port not in input_ports:
            raise bad_request(
                f"Unknown input name '{port}'; this web service's inputs are {_names(input_ports)} (case-sensitive)."
            )
        _check_reference(reference, f"input '{port}'")
    outputs = request.get("Outputs")
    output_ports: dict[str, str] = webservice["output_ports"]
    if not isinstance(outputs, dict):
        raise bad_request(f"Outputs is required: an object with the outputs {_names(output_ports)}.")
    for port in outputs:
        if port not in output_ports:
            raise bad_request(
                f"Unknown output name '{port}'; this web service's outputs are {_names(output_ports)} (case-sensitive)."
            )
    for port, role in output_ports.items():
        if port not in outputs:
            raise bad_request(f"The required output '{port}' ({role}) is missing from Outputs.")
        reference = _check_reference(outputs[port], f"output '{port}'")
        suffix = OUTPUT_SUFFIXES[role]
        if not reference.relative_location.lower().endswith(suffix):
            what = "a trained model" if role == "model" else f"the {role} table"
            raise bad_request(
                f"Output '{port}' is {what}: its RelativeLocation must end in '{suffix}' "
                f"(got '{reference.relative_location}')."
            )
    parameters = request.get("GlobalParameters") or {}
    if not isinstance(parameters, dict):
        raise bad_request("GlobalParameters must be an object mapping parameter names to values.")
    known = webservice.get("global_parameters", {})
    for name, value in parameters.items():
        if name not in known:
            raise bad_request(
                f"Unknown global parameter '{name}'; this web service's parameters are {_names(known)} (case-sensitive)."
            )
        if value is not None and not isinstance(value, str | int | float | bool):
            raise bad_request(f"Global parameter '{name}' must be a string or a number.")
    data_uri = parameters.get(DATA_URI)
    if data_uri is not None and not isinstance(data_uri, str):
        raise bad_request(f"Global parameter '{DATA_URI}' must be a string (a blob URL).")
    if not inputs and input_ports and not data_uri:
        detail = f" or the '{DATA_URI}' global parameter" if DATA_URI in known else ""
        raise bad_request(f"The request has no input: give Inputs.{input_ports[0]}{detail}.")
    if inputs and data_uri:
        raise bad_request(
            f"Give either Inputs.{input_ports[0]} or the '{DATA_URI}' global parameter, not both."
        )
    pool = body.get("AzureBatchPoolId")
    if pool is not None and not isinstance(pool, str):
        raise bad_request("AzureBatchPoolId must be a string.")
    return request


def _check_reference(data: Any, where: str) -> BlobReference:
    try:
        return BlobReference.parse(data, where)
    except BlobReferenceError as exc:
        raise bad_request(f"Invalid blob reference: {exc}.") from None


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        raise bad_request("The request body is empty; expected a JSON object.")
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise bad_request(f"The request body is not valid JSON: {exc}.") from None


@router.post(BASE + "/jobs")
async def submit_job(request: Request, workspace_id: str, service_id: str) -> Response:
    """Create a job (``NotStarted``); answer its id as a JSON string."""
    ctx, webservice, _ = _prepare(request, workspace_id, service_id)
    normalised = validate_batch_request(webservice, await _json_body(request))
    job_id = uuid.uuid4().hex
    ctx.store.put(
        "jobs",
        job_id,
        {
            "id": job_id,
            "workspace_id": workspace_id,
            "service_id": service_id,
            "web_service_id": webservice["id"],
            "status": JobStatus.NOT_STARTED.value,
            "request": normalised,
            "created_at": utc_now(),
            "start_requested_at": None,
            "started_at": None,
            "ended_at": None,
            "details": None,
            "results": None,
        },
    )
    return JSONResponse(job_id)


@router.post(BASE + "/jobs/{job_id}/start")
async def start_job(request: Request, workspace_id: str, service_id: str, job_id: str) -> Response:
    """Queue a ``NotStarted`` job; 400 ``CannotStartJob`` for a job already started (queued) or ended."""
    ctx, _, _ = _prepare(request, workspace_id, service_id)
    _load_job(ctx, service_id, job_id)
    queued = False
    refused: str | None = None

    def _change(record: dict[str, Any]) -> None:
        nonlocal queued, refused
        if record["status"] == JobStatus.NOT_STARTED.value and not record.get("start_requested_at"):
            record["start_requested_at"] = utc_now()
            queued = True
        elif record["status"] == JobStatus.NOT_STARTED.value:
            refused = "it has already been started and is waiting in the queue"
        else:
            refused = f"it is in {record['status']} state"

    with ctx.runner.commit_lock(job_id):
        ctx.store.update("jobs", job_id, _change)
    if refused:
        raise bad_request(f"The job cannot be started because {refused}.", "CannotStartJob")
    if queued:
        ctx.runner.enqueue(job_id)
    return Response(status_code=204)


@router.get(BASE + "/jobs/{job_id}")
async def job_status(request: Request, workspace_id: str, service_id: str, job_id: str) -> Response:
    """The status object; results carry a fresh read-only SAS per output."""
    ctx, _, _ = _prepare(request, workspace_id, service_id)
    job = _load_job(ctx, service_id, job_id)
    status = JobStatus(job["status"])
    results = None
    if status is JobStatus.FINISHED and job.get("results"):
        results = {port: _result_location(ctx, job, port) for port in job["results"]}
    code: str | int = status.code if ctx.faults.integer_status_codes() else status.value
    return JSONResponse({"StatusCode": code, "Results": results, "Details": job.get("details")})


@router.delete(BASE + "/jobs/{job_id}")
async def cancel_job(request: Request, workspace_id: str, service_id: str, job_id: str) -> Response:
    """Cancel a job that has not ended (its outputs are never written); 204 either way."""
    ctx, _, _ = _prepare(request, workspace_id, service_id)
    _load_job(ctx, service_id, job_id)

    def _change(record: dict[str, Any]) -> None:
        if not JobStatus(record["status"]).is_terminal:
            record["status"] = JobStatus.CANCELLED.value
            record["details"] = "The job was cancelled by a DELETE request."
            record["ended_at"] = utc_now()

    with ctx.runner.commit_lock(job_id):
        ctx.runner.cancel(job_id)
        ctx.store.update("jobs", job_id, _change)
    return Response(status_code=204)


def _result_location(ctx: EmulatorContext, job: dict[str, Any], port: str) -> dict[str, Any]:
    """One entry of ``Results``: where the output is, with a fresh read-only SAS."""
    reference = BlobReference.parse(job["request"]["Outputs"][port], f"output '{port}'")
    return read_location(reference, ctx.config.storage_connection_string, ctx.config.sas_ttl_seconds)
