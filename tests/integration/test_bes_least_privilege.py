"""BES gets a SAS for exactly each port's blob, minted from the wasb connection; never the account key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.integration.conftest import dump, seeded_dates

pytestmark = pytest.mark.integration

WASB = "azurite_default"
TRAINING = "azureml_train_binary"


def references(stack: Any, folder: str, input_access=None, ttl: float = 900):
    from airflow_provider_amlretrain.blob_references import resolve_blob_specs
    from airflow_provider_amlretrain.blob_sas import BlobAccess

    day = seeded_dates(stack.seed)[0]
    inputs = resolve_blob_specs(
        {"input1": {"wasb_conn_id": WASB, "path": f"training-data/binary/dt={day}/train.csv"}},
        input_access or BlobAccess.READ,
        ttl,
    )
    outputs = resolve_blob_specs(
        {
            "output1": {
                "wasb_conn_id": WASB,
                "container": "models",
                "blob": f"tests/{folder}/model.ilearner",
            },
            "output2": {
                "wasb_conn_id": WASB,
                "container": "models",
                "blob": f"tests/{folder}/evaluation.csv",
            },
        },
        BlobAccess.WRITE,
        ttl,
    )
    return inputs, outputs


def run_job(inputs: dict[str, Any], outputs: dict[str, Any]):
    from airflow_provider_amlretrain.api.bes import build_batch_request
    from airflow_provider_amlretrain.api.polling import JobPollingRules
    from airflow_provider_amlretrain.hooks.studio import AzureMLStudioHook

    hook = AzureMLStudioHook(TRAINING)
    job_id = hook.submit_job(build_batch_request(inputs=inputs, outputs=outputs))
    hook.start_job(job_id)
    return job_id, hook.wait_for_job(job_id, JobPollingRules(poll_interval=0.2))


def received_request(stack: Any, job_id: str) -> dict[str, Any]:
    """The BES request body the emulator stored for a job (from its state directory)."""
    state_dir = Path(stack.info["emulator"]["state_dir"])
    return json.loads((state_dir / "jobs" / f"{job_id}.json").read_text())["request"]


def test_bes_reads_inputs_and_writes_outputs_with_blob_sas_only(stack: Any) -> None:
    from airflow.providers.microsoft.azure.hooks.wasb import WasbHook

    inputs, outputs = references(stack, "least-privilege")
    job_id, state = run_job(inputs, outputs)

    assert state.status.value == "Finished", state
    wasb = WasbHook(wasb_conn_id=WASB)
    for name in ("model.ilearner", "evaluation.csv"):
        assert wasb.check_for_blob("models", f"tests/least-privilege/{name}"), name
    sent = received_request(stack, job_id)
    text = json.dumps(sent)
    assert "AccountKey" not in text and stack.info["azurite"]["account_key"] not in text, dump(sent)
    for kind, permission in (("Inputs", "sp=r&"), ("Outputs", "sp=cw&")):
        for port, reference in sent[kind].items():
            assert set(reference) == {"BaseLocation", "RelativeLocation", "SasBlobToken"}, port
            assert "sr=b" in reference["SasBlobToken"] and permission in reference["SasBlobToken"], port


def test_a_blob_sas_opens_its_own_blob_and_nothing_else(stack: Any) -> None:
    inputs, outputs = references(stack, "scope")
    source = inputs["input1"]
    url = f"{source.base_location}{source.relative_location}"
    other_day = seeded_dates(stack.seed)[1]
    other = f"{source.base_location}training-data/binary/dt={other_day}/train.csv"

    assert requests.get(url + source.sas_token, timeout=10).status_code == 200
    assert requests.get(other + source.sas_token, timeout=10).status_code == 403, "another blob"
    put = requests.put(url + source.sas_token, data=b"x", headers={"x-ms-blob-type": "BlockBlob"}, timeout=10)
    assert put.status_code == 403, "a read SAS cannot write"
    model = outputs["output1"]
    sibling = f"{model.base_location}models/tests/scope/other.ilearner"
    put = requests.put(
        sibling + model.sas_token, data=b"x", headers={"x-ms-blob-type": "BlockBlob"}, timeout=10
    )
    assert put.status_code == 403, "an output's SAS cannot write a sibling"


def test_the_service_uses_exactly_the_sas_it_is_given(stack: Any) -> None:
    from airflow_provider_amlretrain.blob_sas import BlobAccess

    inputs, outputs = references(stack, "too-narrow", input_access=BlobAccess.WRITE)
    _, state = run_job(inputs, outputs)

    assert state.status.value == "Failed", state
    assert "403" in (state.details or ""), state.details
    assert "dt=" in (state.details or ""), "the message names the input it could not read"
