"""``seed``: create (idempotently) the workspace, web services, keys and training data.

Re-running ``seed`` keeps existing ids and keys, re-uploads identical data and adds new dates.
Partition content depends only on the task and its distance from the first seeded date
(``data_epoch``, remembered in the workspace), so re-runs produce the same bytes.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from amlretrain_emulator.context import utc_now
from amlretrain_emulator.datasets import TASKS, date_range, partition_csv, sample_csv
from amlretrain_emulator.records import (
    DEFAULT_ENDPOINT,
    new_endpoint,
    new_id,
    new_key,
    new_webservice,
    resource_name,
)
from amlretrain_emulator.scoring import dump_model
from amlretrain_emulator.state import StateStore
from amlretrain_emulator.storage import account_of, service_client, write_blob
from amlretrain_emulator.training import train

DATA_CONTAINER = "training-data"
MODELS_CONTAINER = "models"
RESOURCE_GROUP = "amlretrain-rg"
LOCATION = "southcentralus"
ARM_API_VERSION = "2017-01-01"


def training_blob(task: str, date: dt.date) -> str:
    """Blob name of a dated training partition.

    :param task: ``binary`` or ``regression``.
    :param date: the partition date.
    """
    return f"{task}/dt={date.isoformat()}/train.csv"


def ensure_workspace(store: StateStore, start: dt.date) -> dict[str, Any]:
    """The workspace record, created on first use.

    :param store: the state store.
    :param start: the first date being seeded (becomes ``data_epoch`` on creation).
    """
    workspace = store.workspace()
    if workspace is None or "id" not in workspace:
        workspace = {
            **(workspace or {}),
            "id": new_id(),
            "name": "amlretrain-emulator",
            "token": new_key(),
            "secondary_token": new_key(),
            "created_at": utc_now(),
            "data_epoch": start.isoformat(),
        }
    if "subscription_id" not in workspace:
        workspace.update(
            {"subscription_id": str(uuid.uuid4()), "resource_group": RESOURCE_GROUP, "location": LOCATION}
        )
    store.put_workspace(workspace)
    return workspace


def ensure_webservice(store: StateStore, name: str, kind: str, task: str, description: str) -> dict[str, Any]:
    """The web service called ``name``, created with a default endpoint if missing.

    :param store: the state store.
    :param name: service name.
    :param kind: ``training`` or ``predictive``.
    :param task: ``binary`` or ``regression``.
    :param description: free text.
    """
    for webservice in store.list("webservices"):
        if webservice["name"] == name:
            return webservice
    webservice = new_webservice(
        name, kind, task, description, new_endpoint(DEFAULT_ENDPOINT, "Default endpoint")
    )
    store.put("webservices", webservice["id"], webservice)
    return webservice


def upload_training_data(
    connection_string: str, container: str, task: str, dates: list[dt.date], epoch: dt.date
) -> list[dict[str, str]]:
    """Upload the dated partitions and the sample file of a task.

    :param connection_string: storage connection string.
    :param container: data container.
    :param task: ``binary`` or ``regression``.
    :param dates: the partition dates.
    :param epoch: the first seeded date (drift origin).
    """
    client = service_client(connection_string)
    container_client = client.get_container_client(container)
    blobs = []
    for date in dates:
        name = training_blob(task, date)
        data = partition_csv(task, date, abs((date - epoch).days))
        write_blob(
            container_client.get_blob_client(name), data, f"{container}/{name}", "text/csv", container_client
        )
        blobs.append({"date": date.isoformat(), "blob": name, "relative_location": f"{container}/{name}"})
    sample = f"{task}/sample.csv"
    write_blob(
        container_client.get_blob_client(sample),
        sample_csv(task),
        f"{container}/{sample}",
        "text/csv",
        container_client,
    )
    return blobs


def initial_model_blob(task: str) -> str:
    """Blob name (in the models container) of the initial model of a task.

    :param task: ``binary`` or ``regression``.
    """
    return f"initial/{task}/model.ilearner"


def ensure_predictive(
    store: StateStore, connection_string: str, task: str, epoch: dt.date, blob_endpoint: str
) -> dict[str, Any]:
    """The predictive web service of a task; its default endpoint serves a model trained on ``epoch``.

    :param store: the state store.
    :param connection_string: storage connection string.
    :param task: ``binary`` or ``regression``.
    :param epoch: first seeded date (its partition trains the initial model).
    :param blob_endpoint: the storage blob endpoint (ending in ``/``).
    """
    webservice = ensure_webservice(
        store,
        f"amlretrain-{task}-predictive",
        "predictive",
        task,
        f"{TASKS[task].experiment} predictive experiment",
    )
    endpoint = webservice["endpoints"][webservice["default_endpoint"]]
    if endpoint.get("model") is None:
        data = partition_csv(task, epoch, 0)
        endpoint["model"] = train(
            task, data, TASKS[task].label, f"initial {task} data", extra={"job_id": None}
        ).model
        endpoint["resources"] = [
            {
                "name": resource_name(task),
                "kind": "TrainedModel",
                "location": {
                    "BaseLocation": blob_endpoint,
                    "RelativeLocation": f"{MODELS_CONTAINER}/{initial_model_blob(task)}",
                    "SasBlobToken": "",
                },
            }
        ]
        store.put("webservices", webservice["id"], webservice)
    container = service_client(connection_string).get_container_client(MODELS_CONTAINER)
    name = initial_model_blob(task)
    write_blob(
        container.get_blob_client(name),
        dump_model(endpoint["model"]),
        f"{MODELS_CONTAINER}/{name}",
        "application/json",
        container,
    )
    return webservice


def ensure_arm_service(
    store: StateStore,
    workspace: dict[str, Any],
    task: str,
    model: dict[str, Any],
    blob_endpoint: str,
    account: str,
) -> dict[str, Any]:
    """The new-style (ARM) web service of a task, serving the initial model.

    :param store: the state store.
    :param workspace: the workspace record (subscription, resource group, location).
    :param task: ``binary`` or ``regression``.
    :param model: the initial model document.
    :param blob_endpoint: the storage blob endpoint.
    :param account: the storage account name.
    """
    from amlretrain_emulator.arm_definition import build_definition

    name = f"amlretrain-{task}-web"
    record = store.get("arm", name)
    if record is None:
        definition = build_definition(
            workspace["subscription_id"],
            workspace["resource_group"],
            name,
            workspace["location"],
            task,
            model["feature_names"],
            f"{blob_endpoint}{MODELS_CONTAINER}/{initial_model_blob(task)}",
            workspace["id"],
            account,
        )
        record = {
            "name": name,
            "subscription_id": workspace["subscription_id"],
            "resource_group": workspace["resource_group"],
            "service_id": new_id(),
            "task": task,
            "keys": {"primary": new_key(), "secondary": new_key()},
            "definition": definition,
            "previous_definition": None,
            "model": model,
            "operation": None,
            "operations": {},
        }
        store.put("arm", name, record)
    return record


def describe_arm_service(workspace: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    """The seed output entry of an ARM web service.

    :param workspace: the workspace record.
    :param record: the ARM record.
    """
    from amlretrain_emulator.arm_definition import MODEL_ASSET

    return {
        "name": record["name"],
        "task": record["task"],
        "resource_id": record["definition"]["id"],
        "arm_path": record["definition"]["id"],
        "api_version": ARM_API_VERSION,
        "service_id": record["service_id"],
        "api_location": f"/subscriptions/{workspace['subscription_id']}/services/{record['service_id']}",
        "primary_key": record["keys"]["primary"],
        "model_asset": MODEL_ASSET,
        "model_asset_name": record["definition"]["properties"]["assets"][MODEL_ASSET]["name"],
    }


def describe_webservice(
    workspace: dict[str, Any], webservice: dict[str, Any], container: str, blobs: list[dict[str, str]]
) -> dict[str, Any]:
    """The seed output entry of one web service (includes its default endpoint's keys).

    :param workspace: the workspace record.
    :param webservice: the web service record.
    :param container: data container.
    :param blobs: its task's uploaded partitions.
    """
    endpoint = webservice["endpoints"][webservice["default_endpoint"]]
    roles = {role: port for port, role in webservice["output_ports"].items()}
    return {
        "name": webservice["name"],
        "kind": webservice["kind"],
        "task": webservice["task"],
        "web_service_id": webservice["id"],
        "service_id": endpoint["execution_id"],
        "endpoint_name": endpoint["name"],
        "api_key": endpoint["primary_key"],
        "secondary_key": endpoint["secondary_key"],
        "api_location": f"/workspaces/{workspace['id']}/services/{endpoint['execution_id']}",
        "input_ports": list(webservice["input_ports"]),
        "output_ports": dict(webservice["output_ports"]),
        "model_output": roles.get("model"),
        "evaluation_output": roles.get("evaluation"),
        "global_parameters": sorted(webservice["global_parameters"]),
        "label_column": webservice["label"],
        "data_container": container,
        "blob_prefix": f"{webservice['task']}/",
        "blobs": blobs,
        "sample_blob": f"{container}/{webservice['task']}/sample.csv",
        "feature_columns": _feature_columns(webservice),
        "resource_names": [r["name"] for r in endpoint.get("resources", [])],
        "management_path": f"/workspaces/{workspace['id']}/webservices/{webservice['id']}",
    }


def _feature_columns(webservice: dict[str, Any]) -> list[str]:
    from amlretrain_emulator.datasets import load_task_data

    return load_task_data(webservice["task"])[0]


def seed(
    state_dir: str,
    storage_connection_string: str,
    days: int = 7,
    start_date: dt.date | None = None,
    container: str = DATA_CONTAINER,
) -> dict[str, Any]:
    """Create the workspace, services and data; return the description printed by the CLI.

    :param state_dir: the emulator's state directory.
    :param storage_connection_string: where to upload data (Azurite).
    :param days: number of dated partitions per task.
    :param start_date: first partition date (default: ``days`` days ending today, UTC).
    :param container: data container name.
    """
    if days < 1:
        raise ValueError("days must be >= 1")
    if start_date is None:
        start_date = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=days - 1)
    store = StateStore(state_dir)
    workspace = ensure_workspace(store, start_date)
    epoch = dt.date.fromisoformat(workspace["data_epoch"])
    dates = date_range(start_date, days)
    account, _, blob_endpoint = account_of(storage_connection_string)
    services: list[dict[str, Any]] = []
    arm_services: list[dict[str, Any]] = []
    for task in TASKS:
        blobs = upload_training_data(storage_connection_string, container, task, dates, epoch)
        training = ensure_webservice(
            store,
            f"amlretrain-{task}-training",
            "training",
            task,
            f"{TASKS[task].experiment} training experiment",
        )
        services.append(describe_webservice(workspace, training, container, blobs))
        predictive = ensure_predictive(store, storage_connection_string, task, epoch, blob_endpoint)
        services.append(describe_webservice(workspace, predictive, container, blobs))
        default_model = predictive["endpoints"][predictive["default_endpoint"]]["model"]
        arm_services.append(
            describe_arm_service(
                workspace, ensure_arm_service(store, workspace, task, default_model, blob_endpoint, account)
            )
        )
    return {
        "workspace_id": workspace["id"],
        "workspace_token": workspace["token"],
        "storage": {"account_name": account, "blob_endpoint": blob_endpoint},
        "data_container": container,
        "dates": [d.isoformat() for d in dates],
        "models_container": MODELS_CONTAINER,
        "services": services,
        "arm": {
            "subscription_id": workspace["subscription_id"],
            "resource_group": workspace["resource_group"],
            "location": workspace["location"],
            "api_version": ARM_API_VERSION,
            "token_path": "/msi/token",
            "token_resource": "https://management.azure.com/",
            "web_services": arm_services,
        },
    }
