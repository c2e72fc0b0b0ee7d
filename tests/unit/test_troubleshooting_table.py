"""
The troubleshooting table (docs/troubleshooting.rst) says exactly what the code raises.

Each row of the table's ``list-table`` starts with a case id (````case-id````) and gives the message in a
literal; ``<...>`` in a message stands for a value that differs per run (a URL, a job id, the service's own
words). Each case below drives the real code path with the bad input or the service's answer, and the test
compares the message raised with the table's, so the table cannot drift from the code.
"""

from __future__ import annotations

import re
import socket
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_amlretrain.exceptions import AzureMLError
from tests.conftest import REPO_ROOT
from tests.unit.support import API_KEY, BASE, JOB_ID, JOBS_URL, job_url, set_connection

if TYPE_CHECKING:
    from collections.abc import Callable

TABLE = REPO_ROOT / "docs" / "troubleshooting.rst"
MANAGEMENT = "https://management.azureml.net"

_ROW = re.compile(r"^   \* - ``(?P<case>[a-z0-9-]+)``")
_MESSAGE = re.compile(r"^     - ``(?P<message>.+)``$")


def documented_messages(text: str) -> dict[str, str]:
    """Case id to message, from the table's rows (the message is the row's second cell)."""
    found: dict[str, str] = {}
    case: str | None = None
    for line in text.splitlines():
        if row := _ROW.match(line):
            case = row["case"]
            assert case not in found, f"case {case} is in the table twice"
        elif case and (cell := _MESSAGE.match(line)):
            found[case] = cell["message"]
            case = None
    return found


def as_pattern(message: str) -> re.Pattern[str]:
    """The documented message as a full-match pattern; each ``<...>`` matches any text."""
    parts = re.split(r"<[^<>]+>", message)
    return re.compile(".+?".join(re.escape(part) for part in parts), re.DOTALL)


# -- the cases: each returns the exception the code raises --------------------------------------------


def _raised(call: Callable[[], Any]) -> BaseException:
    with pytest.raises(AzureMLError) as caught:
        call()
    return caught.value


def _service_answer(rsps: Any, method: str, url: str, status: int, code: str, message: str) -> None:
    rsps.add(
        method,
        url,
        status=status,
        json={"error": {"code": code, "message": message}},
        headers={"x-ms-request-id": "7f1c2d3e-req"},
    )


def _studio_hook(monkeypatch: pytest.MonkeyPatch, host: str = BASE) -> Any:
    from airflow_provider_amlretrain.hooks.studio import AzureMLStudioHook

    set_connection(
        monkeypatch,
        "azureml_troubleshooting",
        conn_type="azureml_studio",
        host=host,
        password=API_KEY,
        extra={"retry_backoff": 0, "max_retries": 1, "request_timeout": 5},
    )
    hook = AzureMLStudioHook("azureml_troubleshooting")
    hook._sleep = lambda seconds: None
    return hook


def _management_hook(monkeypatch: pytest.MonkeyPatch, host: str = MANAGEMENT) -> Any:
    from airflow_provider_amlretrain.hooks.classic_management import AzureMLClassicManagementHook

    set_connection(
        monkeypatch,
        "azureml_management_troubleshooting",
        conn_type="azureml_classic_management",
        host=host,
        password="workspace-token",
        extra={"workspace_id": "ws1", "max_retries": 0, "retry_backoff": 0, "request_timeout": 5},
    )
    return AzureMLClassicManagementHook("azureml_management_troubleshooting")


def _endpoint(resources: list[dict[str, Any]]) -> Any:
    from airflow_provider_amlretrain.api.classic import ClassicEndpoint

    return ClassicEndpoint.from_api(
        {"Name": "retrained", "WebServiceId": "pred1", "WorkspaceId": "ws1", "Resources": resources}
    )


TRAINED_MODEL = {
    "Name": "Breast Cancer Model [trained model]",
    "Kind": "TrainedModel",
    "Location": {"BaseLocation": "https://acct.blob.core.windows.net/", "RelativeLocation": "m/a.ilearner"},
}


def _promotion(**kwargs: Any) -> Any:
    from airflow_provider_amlretrain.operators.update_endpoint_model import AzureMLUpdateEndpointModelOperator

    arguments: dict[str, Any] = {
        "task_id": "promote",
        "deployment_target": "binary-classic-retrained",
        "training_result": {},
        "training_conn_id": "azureml_troubleshooting",
        "wasb_conn_id": "azure_blob",
        "azureml_management_conn_id": "azureml_management_troubleshooting",
        "web_service_id": "pred1",
        "endpoint_name": "retrained",
        **kwargs,
    }
    return AzureMLUpdateEndpointModelOperator(**arguments)


def _gate(**kwargs: Any) -> Any:
    from airflow_provider_amlretrain.operators.evaluation_gate import AzureMLEvaluationGateOperator

    return AzureMLEvaluationGateOperator(
        task_id="evaluate", training_result={}, wasb_conn_id="azure_blob", **kwargs
    )


def _decide(rules: Any, csv: str = "AUC,Accuracy\n0.91,0.88\n") -> Any:
    from airflow_provider_amlretrain.promotion.evaluation import parse_evaluation_csv
    from airflow_provider_amlretrain.promotion.rules import decide

    return decide(rules, parse_evaluation_csv(csv), None)


def _parse(csv: str) -> Any:
    from airflow_provider_amlretrain.promotion.evaluation import parse_evaluation_csv

    return parse_evaluation_csv(csv, source="evaluation result models/runs/x/evaluation.csv")


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def case_bes_unauthorized(monkeypatch: pytest.MonkeyPatch, rsps: Any) -> BaseException:
    _service_answer(rsps, "GET", job_url(), 401, "Unauthorized", "Invalid API key.")
    return _raised(lambda: _studio_hook(monkeypatch).get_job(JOB_ID))


def case_bes_not_found(monkeypatch: pytest.MonkeyPatch, rsps: Any) -> BaseException:
    _service_answer(rsps, "GET", job_url(), 404, "NotFound", "The web service or job does not exist.")
    return _raised(lambda: _studio_hook(monkeypatch).get_job(JOB_ID))


def case_bes_bad_argument(monkeypatch: pytest.MonkeyPatch, rsps: Any) -> BaseException:
    _service_answer(
        rsps, "POST", JOBS_URL, 400, "BadArgument", "Output 'output9' is not an output of the service."
    )
    return _raised(lambda: _studio_hook(monkeypatch).submit_job({"Outputs": {}}))


def case_bes_throttled(monkeypatch: pytest.MonkeyPatch, rsps: Any) -> BaseException:
    _service_answer(rsps, "GET", job_url(), 503, "RequestThrottled", "Too many requests.")
    return _raised(lambda: _studio_hook(monkeypatch).get_job(JOB_ID))


def case_bes_internal_error(monkeypatch: pytest.MonkeyPatch, rsps: Any) -> BaseException:
    _service_answer(rsps, "GET", job_url(), 500, "InternalError", "The request failed.")
    return _raised(lambda: _studio_hook(monkeypatch).get_job(JOB_ID))


def case_bes_job_failed(monkeypatch: pytest.MonkeyPatch, rsps: Any) -> BaseException:
    from airflow_provider_amlretrain.sensors.batch_job import AzureMLBatchJobSensor

    _studio_hook(monkeypatch)
    details = "Module execution encountered an error: Column 'age' not found in the dataset."
    rsps.add("GET", job_url(), json={"StatusCode": "Failed", "Results": None, "Details": details})
    sensor = AzureMLBatchJobSensor(task_id="wait", job_id=JOB_ID, azureml_conn_id="azureml_troubleshooting")
    return _raised(lambda: sensor.poke({}))  # type: ignore[arg-type]


def case_host_not_an_api_location(monkeypatch: pytest.MonkeyPatch, rsps: Any) -> BaseException:
    host = "https://ussouthcentral.services.azureml.net/workspaces/ws1"
    return _raised(lambda: _studio_hook(monkeypatch, host=host).get_job(JOB_ID))


def case_not_a_job_id(monkeypatch: pytest.MonkeyPatch, rsps: Any) -> BaseException:
    return _raised(lambda: _studio_hook(monkeypatch).get_job("job-1"))


def case_no_outputs(monkeypatch: pytest.MonkeyPatch, rsps: Any) -> BaseException:
    from airflow_provider_amlretrain.api.bes import build_batch_request

    return _raised(lambda: build_batch_request(inputs=None, outputs={}))


def case_global_parameters_as_text(monkeypatch: pytest.MonkeyPatch, rsps: Any) -> BaseException:
    from airflow_provider_amlretrain.api.bes import build_batch_request
    from airflow_provider_amlretrain.api.references import BlobReference

    model = BlobReference(
        "models/m.ilearner", connection_string="DefaultEndpointsProtocol=https;AccountName=a;"
    )
    return _raised(
        lambda: build_batch_request(
            inputs=None, outputs={"output1": model}, global_parameters="{'Data URI': 'x'}"
        )  # type: ignore[arg-type]
    )


def case_blob_spec_not_a_dict(monkeypatch: pytest.MonkeyPatch, rsps: Any) -> BaseException:
    from airflow_provider_amlretrain.blob_references import resolve_blob_spec

    return _raised(lambda: resolve_blob_spec("input1", "training-data/train.csv"))


def case_default_endpoint(monkeypatch: pytest.MonkeyPatch, rsps: Any) -> BaseException:
    _management_hook(monkeypatch)
    rsps.add(
        "GET",
        f"{MANAGEMENT}/workspaces/ws1/webservices/pred1",
        json={"Id": "pred1", "DefaultEndpointName": "default"},
    )
    return _raised(lambda: _promotion(endpoint_name="default").prepare(None))


def case_endpoint_of_training_service(monkeypatch: pytest.MonkeyPatch, rsps: Any) -> BaseException:
    return _raised(lambda: _endpoint([]).trained_model(None))


def case_resource_name_mismatch(monkeypatch: pytest.MonkeyPatch, rsps: Any) -> BaseException:
    return _raised(lambda: _endpoint([TRAINED_MODEL]).trained_model("Census Model [trained model]"))


def case_expired_sas(monkeypatch: pytest.MonkeyPatch, rsps: Any) -> BaseException:
    from airflow_provider_amlretrain.api.references import BlobLocation

    url = f"{MANAGEMENT}/workspaces/ws1/webservices/pred1/endpoints/retrained"
    _service_answer(
        rsps,
        "PATCH",
        url,
        400,
        "BadArgument",
        "The trained model could not be read through the given SasBlobToken.",
    )
    expired = BlobLocation(
        "https://acct.blob.core.windows.net/", "models/m.ilearner", "?sv=1&sig=OLD&se=2020-01-01"
    )
    hook = _management_hook(monkeypatch)
    return _raised(lambda: hook.patch_trained_model("pred1", "retrained", TRAINED_MODEL["Name"], expired))


def case_wrong_region(monkeypatch: pytest.MonkeyPatch, rsps: Any) -> BaseException:
    rsps.passthru_prefixes = ("http://127.0.0.1",)
    hook = _management_hook(monkeypatch, host=f"http://127.0.0.1:{_closed_port()}")
    return _raised(lambda: hook.get_web_service("pred1"))


def case_endpoint_name(monkeypatch: pytest.MonkeyPatch, rsps: Any) -> BaseException:
    from airflow_provider_amlretrain.api.classic import check_endpoint_name

    return _raised(lambda: check_endpoint_name("Retrained_1"))


def case_wait_after_update(monkeypatch: pytest.MonkeyPatch, rsps: Any) -> BaseException:
    return _raised(lambda: _promotion(wait_after_update="30s").check_arguments())


def case_smoke_test_rows(monkeypatch: pytest.MonkeyPatch, rsps: Any) -> BaseException:
    return _raised(lambda: _promotion(smoke_test_rows=0).check_arguments())


def case_on_reject(monkeypatch: pytest.MonkeyPatch, rsps: Any) -> BaseException:
    return _raised(lambda: _gate(rules=[{"metric": "AUC", "min": 0.8}], on_reject="warn"))


def case_task_group_argument_clash(monkeypatch: pytest.MonkeyPatch, rsps: Any) -> BaseException:
    from airflow.sdk import DAG

    from airflow_provider_amlretrain.authoring import retrain_gate_promote

    def build() -> None:
        with DAG(dag_id="troubleshooting_clash", schedule=None):
            retrain_gate_promote(
                endpoint_name="east",
                deployment_target="t-east",
                global_parameters={},
                outputs={},
                web_service_id="ws",
                rules=[{"metric": "AUC", "min": 0.8}],
                training_conn_id="train",
                wasb_conn_id="wasb",
                azureml_management_conn_id="management",
                retrain_kwargs={"task_id": "train", "poll_interval": 5},
            )

    return _raised(build)


def case_rules_not_a_list(monkeypatch: pytest.MonkeyPatch, rsps: Any) -> BaseException:
    return _raised(lambda: _decide("[{'metric': 'AUC', 'min': 0.8}]"))


def case_no_rules(monkeypatch: pytest.MonkeyPatch, rsps: Any) -> BaseException:
    return _raised(lambda: _decide([]))


def case_rule_unknown_key(monkeypatch: pytest.MonkeyPatch, rsps: Any) -> BaseException:
    return _raised(lambda: _decide([{"metric": "AUC", "threshold": 0.8}]))


def case_rule_checks_nothing(monkeypatch: pytest.MonkeyPatch, rsps: Any) -> BaseException:
    return _raised(lambda: _decide([{"metric": "AUC"}]))


def case_rule_direction_unknown(monkeypatch: pytest.MonkeyPatch, rsps: Any) -> BaseException:
    return _raised(lambda: _decide([{"metric": "Brier Score", "compare_to_baseline": True}]))


def case_review_margin_alone(monkeypatch: pytest.MonkeyPatch, rsps: Any) -> BaseException:
    return _raised(lambda: _decide([{"metric": "AUC", "min": 0.8, "review_margin": 0.01}]))


def case_metric_missing(monkeypatch: pytest.MonkeyPatch, rsps: Any) -> BaseException:
    return _raised(lambda: _decide([{"metric": "F-Score", "min": 0.8}]))


def case_evaluation_empty(monkeypatch: pytest.MonkeyPatch, rsps: Any) -> BaseException:
    return _raised(lambda: _parse(""))


def case_evaluation_no_rows(monkeypatch: pytest.MonkeyPatch, rsps: Any) -> BaseException:
    return _raised(lambda: _parse("AUC,Accuracy\n"))


def case_evaluation_not_a_number(monkeypatch: pytest.MonkeyPatch, rsps: Any) -> BaseException:
    return _raised(lambda: _parse("AUC,Accuracy\nNaN,0.8\n").get("AUC"))


# -- more bad input (issue 12): connections, answers, outputs, files, patches -------------------------


def case_studio_no_api_key(monkeypatch: pytest.MonkeyPatch, rsps: Any) -> BaseException:
    from airflow_provider_amlretrain.hooks.studio import AzureMLStudioHook

    set_connection(monkeypatch, "azureml_nokey", conn_type="azureml_studio", host=BASE)
    return _raised(lambda: AzureMLStudioHook("azureml_nokey").get_job(JOB_ID))


def case_timeout_not_a_number(monkeypatch: pytest.MonkeyPatch, rsps: Any) -> BaseException:
    from airflow_provider_amlretrain.hooks.studio import AzureMLStudioHook

    set_connection(
        monkeypatch,
        "azureml_badtimeout",
        conn_type="azureml_studio",
        host=BASE,
        password=API_KEY,
        extra={"request_timeout": "30s"},
    )
    return _raised(lambda: AzureMLStudioHook("azureml_badtimeout").get_job(JOB_ID))


def case_management_no_workspace_id(monkeypatch: pytest.MonkeyPatch, rsps: Any) -> BaseException:
    from airflow_provider_amlretrain.hooks.classic_management import AzureMLClassicManagementHook

    set_connection(
        monkeypatch, "azureml_nows", conn_type="azureml_classic_management", host=MANAGEMENT, password="t0ken"
    )
    return _raised(lambda: AzureMLClassicManagementHook("azureml_nows").get_web_service("pred1"))


def case_arm_plain_http(monkeypatch: pytest.MonkeyPatch, rsps: Any) -> BaseException:
    from airflow_provider_amlretrain.hooks.web_services import AzureMLWebServicesHook

    set_connection(
        monkeypatch,
        "azureml_arm_http",
        conn_type="azureml_web_services",
        host="http://management.azure.com",
        extra={"subscription_id": "sub1", "resource_group": "rg1"},
    )
    return _raised(lambda: AzureMLWebServicesHook("azureml_arm_http").get_web_service("svc"))


def case_management_forbidden(monkeypatch: pytest.MonkeyPatch, rsps: Any) -> BaseException:
    url = f"{MANAGEMENT}/workspaces/ws1/webservices/pred1/endpoints/retrained"
    _service_answer(rsps, "PATCH", url, 403, "Forbidden", "The token is not allowed to update this endpoint.")
    hook = _management_hook(monkeypatch)
    return _raised(lambda: hook.patch_trained_model("pred1", "retrained", TRAINED_MODEL["Name"], _model()))


def case_bes_not_json(monkeypatch: pytest.MonkeyPatch, rsps: Any) -> BaseException:
    rsps.add("GET", job_url(), body="<html><body>Service Unavailable</body></html>", status=200)
    return _raised(lambda: _studio_hook(monkeypatch).get_job(JOB_ID))


def case_bes_truncated(monkeypatch: pytest.MonkeyPatch, rsps: Any) -> BaseException:
    rsps.add("GET", job_url(), body='{"StatusCode": "Finished", "Results": {"output1": {"Base', status=200)
    return _raised(lambda: _studio_hook(monkeypatch).get_job(JOB_ID))


def case_bes_unknown_status(monkeypatch: pytest.MonkeyPatch, rsps: Any) -> BaseException:
    rsps.add("GET", job_url(), json={"StatusCode": "Paused", "Results": None, "Details": None})
    return _raised(lambda: _studio_hook(monkeypatch).get_job(JOB_ID))


def case_bes_no_status_code(monkeypatch: pytest.MonkeyPatch, rsps: Any) -> BaseException:
    rsps.add("GET", job_url(), json={"Status": "Finished"})
    return _raised(lambda: _studio_hook(monkeypatch).get_job(JOB_ID))


def case_bes_submit_not_a_job_id(monkeypatch: pytest.MonkeyPatch, rsps: Any) -> BaseException:
    rsps.add("POST", JOBS_URL, json={"JobId": JOB_ID})
    return _raised(lambda: _studio_hook(monkeypatch).submit_job({"Outputs": {}}))


def case_bes_result_no_location(monkeypatch: pytest.MonkeyPatch, rsps: Any) -> BaseException:
    results = {"output1": {"BaseLocation": "https://acct.blob.core.windows.net/", "SasBlobToken": "?sig=x"}}
    rsps.add("GET", job_url(), json={"StatusCode": "Finished", "Results": results, "Details": None})
    return _raised(lambda: _studio_hook(monkeypatch).get_job(JOB_ID).outputs)


def case_output_port_missing(monkeypatch: pytest.MonkeyPatch, rsps: Any) -> BaseException:
    from airflow_provider_amlretrain.promotion.training_result import output_location

    result = {"job_id": JOB_ID, "outputs": {"model": {"relative_location": "models/m.ilearner"}}}
    return _raised(lambda: output_location(result, "output1", "the model"))


def case_model_not_ilearner(monkeypatch: pytest.MonkeyPatch, rsps: Any) -> BaseException:
    hook = _management_hook(monkeypatch)
    model = _model("models/runs/x/model.zip")
    return _raised(lambda: hook.patch_trained_model("pred1", "retrained", TRAINED_MODEL["Name"], model))


def case_evaluation_ragged_row(monkeypatch: pytest.MonkeyPatch, rsps: Any) -> BaseException:
    return _raised(lambda: _parse("AUC,Accuracy,Precision\n0.91,0.88\n"))


def case_json_patch_path_missing(monkeypatch: pytest.MonkeyPatch, rsps: Any) -> BaseException:

    uri = "https://acct.blob.core.windows.net/models/m.ilearner?sv=1&sig=OLD"  # a service may keep a SAS here
    definition = {"properties": {"assets": {"asset1": {"type": "Resource", "locationInfo": {"uri": uri}}}}}
    patch = [{"op": "replace", "path": "/properties/assets/asset9/locationInfo/uri", "value": "v"}]
    return _raised(lambda: _arm_promotion(definition)._apply(patch, "asset9", "the update"))


def case_asset_key_unknown(monkeypatch: pytest.MonkeyPatch, rsps: Any) -> BaseException:
    definition = {
        "properties": {
            "assets": {
                "asset1": {
                    "name": "Model [trained model]",
                    "type": "Resource",
                    "locationInfo": {"uri": "https://acct.blob.core.windows.net/models/m.ilearner"},
                }
            }
        }
    }
    return _raised(lambda: _arm_promotion(definition, asset_key="asset9").prepare(_model()))


def case_data_version_blob_malformed(monkeypatch: pytest.MonkeyPatch, rsps: Any) -> BaseException:
    return _raised(lambda: _promotion(data_version_blob="train.csv").find_data_version({}))  # type: ignore[arg-type]


class _RecordingArmHook:
    """Stands in for the ARM hook of the web service promotion: serves one definition, records writes."""

    def __init__(self, definition: dict[str, Any]) -> None:
        self.definition = definition
        self.writes: list[str] = []

    def get_web_service(self, name: str) -> dict[str, Any]:
        return self.definition

    def update_web_service(self, name: str, definition: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        self.writes.append(name)
        return definition


#: The writes each case sends: one the service refused, or (a submission answered without a job id) one
#: that at most created a job nobody starts. Nothing is sent after it; every other case sends nothing.
WRITES_SENT = {
    "bes-bad-argument": ["POST"],
    "bes-submit-not-a-job-id": ["POST"],
    "expired-sas": ["PATCH"],
    "management-forbidden": ["PATCH"],
}
_arm_hooks: list[_RecordingArmHook] = []


def _arm_promotion(definition: dict[str, Any], **kwargs: Any) -> Any:
    from airflow_provider_amlretrain.operators.update_web_service_model import (
        AzureMLUpdateWebServiceModelOperator,
    )

    operator = AzureMLUpdateWebServiceModelOperator(
        task_id="promote",
        deployment_target="binary-arm",
        training_result={},
        training_conn_id="azureml_troubleshooting",
        wasb_conn_id="azure_blob",
        web_service_name="svc",
        **kwargs,
    )
    hook = _RecordingArmHook(definition)
    _arm_hooks.append(hook)
    operator.hook = hook  # type: ignore[misc]
    return operator


def _model(relative_location: str = "models/runs/x/model.ilearner") -> Any:
    from airflow_provider_amlretrain.api.references import BlobLocation

    return BlobLocation(
        "https://acct.blob.core.windows.net/", relative_location, "?sv=1&sig=NEW&se=2030-01-01"
    )


CASES: dict[str, Callable[[pytest.MonkeyPatch, Any], BaseException]] = {
    name.removeprefix("case_").replace("_", "-"): case
    for name, case in sorted(globals().items())
    if name.startswith("case_")
}


def test_every_case_is_in_the_table_and_every_row_is_checked() -> None:
    assert sorted(documented_messages(TABLE.read_text())) == sorted(CASES)


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_table_gives_the_message_the_code_raises(
    case: str, monkeypatch: pytest.MonkeyPatch, rsps: Any
) -> None:
    documented = documented_messages(TABLE.read_text())[case]
    _arm_hooks.clear()
    raised = str(CASES[case](monkeypatch, rsps))
    assert as_pattern(documented).fullmatch(raised), (
        f"the table says\n  {documented}\nthe code raises\n  {raised}"
    )
    # Nothing half-updated: no write was sent but the one the service refused.
    writes = [call.request.method for call in rsps.calls if call.request.method != "GET"]
    writes += ["PATCH (ARM)" for hook in _arm_hooks for _ in hook.writes]
    assert writes == WRITES_SENT.get(case, []), f"{case} sent {writes}"
    # No secret in the message: the keys and tokens of the cases, any SAS signature or bearer token.
    from amlretrain_devstack.secret_scan import find_secrets

    secrets = {
        "api key": API_KEY,
        "workspace token": "workspace-token",
        "sas": "sig=NEW",
        "old sas": "sig=OLD",
    }
    assert find_secrets(raised, case, secrets) == []


def test_placeholders_match_only_where_they_stand() -> None:
    assert as_pattern("Endpoint <name> has no <what>.").fullmatch("Endpoint 'x' has no trained model.")
    assert not as_pattern("Endpoint <name> has no <what>.").fullmatch("Endpoint 'x' has a trained model.")
    assert not as_pattern("exact").fullmatch("exact, and more")
