"""``seed``: create (idempotently) the workspace, web services, keys and training data.

Re-running ``seed`` keeps existing ids and keys, re-uploads identical data and adds new dates.
Partition content depends only on the task and its distance from the first seeded date
(``data_epoch``, remembered in the workspace), so re-runs produce the same bytes.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow_provider_amlretrain.emulator.context import utc_now
from airflow_provider_amlretrain.emulator.datasets import TASKS, date_range, partition_csv, sample_csv
from airflow_provider_amlretrain.emulator.records import (
    DEFAULT_ENDPOINT,
    new_endpoint,
    new_id,
    new_key,
    new_webservice,
)
from airflow_provider_amlretrain.emulator.state import StateStore
from airflow_provider_amlretrain.emulator.storage import account_of, service_client, write_blob

DATA_CONTAINER = "training-data"


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
    if workspace is None:
        workspace = {
            "id": new_id(),
            "name": "amlretrain-emulator",
            "token": new_key(),
            "secondary_token": new_key(),
            "created_at": utc_now(),
            "data_epoch": start.isoformat(),
        }
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
    }


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
    services = []
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
    return {
        "workspace_id": workspace["id"],
        "workspace_token": workspace["token"],
        "storage": {"account_name": account, "blob_endpoint": blob_endpoint},
        "data_container": container,
        "dates": [d.isoformat() for d in dates],
        "services": services,
    }
