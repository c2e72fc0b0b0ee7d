"""
Where a person looks at a BES job: the URL behind the task's "Azure ML BES job" link.

The BES status URL needs the API key, which a browser does not send (401), so the link opens a
page instead. An ``azureml_studio`` connection may name that page with its ``job_page_url``
extra, a template with ``{job_id}``, ``{workspace_id}`` and ``{service_id}`` (the local stack's
connections point it at the emulator's ``/_emulator/ui/jobs/{job_id}``). Without it, the link
opens the Azure ML Web Services portal, where the service's dashboard and endpoints are (Azure
shows BES jobs on no page; the task log names the job id and its outputs). A link never carries
a secret: the template may not hold a query string.
"""

from __future__ import annotations

import string
from urllib.parse import quote, urlsplit

from airflow_provider_amlretrain.exceptions import AzureMLConfigError

#: The Azure ML Web Services portal (sign-in with the Azure account; no key in the URL).
WEB_SERVICES_PORTAL = "https://services.azureml.net/"
PLACEHOLDERS = frozenset({"job_id", "workspace_id", "service_id"})


def check_job_page_template(conn_id: str, template: str) -> str:
    """
    Refuse a ``job_page_url`` extra that is no http(s) URL, has a query string, or unknown placeholders.

    :param conn_id: The connection id, for messages.
    :param template: The extra's value.
    :return: The template, stripped.
    """
    template = template.strip()
    where = f"Connection {conn_id!r}: the job_page_url extra"
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as err:
        raise AzureMLConfigError(
            f"{where} is no valid template ({err}); use {{job_id}} style fields."
        ) from None
    unknown = sorted(names - PLACEHOLDERS)
    if unknown:
        raise AzureMLConfigError(f"{where} has unknown fields {unknown}; it may use {sorted(PLACEHOLDERS)}.")
    parts = urlsplit(template)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise AzureMLConfigError(f"{where} must be an http(s) URL, e.g. https://host/jobs/{{job_id}}.")
    if parts.query or parts.fragment:
        raise AzureMLConfigError(
            f"{where} may not have a query string or fragment: a link must never carry a key or SAS."
        )
    return template


def job_page_url(api_location: str, job_id: str, template: str | None) -> str:
    """
    The page showing ``job_id``: the template filled in, or the Web Services portal.

    :param api_location: The service base URL (``.../workspaces/{ws}/services/{id}``).
    :param job_id: The BES job id.
    :param template: A checked ``job_page_url`` extra, or ``None``.
    """
    if not template:
        return WEB_SERVICES_PORTAL
    segments = urlsplit(api_location).path.strip("/").split("/")
    ids = dict(zip(segments[::2], segments[1::2], strict=False))
    return template.format(
        job_id=quote(job_id, safe=""),
        workspace_id=quote(ids.get("workspaces", ""), safe=""),
        service_id=quote(ids.get("services", ""), safe=""),
    )
