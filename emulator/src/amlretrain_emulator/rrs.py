"""Request-Response Service: ``POST {ApiLocation}/execute?api-version=2.0[&details=true]``.

Classic endpoints: ``/workspaces/{ws}/services/{executionId}/execute`` with the endpoint's key.
New (ARM) web services: ``/subscriptions/{sub}/services/{id}/execute`` with a ``listKeys`` key.

Request: ``{"Inputs": {"input1": {"ColumnNames": [...], "Values": [[...]]}}, "GlobalParameters": {}}``.
Answer: ``{"Results": {"output1": {"type": "table", "value": {"ColumnNames", "ColumnTypes", "Values"}}}}``
with every value a string; ``ColumnNames``/``ColumnTypes`` only with ``details=true``. The input
columns come back followed by ``Scored Labels`` (and ``Scored Probabilities`` for binary models),
scored with the model the endpoint serves right now. More than ``MaxConcurrentCalls`` calls in
flight on one endpoint get a 429 with ``Retry-After``.

``format=swagger`` (the form the services' own swagger documents) takes and gives rows as objects:
``{"Inputs": {"input1": [{"age": 39, ...}]}}`` answers ``{"Results": {"output1": [{"age": "39", ...,
"Scored Labels": "1"}]}}``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import threading
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from amlretrain_emulator.bes import authorize_endpoint, check_api_version, resolve_endpoint
from amlretrain_emulator.context import get_context
from amlretrain_emulator.errors import ApiError, bad_request
from amlretrain_emulator.management import settled_endpoint
from amlretrain_emulator.scoring import score_table
from amlretrain_emulator.tables import DataError

if TYPE_CHECKING:
    from collections.abc import Iterator

INPUT_PORT = "input1"
OUTPUT_PORT = "output1"

router = APIRouter()


class ConcurrencyLimiter:
    """Counts calls in flight per endpoint."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active: collections.Counter[str] = collections.Counter()

    @contextlib.contextmanager
    def slot(self, key: str, limit: int) -> Iterator[None]:
        """Hold one call slot of ``key``, or raise a 429 when ``limit`` are in flight.

        :param key: the endpoint's execution id.
        :param limit: its MaxConcurrentCalls.
        """
        with self._lock:
            if self._active[key] >= limit:
                raise ApiError(
                    429,
                    "TooManyRequests",
                    f"More than {limit} concurrent calls on this endpoint (MaxConcurrentCalls); retry later.",
                    {"Retry-After": "1"},
                )
            self._active[key] += 1
        try:
            yield
        finally:
            with self._lock:
                self._active[key] -= 1


LIMITER = ConcurrencyLimiter()


def _swagger_rows(rows: Any) -> tuple[list[str], list[list[Any]]]:
    """``format=swagger`` input: a list of ``{column: value}`` objects, turned into names and rows."""
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise bad_request(
            f"With format=swagger, Inputs.{INPUT_PORT} must be a list of rows as objects: "
            '[{"column": value, ...}, ...].'
        )
    names: list[str] = []
    for row in rows:
        names.extend(name for name in row if name not in names)
    return names, [[row.get(name) for name in names] for row in rows]


def _parse_request(raw: bytes, swagger: bool = False) -> tuple[list[str], list[list[Any]]]:
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise bad_request(f"The request body is not valid JSON: {exc}.") from None
    if not isinstance(body, dict) or not isinstance(body.get("Inputs"), dict):
        raise bad_request(
            'The request body needs "Inputs": {"input1": {"ColumnNames": [...], "Values": [[...]]}}.'
        )
    unknown = [key for key in body if key not in ("Inputs", "GlobalParameters")]
    if unknown:
        raise bad_request(f"Unknown request properties {unknown}; expected Inputs, GlobalParameters.")
    if body.get("GlobalParameters"):
        raise bad_request(
            f"Unknown global parameters {sorted(body['GlobalParameters'])}; this web service has none."
        )
    inputs = body["Inputs"]
    for port in inputs:
        if port != INPUT_PORT:
            raise bad_request(
                f"Unknown input name '{port}'; this web service's input is '{INPUT_PORT}' (case-sensitive)."
            )
    table = inputs.get(INPUT_PORT)
    if swagger:
        return _swagger_rows(table)
    if not isinstance(table, dict):
        raise bad_request(f'Inputs.{INPUT_PORT} is required: {{"ColumnNames": [...], "Values": [[...]]}}.')
    names, values = table.get("ColumnNames"), table.get("Values")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise bad_request(f"Inputs.{INPUT_PORT}.ColumnNames must be a list of strings.")
    if not isinstance(values, list) or not all(isinstance(row, list) for row in values):
        raise bad_request(f"Inputs.{INPUT_PORT}.Values must be a list of rows (lists of values).")
    return names, values


async def execute(
    request: Request, model: dict[str, Any] | None, limiter_key: str, max_calls: int
) -> JSONResponse:
    """Score a request body with ``model`` under the endpoint's concurrency limit.

    :param request: the request.
    :param model: the model the endpoint serves.
    :param limiter_key: the endpoint's id for the concurrency count.
    :param max_calls: its MaxConcurrentCalls.
    """
    check_api_version(request)
    swagger = request.query_params.get("format", "").lower() == "swagger"
    names, values = _parse_request(await request.body(), swagger)
    if model is None:
        raise ApiError(503, "ServiceUnavailable", "This endpoint has no trained model yet.")
    details = request.query_params.get("details", "false").lower() == "true"
    ctx = get_context(request)
    with LIMITER.slot(limiter_key, max_calls):
        try:
            out_names, out_types, rows = score_table(model, names, values)
        except DataError as exc:
            raise bad_request(f"Input '{INPUT_PORT}': {exc}.") from None
        if ctx.config.rrs_min_seconds:
            await asyncio.sleep(ctx.config.rrs_min_seconds)
    if swagger:
        return JSONResponse(
            {"Results": {OUTPUT_PORT: [dict(zip(out_names, row, strict=True)) for row in rows]}}
        )
    value: dict[str, Any] = {"Values": rows}
    if details:
        value = {"ColumnNames": out_names, "ColumnTypes": out_types, "Values": rows}
    return JSONResponse({"Results": {OUTPUT_PORT: {"type": "table", "value": value}}})


@router.post("/workspaces/{workspace_id}/services/{service_id}/execute")
async def execute_classic(request: Request, workspace_id: str, service_id: str) -> JSONResponse:
    """RRS on a classic endpoint."""
    ctx = get_context(request)
    webservice, endpoint = resolve_endpoint(ctx, workspace_id, service_id)
    authorize_endpoint(request, endpoint)
    if webservice["kind"] != "predictive":
        check_api_version(request)
        raise bad_request(
            f"Web service '{webservice['name']}' is a training experiment: its outputs are a trained model and "
            "an evaluation, which only BES (…/jobs) produces. Call RRS on the predictive web service."
        )
    endpoint = settled_endpoint(ctx, webservice, endpoint["name"])
    return await execute(request, endpoint.get("model"), service_id, endpoint["max_concurrent_calls"])
