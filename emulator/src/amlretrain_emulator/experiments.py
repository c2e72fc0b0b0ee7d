"""What a BES job of an emulated experiment does: read its input, train (or score), produce outputs.

A training web service declares ``input_ports`` (``["input1"]``), ``output_ports``
(``{"output1": "model", "output2": "evaluation"}``) and ``global_parameters``
(``{"Data URI": ""}``). The input comes from ``Inputs.input1`` or, when absent, from the
``Data URI`` global parameter. A predictive web service scores its input with the endpoint's
current model into a ``scores`` output.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from amlretrain_emulator.scoring import ModelError, dump_model, score_table
from amlretrain_emulator.storage import (
    BlobReference,
    BlobReferenceError,
    StorageError,
    blob_client_from_url,
    describe_url,
    read_blob,
)
from amlretrain_emulator.tables import DataError, parse_csv, to_csv
from amlretrain_emulator.training import train

if TYPE_CHECKING:
    from azure.storage.blob import BlobClient

DATA_URI = "Data URI"

#: Output roles and the file name suffix their RelativeLocation must have.
OUTPUT_SUFFIXES = {"model": ".ilearner", "evaluation": ".csv", "scores": ".csv"}
CONTENT_TYPES = {"model": "application/json", "evaluation": "text/csv", "scores": "text/csv"}


class JobFailure(Exception):
    """The experiment failed; the message becomes the job's ``Details`` (safe to show)."""


@dataclass(frozen=True)
class Output:
    """One produced output.

    :param port: the output port name.
    :param role: ``model``, ``evaluation`` or ``scores``.
    :param content: the bytes to write.
    """

    port: str
    role: str
    content: bytes

    @property
    def content_type(self) -> str:
        """The blob content type."""
        return CONTENT_TYPES[self.role]


def input_source(
    webservice: dict[str, Any], request: dict[str, Any], storage_connection_string: str | None
) -> tuple[BlobClient, str]:
    """The blob client and safe name of the job's input.

    :param webservice: the web service record.
    :param request: the validated BES request body.
    :param storage_connection_string: the emulator's storage (for ``Data URI`` without SAS).
    """
    inputs = request.get("Inputs") or {}
    port = webservice["input_ports"][0]
    if port in inputs:
        reference = BlobReference.parse(inputs[port], f"input '{port}'")
        return reference.client(), reference.describe()
    uri = (request.get("GlobalParameters") or {}).get(DATA_URI)
    if not uri:
        raise JobFailure(
            f"The job has no input: neither Inputs.{port} nor the '{DATA_URI}' global parameter."
        )
    try:
        return blob_client_from_url(uri, storage_connection_string), describe_url(uri)
    except (ValueError, BlobReferenceError):
        raise JobFailure(f"The '{DATA_URI}' global parameter is not a usable blob URL.") from None


def run_experiment(
    webservice: dict[str, Any],
    endpoint: dict[str, Any],
    request: dict[str, Any],
    job_id: str,
    storage_connection_string: str | None,
) -> list[Output]:
    """Run the experiment of a web service for one BES job.

    :param webservice: the web service record.
    :param endpoint: the endpoint record the job was submitted to.
    :param request: the validated request body.
    :param job_id: the job id (recorded in the model document).
    :param storage_connection_string: the emulator's storage connection string.
    :raises JobFailure: with a safe ``Details`` text.
    """
    client, what = input_source(webservice, request, storage_connection_string)
    try:
        data = read_blob(client, what)
    except StorageError as exc:
        raise JobFailure(f"Error reading the input dataset: {exc}.") from None
    ports = webservice["output_ports"]
    try:
        if webservice["kind"] == "training":
            result = train(
                webservice["task"],
                data,
                webservice["label"],
                what,
                extra={"job_id": job_id, "web_service_id": webservice["id"]},
            )
            produced = {"model": dump_model(result.model), "evaluation": result.evaluation_csv}
        else:
            produced = {"scores": _score_csv(endpoint, data, what)}
    except (DataError, ModelError) as exc:
        raise JobFailure(f"Error in the experiment: {exc}") from None
    return [Output(port, role, produced[role]) for port, role in ports.items()]


def _score_csv(endpoint: dict[str, Any], data: bytes, what: str) -> bytes:
    model = endpoint.get("model")
    if not model:
        raise JobFailure("The endpoint has no trained model to score with.")
    header, rows = parse_csv(data, what)
    names, _, scored = score_table(model, header, rows)
    return to_csv(names, scored)
