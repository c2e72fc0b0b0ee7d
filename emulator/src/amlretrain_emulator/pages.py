"""Pages a person opens in a browser (not Azure): ``GET /_emulator/ui/jobs/{job_id}`` shows one BES job.

The Airflow task's "Azure ML BES job" link points here on the local stack: the BES status URL needs
the API key, which a browser does not send. The page shows the job's status, timings, inputs,
outputs, global parameters and details, and never a secret: blob references are shown as their
account endpoint and ``container/blob`` (no connection string, account key or SAS), and any URL
query string is dropped. Loopback clients only, like the rest of ``/_emulator``.
"""

from __future__ import annotations

import html
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from amlretrain_emulator.admin import require_loopback
from amlretrain_emulator.context import get_context
from amlretrain_emulator.errors import redact
from amlretrain_emulator.faults import ADMIN_PREFIX
from amlretrain_emulator.storage import BlobReference, BlobReferenceError

router = APIRouter(prefix=f"{ADMIN_PREFIX}/ui")

_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2em;max-width:60em}"
    "th{text-align:left;padding-right:1.5em;vertical-align:top}td,th{padding:.2em .5em}"
    "table{border-collapse:collapse;margin-bottom:1.5em}tr:nth-child(even){background:#f3f3f3}"
    ".Finished{color:#1e7b34}.Failed,.Cancelled{color:#b00020}.Running,.NotStarted{color:#8a6d00}"
)


def _without_query(url: str) -> str:
    """``url`` without its query string and fragment (a SAS lives there)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")) if parts.scheme else url


def _reference(data: Any) -> str:
    """A blob reference as ``<account endpoint> container/blob``, without its credentials."""
    try:
        reference = BlobReference.parse(data, "reference")
        return f"{_without_query(reference.base_url())} {reference.relative_location}"
    except (BlobReferenceError, ValueError):
        location = data.get("RelativeLocation") if isinstance(data, dict) else None
        return str(location) if location else "(unreadable reference)"


def _seconds(start: str | None, end: str | None) -> str:
    if not start or not end:
        return ""
    return f"{(datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds():.1f} s"


def _table(title: str, rows: list[tuple[str, str]]) -> str:
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
    return f"<h2>{html.escape(title)}</h2><table>{body or '<tr><td>(none)</td></tr>'}</table>"


def _page(title: str, body: str) -> str:
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body>{body}</body></html>"
    )


def job_page(job: dict[str, Any], webservice: dict[str, Any] | None) -> str:
    """
    The HTML page of one job record.

    :param job: the job record.
    :param webservice: its web service record, if it still exists.
    """
    request = job.get("request") or {}
    status = str(job.get("status"))
    summary = [
        ("Status", status),
        (
            "Web service",
            f"{webservice['name']} ({webservice['id']})" if webservice else str(job.get("web_service_id")),
        ),
        ("Service (endpoint execution id)", str(job.get("service_id"))),
        ("Workspace", str(job.get("workspace_id"))),
        ("Submitted", str(job.get("created_at") or "")),
        ("Start requested", str(job.get("start_requested_at") or "")),
        ("Started", str(job.get("started_at") or "")),
        ("Ended", str(job.get("ended_at") or "")),
        ("Queued for", _seconds(job.get("start_requested_at"), job.get("started_at"))),
        ("Ran for", _seconds(job.get("started_at"), job.get("ended_at"))),
    ]
    inputs = [(port, _reference(ref)) for port, ref in sorted((request.get("Inputs") or {}).items())]
    outputs = [(port, _reference(ref)) for port, ref in sorted((request.get("Outputs") or {}).items())]
    parameters = [
        (name, redact(_without_query(str(value))) if value is not None else "")
        for name, value in sorted((request.get("GlobalParameters") or {}).items())
    ]
    details = redact(str(job.get("details") or "(none)"))
    body = (
        f"<h1>BES job {html.escape(str(job.get('id')))}</h1>"
        f"<p class='{html.escape(status)}'><strong>{html.escape(status)}</strong></p>"
        + _table("Job", summary)
        + _table("Inputs", inputs)
        + _table("Outputs", outputs)
        + _table("Global parameters", parameters)
        + f"<h2>Details</h2><pre>{html.escape(details)}</pre>"
        + "<p><small>Azure ML Studio (classic) emulator: a local page, not part of Azure.</small></p>"
    )
    return _page(f"BES job {job.get('id')}: {status}", body)


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
async def show_job(request: Request, job_id: str) -> HTMLResponse:
    """One job as a page; 404 (also a page) for an unknown job."""
    require_loopback(request)
    ctx = get_context(request)
    job = ctx.store.get("jobs", job_id) if ctx.store.valid_id(job_id) else None
    if job is None:
        message = f"<h1>No BES job {html.escape(job_id)}</h1><p>This emulator has no job with that id.</p>"
        return HTMLResponse(_page("Unknown BES job", message), status_code=404)
    webservice = ctx.store.get("webservices", str(job.get("web_service_id")))
    return HTMLResponse(job_page(job, webservice))
