"""The emulator's own admin API under ``/_emulator`` (not Azure): health, fault rules, jobs, served models.

Unauthenticated, so it answers loopback clients only (403 otherwise). Faults never apply here.
"""

from __future__ import annotations

import collections
import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from amlretrain_emulator.context import get_context
from amlretrain_emulator.errors import ApiError, bad_request
from amlretrain_emulator.faults import ADMIN_PREFIX
from amlretrain_emulator.management import settled_endpoint

LOOPBACK_HOSTS = {"127.0.0.1", "::1", "localhost", "testclient"}

router = APIRouter(prefix=ADMIN_PREFIX)


def require_loopback(request: Request) -> None:
    """Refuse admin calls that do not come from this machine.

    :param request: the request.
    """
    host = request.client.host if request.client else ""
    if host not in LOOPBACK_HOSTS and not host.startswith("127."):
        raise ApiError(403, "Forbidden", "The emulator admin API only answers loopback clients.")


@router.get("/health")
async def health(request: Request) -> JSONResponse:
    """Liveness plus a summary of the state (no secrets)."""
    require_loopback(request)
    ctx = get_context(request)
    workspace = ctx.store.workspace()
    jobs = collections.Counter(job["status"] for job in ctx.store.list("jobs"))
    return JSONResponse(
        {
            "status": "ok",
            "seeded": workspace is not None,
            "workspace_id": workspace.get("id") if workspace else None,
            "web_services": len(ctx.store.list("webservices")),
            "jobs": dict(jobs),
            "job_concurrency": ctx.config.job_concurrency,
        }
    )


@router.get("/faults")
async def get_faults(request: Request) -> JSONResponse:
    """The current fault document (with remaining ``times``)."""
    require_loopback(request)
    return JSONResponse(get_context(request).faults.get())


@router.put("/faults")
async def put_faults(request: Request) -> JSONResponse:
    """Replace the fault document; answers the stored document."""
    require_loopback(request)
    try:
        document = json.loads(await request.body() or b"{}")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise bad_request(f"The fault document is not valid JSON: {exc}.") from None
    try:
        return JSONResponse(get_context(request).faults.set(document))
    except ValueError as exc:
        raise bad_request(f"Invalid fault document: {exc}.") from None


@router.get("/fault-stats")
async def get_fault_stats(request: Request) -> JSONResponse:
    """Azure API requests seen and faults applied, by kind, since the fault document was last set."""
    require_loopback(request)
    return JSONResponse(get_context(request).faults.stats())


JOB_SUMMARY_KEYS = (
    "id",
    "service_id",
    "web_service_id",
    "status",
    "created_at",
    "start_requested_at",
    "started_at",
    "ended_at",
    "details",
)


@router.get("/jobs")
async def list_jobs(request: Request) -> JSONResponse:
    """All BES jobs, oldest first, without their request bodies (they hold connection strings)."""
    require_loopback(request)
    jobs = sorted(
        get_context(request).store.list("jobs"), key=lambda job: (job.get("created_at") or "", job["id"])
    )
    return JSONResponse({"jobs": [{key: job.get(key) for key in JOB_SUMMARY_KEYS} for job in jobs]})


@router.get("/endpoint-changes")
async def list_endpoint_changes(request: Request) -> JSONResponse:
    """Every trained-model change a PATCH made to a classic endpoint, oldest first (locations, no SAS)."""
    require_loopback(request)
    changes = []
    for webservice in get_context(request).store.list("webservices"):
        for name, endpoint in webservice.get("endpoints", {}).items():
            for change in endpoint.get("model_changes", []):
                changes.append(
                    {
                        "web_service_id": webservice["id"],
                        "endpoint": name,
                        "at": change.get("at"),
                        "resource": change.get("resource"),
                        "relative_location": change.get("RelativeLocation"),
                    }
                )
    return JSONResponse({"changes": sorted(changes, key=lambda change: change["at"] or "")})


SERVED_MODEL_KEYS = ("job_id", "trained_at", "training_rows")


def _served(model: dict[str, Any] | None) -> dict[str, Any] | None:
    return {key: model.get(key) for key in SERVED_MODEL_KEYS} if model else None


@router.get("/endpoints")
async def list_served_models(request: Request) -> JSONResponse:
    """
    Which trained model every classic endpoint serves now (the BES job that trained it; ``null`` for the seed's
    model), and the one waiting to take effect: what scoring uses, whatever the endpoint's resource URI says.
    """
    require_loopback(request)
    ctx = get_context(request)
    served = []
    for webservice in ctx.store.list("webservices"):
        for name in webservice["endpoints"]:
            endpoint = settled_endpoint(ctx, webservice, name)
            served.append(
                {
                    "web_service_id": webservice["id"],
                    "endpoint": name,
                    "model": _served(endpoint.get("model")),
                    "pending_model": _served((endpoint.get("pending_model") or {}).get("model")),
                }
            )
    return JSONResponse({"endpoints": served})
