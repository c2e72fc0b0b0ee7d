"""Models served by endpoints: fetching an ``.ilearner`` for an update, and pending-model promotion.

An update copies the model document into the emulator's state (as the real service copies the
blob), so the SAS that pointed to it may expire afterwards. A copied model waits in
``pending_model`` until its ``effective_at`` time (``endpoint_update_delay_seconds``), then serves.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from amlretrain_emulator.scoring import ModelError, load_model
from amlretrain_emulator.storage import StorageError, read_blob

if TYPE_CHECKING:
    from azure.storage.blob import BlobClient


class ModelFetchError(ValueError):
    """The model could not be fetched or is not usable; the message is safe to show."""


def fetch_model(client: BlobClient, what: str, task: str | None = None) -> dict[str, Any]:
    """Read and validate an ``.ilearner`` now.

    :param client: the blob client (SAS or key credential).
    :param what: safe name of the blob for messages.
    :param task: the task the model must solve (``None``: any).
    :raises ModelFetchError: unreadable blob (missing, expired or wrong SAS) or not a model.
    """
    try:
        data = read_blob(client, what)
    except StorageError as exc:
        raise ModelFetchError(str(exc)) from None
    try:
        model = load_model(data)
    except ModelError as exc:
        raise ModelFetchError(f"'{what}' is not a trained model: {exc}") from None
    if task is not None and model["task"] != task:
        raise ModelFetchError(f"'{what}' is a {model['task']} model but this service scores {task} data")
    return model


def effective_at(delay_seconds: float) -> str:
    """The ISO time a model update takes effect.

    :param delay_seconds: delay from now.
    """
    moment = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=delay_seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def promote_if_due(holder: dict[str, Any]) -> bool:
    """Move ``pending_model`` to ``model`` when its time has come (in place).

    :param holder: an endpoint (or ARM service) record.
    :return: whether the record changed.
    """
    pending = holder.get("pending_model")
    if not pending:
        return False
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if pending["effective_at"] > now:
        return False
    holder["model"] = pending["model"]
    holder["pending_model"] = None
    return True
