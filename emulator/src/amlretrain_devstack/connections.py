"""Airflow connections for a running dev stack, as ``AIRFLOW_CONN_*`` environment variables.

Airflow reads a connection from an environment variable named
``AIRFLOW_CONN_<CONN_ID upper-cased>`` whose value may be a JSON object with
``conn_type``, ``host``, ``password`` and ``extra``.
"""

from __future__ import annotations

import json
import re
import shlex
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from collections.abc import Mapping

#: Connection id of the Azurite ``wasb`` connection.
WASB_CONN_ID = "azurite_default"
#: Connection type of the Azure ML Studio (classic) web service connections.
AZUREML_CONN_TYPE = "azureml_studio"
#: Connection id and type of the classic management API of the seeded workspace.
MANAGEMENT_CONN_ID = "azureml_management"
MANAGEMENT_CONN_TYPE = "azureml_classic_management"
#: Connection id and type of the ARM web services of the seeded resource group.
ARM_CONN_ID = "azureml_arm"
ARM_CONN_TYPE = "azureml_web_services"
#: Hosts the provider sends ARM tokens to over plain http without extra ``http_emulator``.
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
#: Values of a service's ``kind``/``type``/``role`` that mark a predictive (scoring) web service.
PREDICTIVE_KINDS = frozenset({"predictive", "predict", "scoring", "score"})

_KEY_FIELDS = ("api_key", "primary_key", "key")
_LOCATION_FIELDS = ("api_location", "api_path", "location", "path")
_KIND_FIELDS = ("kind", "type", "role")


def env_var_name(conn_id: str) -> str:
    """Return the environment variable Airflow reads for ``conn_id``.

    :param conn_id: the connection id.
    :return: e.g. ``AIRFLOW_CONN_AZURITE_DEFAULT``.
    """
    return "AIRFLOW_CONN_" + conn_id.upper()


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def _first(mapping: Mapping[str, Any], fields: tuple[str, ...]) -> Any:
    for field in fields:
        value = mapping.get(field)
        if value not in (None, ""):
            return value
    return None


def seeded_services(seed: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Return the services listed by the emulator seed, as a list of dicts with a ``name``.

    Accepts ``services`` either as a list of objects or as an object keyed by name.

    :param seed: the seed document from ``stack.json``.
    :return: one dict per service.
    """
    services = seed.get("services") or []
    if isinstance(services, dict):
        return [{"name": name, **(body if isinstance(body, dict) else {})} for name, body in services.items()]
    return [dict(service) for service in services if isinstance(service, dict)]


def _service_host(emulator_url: str, service: Mapping[str, Any]) -> str:
    location = str(_first(service, _LOCATION_FIELDS) or "")
    if location.startswith(("http://", "https://")):
        return location
    return emulator_url.rstrip("/") + "/" + location.lstrip("/")


def _is_predictive(service: Mapping[str, Any]) -> bool:
    kind = _first(service, _KIND_FIELDS)
    if isinstance(kind, str):
        return kind.lower() in PREDICTIVE_KINDS
    name = str(service.get("name") or "")
    return name.lower().startswith(("predict", "score"))


def service_conn_id(service: Mapping[str, Any]) -> str:
    """Return the Airflow connection id of a seeded service.

    An explicit ``conn_id`` wins; a service with a ``task`` gets
    ``azureml_train_<task>`` (training) or ``azureml_predict_<task>`` (predictive);
    anything else gets ``azureml_<name>``.

    :param service: one entry of :func:`seeded_services`.
    :return: e.g. ``azureml_train_binary``.
    """
    if service.get("conn_id"):
        return str(service["conn_id"])
    task = service.get("task")
    if task:
        role = "predict" if _is_predictive(service) else "train"
        return f"azureml_{role}_{_slug(str(task))}"
    name = str(service.get("name") or service.get("id") or "service")
    return f"azureml_{_slug(name)}"


def _workspace(seed: Mapping[str, Any]) -> tuple[str | None, str | None]:
    workspace = seed.get("workspace")
    workspace = workspace if isinstance(workspace, dict) else {}
    workspace_id = seed.get("workspace_id") or workspace.get("id") or workspace.get("workspace_id")
    token = (
        seed.get("workspace_token")
        or workspace.get("token")
        or workspace.get("workspace_token")
        or workspace.get("authorization_token")
    )
    return workspace_id, token


def service_connection(
    service: Mapping[str, Any], emulator_url: str, seed: Mapping[str, Any]
) -> tuple[str, dict[str, Any]]:
    """Build the ``azureml_studio`` connection for one seeded service.

    :param service: one entry of :func:`seeded_services`.
    :param emulator_url: the emulator base URL.
    :param seed: the whole seed document (for the workspace id and token).
    :return: ``(conn_id, connection JSON object)``.
    """
    conn_id = service_conn_id(service)
    connection = {
        "conn_type": AZUREML_CONN_TYPE,
        "host": _service_host(emulator_url, service),
        "password": _first(service, _KEY_FIELDS),
        # The task's job link opens the emulator's job page (the BES status URL needs the key).
        "extra": {"job_page_url": f"{emulator_url.rstrip('/')}/_emulator/ui/jobs/{{job_id}}"},
    }
    return conn_id, connection


def management_connection(emulator_url: str, seed: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ``azureml_classic_management`` connection of the seeded workspace, if it has a token.

    :param emulator_url: the emulator base URL (it serves the management API too).
    :param seed: the seed document.
    """
    workspace_id, token = _workspace(seed)
    if not workspace_id or not token:
        return None
    return {
        "conn_type": MANAGEMENT_CONN_TYPE,
        "host": emulator_url,
        "password": token,
        "extra": {"workspace_id": workspace_id},
    }


def arm_connection(emulator_url: str, seed: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ``azureml_web_services`` connection of the seeded resource group, if ARM services were seeded.

    Tokens come from the emulator's managed-identity endpoint (see :func:`identity_env`). The provider
    sends them over plain http to a loopback host only, unless extra ``http_emulator`` says the ARM URL is
    an emulator elsewhere (another container, as in docker-compose): that extra is set for such URLs.

    :param emulator_url: the emulator base URL (it serves ARM too).
    :param seed: the seed document.
    """
    arm = seed.get("arm")
    if not isinstance(arm, dict) or not arm.get("subscription_id"):
        return None
    extra: dict[str, Any] = {
        "subscription_id": arm["subscription_id"],
        "resource_group": arm["resource_group"],
        "use_managed_identity": True,
    }
    url = urlsplit(emulator_url)
    if url.scheme == "http" and (url.hostname or "").lower() not in LOOPBACK_HOSTS:
        extra["http_emulator"] = True
    return {"conn_type": ARM_CONN_TYPE, "host": emulator_url, "extra": extra}


def identity_env(stack: Mapping[str, Any]) -> dict[str, str]:
    """``IDENTITY_ENDPOINT`` / ``IDENTITY_HEADER`` so azure-identity's managed identity uses the emulator.

    :param stack: the ``stack.json`` document.
    """
    emulator = stack.get("emulator") or {}
    if not emulator.get("msi_endpoint") or not emulator.get("identity_header"):
        return {}
    return {
        "IDENTITY_ENDPOINT": str(emulator["msi_endpoint"]),
        "IDENTITY_HEADER": str(emulator["identity_header"]),
    }


def airflow_connections(stack: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Build the Airflow connections of a stack, keyed by connection id.

    :param stack: the ``stack.json`` document.
    :return: ``{conn_id: {"conn_type": ..., ...}}``; the emulator connections are
        present only when the stack has an emulator and a seed.
    """
    connections: dict[str, dict[str, Any]] = {}
    azurite = stack.get("azurite") or {}
    if azurite.get("connection_string"):
        connections[WASB_CONN_ID] = {
            "conn_type": "wasb",
            "extra": {"connection_string": azurite["connection_string"]},
        }
    emulator = stack.get("emulator") or {}
    seed = stack.get("seed") or {}
    if emulator.get("url") and seed:
        for service in seeded_services(seed):
            conn_id, connection = service_connection(service, emulator["url"], seed)
            connections[conn_id] = connection
        for conn_id, maybe in (
            (MANAGEMENT_CONN_ID, management_connection(emulator["url"], seed)),
            (ARM_CONN_ID, arm_connection(emulator["url"], seed)),
        ):
            if maybe is not None:
                connections[conn_id] = maybe
    return connections


def airflow_connection_env(stack: Mapping[str, Any]) -> dict[str, str]:
    """Build the environment a process needs to use the stack from Airflow.

    ``AIRFLOW_CONN_*`` variables for every connection, plus the managed-identity variables
    (:func:`identity_env`) that let azure-identity get ARM tokens from the emulator.

    :param stack: the ``stack.json`` document (see :func:`~.state.load_stack`).
    :return: ``{"AIRFLOW_CONN_AZURITE_DEFAULT": '{"conn_type": "wasb", ...}', ...}``.
    """
    env = {env_var_name(conn_id): json.dumps(conn) for conn_id, conn in airflow_connections(stack).items()}
    env.update(identity_env(stack))
    env.update({f"AIRFLOW_VAR_{name.upper()}": value for name, value in airflow_variables(stack).items()})
    return env


def airflow_variables(stack: Mapping[str, Any]) -> dict[str, str]:
    """Airflow Variables naming the seeded web services, for the example DAGs.

    ``amlretrain_<task>_web_service_id`` (the classic predictive web service),
    ``amlretrain_<task>_training_web_service_id`` and ``amlretrain_<task>_arm_web_service``
    (the new-style web service's resource name).

    :param stack: the ``stack.json`` document.
    """
    seed = stack.get("seed") or {}
    variables: dict[str, str] = {}
    for service in seeded_services(seed):
        task, web_service_id = service.get("task"), service.get("web_service_id")
        if not task or not web_service_id:
            continue
        role = "" if _is_predictive(service) else "_training"
        variables[f"amlretrain_{_slug(str(task))}{role}_web_service_id"] = str(web_service_id)
    emulator = stack.get("emulator") or {}
    if emulator.get("url"):
        # How long the emulator takes to serve a PATCHed model (real classic endpoints: about 30 s).
        config = emulator.get("fault_config") or {}
        variables["amlretrain_wait_after_update"] = str(config.get("endpoint_update_delay_seconds", 0))
    arm_section = seed.get("arm")
    arm: dict[str, Any] = arm_section if isinstance(arm_section, dict) else {}
    for web_service in arm.get("web_services") or []:
        if web_service.get("task") and web_service.get("name"):
            variables[f"amlretrain_{_slug(str(web_service['task']))}_arm_web_service"] = str(
                web_service["name"]
            )
    return variables


def shell_exports(env: Mapping[str, str]) -> str:
    """Render environment variables as POSIX ``export NAME='value'`` lines.

    :param env: the variables.
    :return: the lines, newline-terminated.
    """
    return "".join(f"export {name}={shlex.quote(value)}\n" for name, value in env.items())
