"""The evaluation gate operator, with the blob read and the deployment record read patched."""

from __future__ import annotations

import pytest
from airflow.providers.common.compat.sdk import AirflowSkipException

from airflow_provider_amlretrain.exceptions import (
    AzureMLConfigError,
    EvaluationError,
    EvaluationGateRejectedError,
)
from airflow_provider_amlretrain.operators.evaluation_gate import AzureMLEvaluationGateOperator
from airflow_provider_amlretrain.promotion.record import (
    DeploymentRecord,
    DeploymentRecordStore,
    VersionedRecord,
)
from airflow_provider_amlretrain.promotion.training_result import output_location
from tests.unit.support import FakeBlobService, serve_blobs
from tests.unit.test_operator import Journal, TiStub

CSV = "AUC,Accuracy,Positive Label\n0.88,0.81,yes\n"
TRAINING = {
    "job_id": "0123456789abcdef0123456789abcdef",
    "outputs": {
        "output1": {"relative_location": "models/runs/x/model.ilearner"},
        "output2": {"relative_location": "models/runs/x/evaluation.csv"},
    },
}
MODEL_V1 = "https://acct.blob.core.windows.net/models/runs/v1/model.ilearner"


@pytest.fixture
def reads(monkeypatch):
    """What the gate reads: the CSV blob and the deployment record."""

    class Reads:
        csv = CSV
        record = DeploymentRecord("ep1")
        blobs: list[tuple[str, str]] = []
        records: list[str] = []

    state = Reads()

    def read_file(container_name, blob_name):
        state.blobs.append((container_name, blob_name))
        if isinstance(state.csv, Exception):
            raise state.csv
        return state.csv

    def read(self, target):
        state.records.append(target)
        return VersionedRecord(state.record, '"etag"')

    serve_blobs(monkeypatch, FakeBlobService(read=read_file))
    monkeypatch.setattr(DeploymentRecordStore, "read", read)
    return state


def run(**kwargs):
    params = {
        "task_id": "gate",
        "training_result": TRAINING,
        "rules": [{"metric": "auc", "min": 0.8}],
        "wasb_conn_id": "blob_test",
    }
    params.update(kwargs)
    op = AzureMLEvaluationGateOperator(**params)
    ti = TiStub(Journal())
    context = {"ti": ti}
    try:
        return op.execute(context), ti
    except BaseException as err:
        err.ti = ti  # type: ignore[attr-defined]
        raise


def test_missing_evaluation_blob_names_the_job_output(reads):
    from azure.core.exceptions import ResourceNotFoundError

    reads.csv = ResourceNotFoundError("The specified blob does not exist.\nRequestId:1\n<Error/>")
    with pytest.raises(AzureMLConfigError) as info:
        run()
    message = str(info.value)
    assert message.startswith("The evaluation result models/runs/x/evaluation.csv does not exist")
    assert "'blob_test'" in message and "'output2' output" in message and "<Error/>" not in message


def test_evaluation_blob_that_is_not_text(reads):
    reads.csv = UnicodeDecodeError("utf-8", b"\x89PNG", 0, 1, "invalid start byte")
    with pytest.raises(
        AzureMLConfigError, match=r"evaluation.csv is not UTF-8 text \(byte 0\); expected a CSV"
    ):
        run()


def test_output_location_errors():
    assert output_location(TRAINING, "output2", "evaluation") == "models/runs/x/evaluation.csv"
    for bad in (None, "models/x.csv", {"job_id": "j"}, {"outputs": ["output2"]}):
        with pytest.raises(AzureMLConfigError, match="training_result must be the BES operator's result"):
            output_location(bad, "output2", "evaluation")
    with pytest.raises(
        AzureMLConfigError,
        match=r"no output 'output3' \(evaluation\); its outputs are \['output1', 'output2'\]",
    ):
        output_location(TRAINING, "output3", "evaluation")
    for output in (
        "models/runs/x/evaluation.csv",
        {"relative_location": None},
        {"relative_location": "x.csv"},
        {},
    ):
        with pytest.raises(
            AzureMLConfigError, match=r"output 'output2' \(evaluation\) has no 'relative_location'"
        ):
            output_location({"job_id": "j", "outputs": {"output2": output}}, "output2", "evaluation")


def test_on_reject_is_checked_at_construction():
    with pytest.raises(AzureMLConfigError, match="on_reject"):
        AzureMLEvaluationGateOperator(
            task_id="g", training_result=TRAINING, rules=[], wasb_conn_id="w", on_reject="warn"
        )


def test_promote_returns_the_decision(reads):
    summary, ti = run()
    assert reads.blobs == [("models", "runs/x/evaluation.csv")]
    assert reads.records == []
    assert summary["promote"] is True
    assert summary["metrics"] == {"AUC": 0.88, "Accuracy": 0.81}
    assert summary["evaluation"] == "models/runs/x/evaluation.csv"
    assert ti.xcom["gate_decision"] == summary


def test_baseline_comes_from_the_deployment_record(reads, caplog):
    reads.record = DeploymentRecord("ep1", current={"model_uri": MODEL_V1, "metrics": {"AUC": 0.9}})
    rules = [{"metric": "AUC", "compare_to_baseline": True, "tolerance": 0.02}]
    summary, _ = run(rules=rules, deployment_target="ep1")
    assert reads.records == ["ep1"]
    assert summary["promote"] is True
    assert summary["baseline_metrics"] == {"AUC": 0.9}
    assert summary["verdicts"][0]["baseline"] == 0.9
    assert summary["deployment_target"] == "ep1"


def test_a_borderline_model_is_handed_on_for_review_not_skipped(reads, caplog):
    reads.record = DeploymentRecord("ep1", current={"model_uri": MODEL_V1, "metrics": {"AUC": 0.875}})
    rules = [{"metric": "AUC", "compare_to_baseline": True, "tolerance": 0.01, "review_margin": 0.02}]
    summary, ti = run(rules=rules, deployment_target="ep1", on_reject="fail")
    assert summary["outcome"] == "review"
    assert ti.xcom["gate_decision"]["outcome"] == "review"
    assert "| AUC | 0.88 | 0.875 | borderline |" in summary["report"]
    assert "REVIEW AUC 0.88 vs production 0.875" in caplog.text


def test_a_model_is_not_its_own_baseline(reads, caplog):
    # The gate runs again after its model was promoted (a clear of evaluate): compare with the model it replaced.
    mine = {"model_uri": MODEL_V1, "job_id": TRAINING["job_id"], "metrics": {"AUC": 0.88}}
    replaced = {
        "model_uri": "https://x/models/v0/model.ilearner",
        "job_id": "older",
        "metrics": {"AUC": 0.95},
    }
    reads.record = DeploymentRecord("ep1", current=mine, history=[{**replaced, "outcome": "replaced"}])
    rules = [{"metric": "AUC", "compare_to_baseline": True, "tolerance": 0.02}]
    with pytest.raises(AirflowSkipException, match="0.88"):
        run(rules=rules, deployment_target="ep1")
    assert "the model of BES job older" in caplog.text and "the one this job's model replaced" in caplog.text


def test_a_record_that_needs_attention_is_reported(reads, caplog):
    reads.record = DeploymentRecord(
        "ep1",
        current={"model_uri": MODEL_V1, "metrics": {"AUC": 0.9}},
        attention={"since": "2024-06-02T00:00:00+00:00", "may_serve": "https://x/models/v2/model.ilearner"},
    )
    run(rules=[{"metric": "AUC", "compare_to_baseline": True, "tolerance": 0.02}], deployment_target="ep1")
    assert (
        "ep1 may serve https://x/models/v2/model.ilearner instead (a rollback failed at 2024-06-02"
        in caplog.text
    )


def test_first_deployment_passes_the_comparison(reads):
    summary, _ = run(rules=[{"metric": "AUC", "compare_to_baseline": True}], deployment_target="ep1")
    assert summary["promote"] is True
    assert summary["baseline_metrics"] is None


def test_reject_with_skip_pushes_the_decision_and_skips(reads):
    with pytest.raises(AirflowSkipException, match=r"promotion skipped.*AUC 0.88 < minimum 0.9") as info:
        run(rules=[{"metric": "AUC", "min": 0.9}, {"metric": "Accuracy", "min": 0.5}])
    decision = info.value.ti.xcom["gate_decision"]
    assert decision["promote"] is False
    assert [v["passed"] for v in decision["verdicts"]] == [False, True]


def test_reject_with_fail_raises(reads):
    reads.record = DeploymentRecord("ep1", current={"model_uri": MODEL_V1, "metrics": {"Accuracy": 0.9}})
    with pytest.raises(
        EvaluationGateRejectedError, match=r"not promoted: Accuracy 0.81 vs production 0.9"
    ) as info:
        run(
            rules=[{"metric": "Accuracy", "compare_to_baseline": True}],
            deployment_target="ep1",
            on_reject="fail",
        )
    assert info.value.ti.xcom["gate_decision"]["promote"] is False


def test_missing_metric_lists_the_columns(reads):
    with pytest.raises(
        EvaluationError, match=r"lacks metric\(s\) 'RMSE'; its columns are: AUC, Accuracy, Positive Label"
    ):
        run(rules=[{"metric": "RMSE", "max": 1}])


def test_second_evaluation_row(reads):
    reads.csv = "AUC\n0.95\n0.7\n"
    with pytest.raises(AirflowSkipException):
        run(evaluation_row=1)


def test_malformed_csv_names_the_blob(reads):
    reads.csv = "AUC\n"
    with pytest.raises(EvaluationError, match="models/runs/x/evaluation.csv has a header"):
        run()
