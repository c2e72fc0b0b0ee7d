"""Builders of the persisted records (web services, endpoints) and their random ids and keys."""

from __future__ import annotations

import secrets
import uuid
from typing import Any

from amlretrain_emulator.context import utc_now
from amlretrain_emulator.datasets import TASKS

DEFAULT_ENDPOINT = "default"
DEFAULT_MAX_CONCURRENT_CALLS = 20


def new_id() -> str:
    """A new id: 32 lowercase hex characters (a GUID without dashes)."""
    return uuid.uuid4().hex


def new_key() -> str:
    """A new random API key / token (URL-safe, 64 characters)."""
    return secrets.token_urlsafe(48)


def resource_name(task: str) -> str:
    """The trained-model resource name of a task's predictive experiment.

    :param task: ``binary`` or ``regression``.
    """
    return f"{TASKS[task].experiment} Model [trained model]"


def new_endpoint(
    name: str,
    description: str = "",
    throttle_level: str = "High",
    max_concurrent_calls: int = DEFAULT_MAX_CONCURRENT_CALLS,
    model: dict[str, Any] | None = None,
    resources: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A new endpoint record with its own execution id and keys.

    :param name: endpoint name.
    :param description: free text.
    :param throttle_level: ``Low`` or ``High``.
    :param max_concurrent_calls: RRS concurrency limit.
    :param model: the model document it serves (predictive services).
    :param resources: updatable resources (predictive services), each
        ``{"name", "kind", "location": {BaseLocation, RelativeLocation, SasBlobToken}}``.
    """
    now = utc_now()
    return {
        "name": name,
        "description": description,
        "created_at": now,
        "version": now,
        "execution_id": new_id(),
        "primary_key": new_key(),
        "secondary_key": new_key(),
        "throttle_level": throttle_level,
        "max_concurrent_calls": max_concurrent_calls,
        "diagnostics_trace_level": "None",
        "model": model,
        "pending_model": None,
        "resources": resources or [],
    }


def new_webservice(
    name: str,
    kind: str,
    task: str,
    description: str,
    default_endpoint: dict[str, Any],
) -> dict[str, Any]:
    """A new classic web service record.

    :param name: the service name (unique in the workspace).
    :param kind: ``training`` or ``predictive``.
    :param task: ``binary`` or ``regression``.
    :param description: free text.
    :param default_endpoint: its default endpoint record.
    """
    spec = TASKS[task]
    if kind == "training":
        output_ports = {"output1": "model", "output2": "evaluation"}
        parameters = {"Data URI": ""}
    else:
        output_ports = {"output1": "scores"}
        parameters = {}
    return {
        "id": new_id(),
        "name": name,
        "description": description,
        "kind": kind,
        "task": task,
        "label": spec.label,
        "experiment": spec.experiment,
        "created_at": utc_now(),
        "input_ports": ["input1"],
        "output_ports": output_ports,
        "global_parameters": parameters,
        "default_endpoint": DEFAULT_ENDPOINT,
        "endpoints": {DEFAULT_ENDPOINT: default_endpoint},
    }
