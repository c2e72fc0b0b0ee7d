"""Operator that decides, from the Evaluate Model CSV, whether a retrained model may be promoted."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowSkipException, BaseOperator

from airflow_provider_amlretrain.exceptions import AzureMLConfigError, EvaluationGateRejectedError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.providers.common.compat.sdk import Context

ON_REJECT = ("skip", "fail")


class AzureMLEvaluationGateOperator(BaseOperator):
    """
    Read the evaluation a training job wrote and apply promotion rules.

    Rules are dicts: ``{"metric": "AUC", "min": 0.8}``, ``{"metric": "Root Mean Squared Error",
    "compare_to_baseline": True, "tolerance": 0.5}``; metric names match case-insensitively, and
    each metric's direction (AUC up, errors down) comes from its name unless ``direction`` is given.
    The baseline is the production model's metrics from the target's deployment record (never the model
    itself: when this job's model is already deployed, the one it replaced).

    When the model passes, returns the decision; its ``outcome`` is ``promote``, or ``review`` when a
    rule with a ``review_margin`` finds the model borderline (not clearly better than production). A
    DAG that wants a person to decide those branches on ``outcome`` to an ``ApprovalOperator`` before
    the promotion (see ``dags/amlretrain_approve_borderline.py``); its ``report`` is the verdicts as
    Markdown for the approver. A DAG that does not branch promotes borderline models like clear
    passes. When the model does not pass: with ``on_reject="skip"`` the
    task (and so the promotion branch after it) is skipped and the run stays green; with ``"fail"``
    the task fails. Either way the decision (metrics, baseline, each rule's verdict) is logged and
    pushed to XCom under ``gate_decision``.

    :param training_result: The BES operator's result (templated, e.g. ``retrain.output``).
    :param rules: Promotion rules.
    :param wasb_conn_id: The ``wasb`` connection of the storage account the job wrote to.
    :param evaluation_port: The job's evaluation output port.
    :param deployment_target: The deployment record to read the baseline from (same name as the promotion task's).
    :param record_container: The container of deployment records.
    :param on_reject: ``skip`` or ``fail``.
    :param evaluation_row: Which row of the evaluation CSV to judge (0: the first scored set).
    """

    template_fields = ("training_result", "rules", "deployment_target")
    template_fields_renderers = {"training_result": "json", "rules": "json"}
    ui_color = "#fdebd0"

    def __init__(
        self,
        *,
        training_result: Any,
        rules: Sequence[Mapping[str, Any]],
        wasb_conn_id: str,
        evaluation_port: str = "output2",
        deployment_target: str | None = None,
        record_container: str = "deployments",
        on_reject: str = "skip",
        evaluation_row: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if on_reject not in ON_REJECT:
            raise AzureMLConfigError(f"on_reject must be one of {ON_REJECT}, not {on_reject!r}.")
        self.training_result = training_result
        self.rules = rules
        self.wasb_conn_id = wasb_conn_id
        self.evaluation_port = evaluation_port
        self.deployment_target = deployment_target
        self.record_container = record_container
        self.on_reject = on_reject
        self.evaluation_row = evaluation_row

    def execute(self, context: Context) -> dict[str, Any]:
        """Judge the model; return the decision, or skip/fail when it is rejected."""
        from airflow_provider_amlretrain.blob_text import read_text_blob
        from airflow_provider_amlretrain.promotion.evaluation import parse_evaluation_csv
        from airflow_provider_amlretrain.promotion.record import DeploymentRecordStore, metrics_of
        from airflow_provider_amlretrain.promotion.rules import GateOutcome, decide
        from airflow_provider_amlretrain.promotion.training_result import output_location

        location = output_location(self.training_result, self.evaluation_port, "evaluation")
        text = read_text_blob(
            self.wasb_conn_id,
            location,
            "The evaluation result",
            f"The training job named it as its {self.evaluation_port!r} output: check that wasb_conn_id is the "
            "account the job wrote to and that nothing deleted the blob since, or retrain.",
        )
        challenger = parse_evaluation_csv(text, row=self.evaluation_row, source=location)
        baseline = None
        if self.deployment_target:
            record = (
                DeploymentRecordStore(self.wasb_conn_id, self.record_container)
                .read(self.deployment_target)
                .record
            )
            job_id = self.training_result.get("job_id") if isinstance(self.training_result, Mapping) else None
            entry = record.baseline_for(str(job_id) if job_id else None)
            baseline = metrics_of(entry)
            self.log.info(
                "Baseline for %s: %s",
                self.deployment_target,
                f"the model of BES job {entry.get('job_id')} ({entry.get('model_uri')})"
                + (" (the one this job's model replaced)" if entry is not record.current else "")
                if entry
                else "nothing deployed yet",
            )
            if record.attention:
                self.log.warning(
                    "%s may serve %s instead (a rollback failed at %s): the baseline may not be what it serves.",
                    self.deployment_target,
                    record.attention.get("may_serve"),
                    record.attention.get("since"),
                )
        decision = decide(self.rules, challenger, baseline)
        for verdict in decision.verdicts:
            word = "REVIEW" if verdict.borderline else "PASS" if verdict.passed else "FAIL"
            self.log.info("%s %s", word, verdict.reason)
        summary = {
            **decision.to_summary(),
            "evaluation": location,
            "deployment_target": self.deployment_target,
        }
        context["ti"].xcom_push(key="gate_decision", value=summary)
        if decision.outcome is GateOutcome.REVIEW:
            self.log.info("The retrained model meets every rule but is borderline: a person should decide.")
            return summary
        if decision.promote:
            self.log.info("The retrained model meets every rule: promote it.")
            return summary
        failed = "; ".join(v.reason for v in decision.verdicts if not v.passed)
        if self.on_reject == "fail":
            raise EvaluationGateRejectedError(f"The retrained model is not promoted: {failed}")
        raise AirflowSkipException(f"The retrained model is not promoted (promotion skipped): {failed}")
