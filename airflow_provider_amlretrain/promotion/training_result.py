"""Where a BES job's outputs are, read from the BES operator's result (what the gate and promotion receive)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_provider_amlretrain.exceptions import AzureMLConfigError


def output_location(training_result: Any, port: str, what: str) -> str:
    """
    ``container/blob`` of one output of a BES job's result (the BES operator's return value).

    :param training_result: The BES operator's result dict.
    :param port: The output port.
    :param what: What the output is, for messages.
    """
    if not isinstance(training_result, Mapping) or not isinstance(training_result.get("outputs"), Mapping):
        raise AzureMLConfigError(
            f"training_result must be the BES operator's result (a dict with 'job_id' and 'outputs'), got "
            f"{type(training_result).__name__}: pass e.g. retrain.output or \"{{{{ ti.xcom_pull('retrain') }}}}\"."
        )
    outputs = training_result["outputs"]
    if port not in outputs:
        raise AzureMLConfigError(
            f"The training job has no output {port!r} ({what}); its outputs are {sorted(outputs)}."
        )
    output = outputs[port]
    relative = output.get("relative_location") if isinstance(output, Mapping) else None
    if not isinstance(relative, str) or "/" not in relative.strip("/"):
        raise AzureMLConfigError(
            f"The training job's output {port!r} ({what}) has no 'relative_location' of the form "
            "container/blob: pass the BES operator's result unchanged (e.g. retrain.output)."
        )
    return relative
