"""What every promotion operator does: fresh model location, record guard, deploy, smoke test, rollback."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowSkipException, BaseOperator

from airflow_provider_amlretrain.exceptions import (
    AzureMLConfigError,
    RollbackError,
    SmokeTestError,
    SmokeTestUnavailableError,
    UnconfirmedDeploymentError,
    is_retryable,
)
from airflow_provider_amlretrain.flags import parse_flag
from airflow_provider_amlretrain.promotion.data_version import DEFAULT_DATA_VERSION_PATTERN
from airflow_provider_amlretrain.redaction import redact

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_amlretrain.api.references import BlobLocation
    from airflow_provider_amlretrain.api.rrs import ScoringTable
    from airflow_provider_amlretrain.promotion.data_version import DataVersion
    from airflow_provider_amlretrain.promotion.guard import CandidateModel, ClaimOutcome, DeploymentGuard
    from airflow_provider_amlretrain.promotion.smoke_test import SmokeSample, SmokeTestResult

# The hooks, the record store and the smoke test load when a task runs, not when a DAG file is parsed.


@dataclass
class Deployment:
    """
    What :meth:`BaseModelPromotionOperator.deploy` did: enough to undo it, and facts for the record.

    :param previous_model_uri: What the target ran before (no SAS).
    :param undo: Subclass data to roll back with (may hold secrets: never logged or pushed).
    :param details: Secret-free facts for the record and the result.
    """

    previous_model_uri: str | None
    undo: Any = field(repr=False)
    details: dict[str, Any] = field(default_factory=dict)


#: The shortest claim lease, when the operator's own limits do not say more.
MIN_LEASE_SECONDS = 1800.0
#: Time for everything in a promotion but the update waits: reads, PATCH calls, smoke test, record writes.
LEASE_ALLOWANCE_SECONDS = 900.0


@dataclass
class _InFlight:
    """A promotion between its claim and its commit: what an interruption must undo."""

    guard: DeploymentGuard
    model: BlobLocation
    deployment: Deployment | None = None
    cleaning_up: bool = False
    committing: bool = False


class BaseModelPromotionOperator(BaseOperator):
    """
    Deploy the model a BES job trained, safely.

    The model's location is read again from the job (a fresh SAS; no SAS ever crosses XCom).
    A deployment record per target (JSON in blob storage, conditional writes) decides whether
    this run may deploy: the model is named by its BES job (and its blob's ETag), so "already
    deployed" means this very model; a model trained on older data than the deployed one, or
    without a data version (see :meth:`find_data_version`), is not deployed (the task is skipped,
    saying why) unless ``force``; of two runs racing for one target exactly one deploys. After deploying, a few rows of real data are scored; if that fails the previous
    model is put back and the task fails.

    :param deployment_target: The record's name for this target (the gate reads the same record).
    :param training_result: The BES operator's result (templated, e.g. ``retrain.output``).
    :param training_conn_id: The ``azureml_studio`` connection of the training web service (to re-read the job).
    :param wasb_conn_id: The ``wasb`` connection holding records and the smoke-test sample.
    :param model_port: The job's trained-model output port.
    :param gate_result: The gate's decision (templated), whose metrics go into the record.
    :param smoke_test_sample: ``container/blob`` of a CSV to score after deploying (templated); ``None`` skips the smoke test.
        It is read before anything changes, so a wrong path fails the task with the target untouched.
    :param smoke_test_input_name: The web service input port.
    :param smoke_test_drop_columns: Columns of the sample not sent for scoring (the label).
    :param smoke_test_rows: How many rows to score.
    :param record_container: The container of deployment records.
    :param force: Deploy even over a model trained on newer data, or without a data version (templated;
        ``"false"``, ``"0"``, ``"no"`` are false, anything unclear is an error).
    :param skip_promotion: Skip this task, changing nothing (templated like ``force``; e.g. a DAG
        param ``"{{ params.skip_promotion }}"``).
    :param claim_lease: How long this run's claim on the target holds (seconds or a ``timedelta``) before
        another run may take the target over. By default it follows the task's own limits: its
        ``execution_timeout`` plus a minute, or else twice the update wait (update and rollback) plus
        :data:`LEASE_ALLOWANCE_SECONDS`, and never less than :data:`MIN_LEASE_SECONDS`.
    :param data_version_blob: ``container/blob`` the model was trained on (templated), when the run has no data
        interval (asset-triggered or manual runs): its data version is the date in that path (found with
        ``data_version_pattern``), else the blob's last-modified time. Without it such a run takes the blob of the
        single asset event that started it; a run with no data version is not deployed unless ``force``.
    :param data_version_pattern: A regular expression finding the date in a blob path, in a group named ``date``
        (default: the first ``YYYY-MM-DD``, optionally with ``THH:MM[:SS]``).
    """

    template_fields: Sequence[str] = (
        "deployment_target",
        "training_result",
        "gate_result",
        "smoke_test_sample",
        "force",
        "skip_promotion",
        "data_version_blob",
    )
    template_fields_renderers = {"training_result": "json", "gate_result": "json"}
    ui_color = "#d5f5e3"

    def __init__(
        self,
        *,
        deployment_target: str,
        training_result: Any,
        training_conn_id: str,
        wasb_conn_id: str,
        model_port: str = "output1",
        gate_result: Any = None,
        smoke_test_sample: str | None = None,
        smoke_test_input_name: str = "input1",
        smoke_test_drop_columns: Sequence[str] = ("label", "target"),
        smoke_test_rows: int = 5,
        record_container: str = "deployments",
        force: bool | str = False,
        skip_promotion: bool | str = False,
        claim_lease: timedelta | float | None = None,
        data_version_blob: str | None = None,
        data_version_pattern: str = DEFAULT_DATA_VERSION_PATTERN,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.deployment_target = deployment_target
        self.training_result = training_result
        self.training_conn_id = training_conn_id
        self.wasb_conn_id = wasb_conn_id
        self.model_port = model_port
        self.gate_result = gate_result
        self.smoke_test_sample = smoke_test_sample
        self.smoke_test_input_name = smoke_test_input_name
        self.smoke_test_drop_columns = smoke_test_drop_columns
        self.smoke_test_rows = smoke_test_rows
        self.record_container = record_container
        self.force = force
        self.skip_promotion = skip_promotion
        self.claim_lease = claim_lease.total_seconds() if isinstance(claim_lease, timedelta) else claim_lease
        self._in_flight: _InFlight | None = None
        self.data_version_blob = data_version_blob
        self.data_version_pattern = data_version_pattern

    # -- what subclasses provide ------------------------------------------------------------------

    def flag(self, name: str) -> bool:
        """
        The rendered boolean field ``name``, parsed strictly (``None`` or empty: ``False``).

        :param name: The attribute's name.
        """
        return parse_flag(
            getattr(self, name),
            owner=f"Task {self.task_id!r} ({type(self).__name__})",
            field=name,
            default=False,
        )

    def check_arguments(self) -> None:
        """Refuse bad rendered arguments before anything is claimed or changed (subclasses extend)."""
        self.flag("force")
        self.flag("skip_promotion")
        if not isinstance(self.smoke_test_rows, int) or self.smoke_test_rows < 1:
            raise AzureMLConfigError(
                f"smoke_test_rows must be a whole number >= 1, not {self.smoke_test_rows!r}."
            )

    @abstractmethod
    def prepare(self, model: BlobLocation) -> Deployment:
        """Read the target and plan the update to ``model``; nothing changes yet. Return how to undo it."""

    @abstractmethod
    def apply(self, model: BlobLocation, deployment: Deployment) -> None:
        """
        Point the target at ``model`` and confirm it serves it.

        Any error raised here leaves the target in an unknown state, so the caller rolls back.
        """

    @abstractmethod
    def rollback(self, deployment: Deployment, model: BlobLocation) -> bool:
        """
        Put the previous model back and confirm it, if the target serves ``model``.

        :return: ``True`` when the previous model was put back, ``False`` when the target did not serve
            ``model`` (the update never took effect: refused, or lost on the way).
        """

    def deploy(self, model: BlobLocation) -> Deployment:
        """Plan and apply the update to ``model`` (without record, smoke test or rollback)."""
        deployment = self.prepare(model)
        self.apply(model, deployment)
        return deployment

    @abstractmethod
    def score(self, sample: SmokeSample) -> ScoringTable:
        """Score the sample through the target's RRS."""

    def update_wait_seconds(self) -> float:
        """The longest one update (or its rollback) may wait for the target; subclasses with waits say so."""
        return 0.0

    def lease_seconds(self) -> float:
        """How long this run's claim holds (see ``claim_lease``)."""
        if self.claim_lease is not None:
            lease = float(self.claim_lease)
            if not lease > 0:
                raise AzureMLConfigError(
                    f"claim_lease must be a positive number of seconds, not {self.claim_lease!r}."
                )
            return lease
        if self.execution_timeout is not None:
            return self.execution_timeout.total_seconds() + 60.0
        return max(MIN_LEASE_SECONDS, 2 * self.update_wait_seconds() + LEASE_ALLOWANCE_SECONDS)

    # -- the flow ---------------------------------------------------------------------------------

    def fresh_model_location(self) -> tuple[str, BlobLocation]:
        """Re-read the training job for the model's location with a fresh read-only SAS."""
        from airflow_provider_amlretrain.hooks.studio import AzureMLStudioHook
        from airflow_provider_amlretrain.promotion.training_result import output_location

        relative = output_location(self.training_result, self.model_port, "trained model")
        job_id = str(self.training_result.get("job_id") or "")
        state = AzureMLStudioHook(azureml_conn_id=self.training_conn_id).get_job(job_id)
        if not state.status.is_success:
            raise AzureMLConfigError(
                f"BES job {job_id} is {state.status.value}, not Finished: there is no model to promote."
            )
        location = state.results.get(self.model_port)
        if location is None or location.relative_location != relative:
            raise AzureMLConfigError(
                f"BES job {job_id} reports output {self.model_port!r} at "
                f"{location.relative_location if location else 'nowhere'}, not {relative}: wrong training_result?"
            )
        return job_id, location

    def find_data_version(self, context: Context) -> tuple[DataVersion | None, str]:
        """
        Which data this run's model was trained on (see :mod:`~airflow_provider_amlretrain.promotion.data_version`).

        :return: The version, or ``None`` and why the run has none.
        """
        from airflow_provider_amlretrain.promotion.data_version import (
            compile_pattern,
            from_asset_events,
            from_blob,
            from_data_interval,
        )

        pattern = compile_pattern(self.data_version_pattern)
        blob = str(self.data_version_blob or "").strip().lstrip("/")
        if blob:
            container, _, name = blob.partition("/")
            if not name:
                raise AzureMLConfigError(f"data_version_blob must be 'container/path/to/blob', not {blob!r}.")
            version = from_blob(blob, pattern, lambda: self._last_modified(container, name))
            return (
                version,
                "" if version else f"blob {blob} has no date in its path and no last-modified time",
            )
        interval = from_data_interval(context.get("data_interval_start"), context.get("data_interval_end"))
        if interval is not None:
            return interval, ""
        version, why = from_asset_events(context.get("triggering_asset_events"), pattern)
        return version, f"this run has no data interval and {why}" if version is None else ""

    def _last_modified(self, container: str, blob: str) -> Any:
        from azure.core.exceptions import ResourceNotFoundError

        from airflow_provider_amlretrain.hooks.blob_storage import blob_service_client

        try:
            properties = (
                blob_service_client(self.wasb_conn_id).get_blob_client(container, blob).get_blob_properties()
            )
        except ResourceNotFoundError:
            raise AzureMLConfigError(
                f"data_version_blob {container}/{blob} does not exist (through connection {self.wasb_conn_id!r}): "
                "pass the blob the model was trained on."
            ) from None
        return properties.last_modified

    def _candidate(
        self, context: Context, job_id: str, model: BlobLocation, version: DataVersion | None
    ) -> CandidateModel:
        from airflow_provider_amlretrain.promotion.guard import CandidateModel
        from airflow_provider_amlretrain.promotion.model_blob import read_blob_version

        gate = self.gate_result if isinstance(self.gate_result, Mapping) else {}
        metrics = gate.get("metrics")
        blob = read_blob_version(model)
        return CandidateModel(
            model_uri=model.uri,
            job_id=job_id,
            metrics={str(k): float(v) for k, v in metrics.items()} if isinstance(metrics, Mapping) else None,
            data_interval_start=version.start if version else None,
            data_interval_end=version.end if version else None,
            dag_id=context["dag"].dag_id,
            run_id=context["run_id"],
            model_etag=blob.etag,
            model_version_id=blob.version_id,
            data_version_source=version.source if version else None,
        )

    def execute(self, context: Context) -> dict[str, Any]:
        """Claim, deploy, smoke-test, commit (or roll back)."""
        from airflow_provider_amlretrain.promotion.guard import ClaimOutcome, DeploymentGuard
        from airflow_provider_amlretrain.promotion.record import DeploymentRecordStore

        self.check_arguments()
        if self.flag("skip_promotion"):
            message = (
                f"skip_promotion is set for this run: {self.deployment_target} is left as it is "
                "(nothing claimed, deployed or recorded)."
            )
            self.log.info("%s", message)
            raise AirflowSkipException(message)
        job_id, model = self.fresh_model_location()
        # Read the smoke-test rows first: a wrong sample path must fail here, before the target changes.
        sample = self._smoke_sample()
        version, no_version = self.find_data_version(context)
        if version is not None:
            self.log.info("Data version of this model: %s (from %s).", version.end, version.source)
        candidate = self._candidate(context, job_id, model, version)
        guard = DeploymentGuard(
            DeploymentRecordStore(self.wasb_conn_id, self.record_container),
            self.deployment_target,
            candidate,
            force=self.flag("force"),
            lease_seconds=self.lease_seconds(),
        )
        outcome = guard.claim()
        if guard.warning:
            self.log.warning("%s", guard.warning)
        if outcome in (ClaimOutcome.STALE, ClaimOutcome.NO_DATA_VERSION):
            reason = f"{guard.reason} ({no_version}.)" if no_version else guard.reason
            self.log.warning("%s", reason)
            context["ti"].xcom_push(
                key="promotion",
                value={**self._not_deployed(candidate, outcome), "reason": reason},
            )
            raise AirflowSkipException(reason)
        if outcome is ClaimOutcome.ALREADY_DEPLOYED:
            self.log.info("%s Nothing to do.", guard.reason)
            return {**self._not_deployed(candidate, outcome), "reason": guard.reason}
        self.log.info(
            "Claimed %s for model %s (BES job %s) for %.0f s.",
            self.deployment_target,
            model.uri,
            job_id,
            guard.lease_seconds,
        )
        self._in_flight = _InFlight(guard, model)
        try:
            return self._deploy_claimed(guard, candidate, model, sample)
        except BaseException as err:
            if isinstance(err, Exception):
                raise  # handled where it happened
            self._interrupted(err)
            raise
        finally:
            self._in_flight = None

    def _deploy_claimed(
        self,
        guard: DeploymentGuard,
        candidate: CandidateModel,
        model: BlobLocation,
        sample: SmokeSample | None,
    ) -> dict[str, Any]:
        """Deploy to a claimed target, smoke-test, commit; on an error roll back and record the attempt."""
        assert self._in_flight is not None
        job_id = candidate.job_id
        try:
            deployment = self.prepare(model)
        except Exception as err:  # nothing was changed: release the claim
            guard.abandon("failed", redact(str(err)))
            raise
        self._in_flight.deployment = deployment
        try:
            self.apply(model, deployment)
        except Exception as err:  # refused, lost or unconfirmed: the target may serve either model
            reason = f"the update was not confirmed ({type(err).__name__}: {redact(str(err))})"
            if not self._roll_back(guard, deployment, model, reason):
                raise  # the target never served this model: the original error says why
            raise UnconfirmedDeploymentError(self._rolled_back(reason, deployment)) from None
        self.log.info(
            "%s now serves %s (was %s).", self.deployment_target, model.uri, deployment.previous_model_uri
        )
        try:
            smoke = self._smoke_test(sample)
        except Exception as err:  # any failure (a missing sample blob too) means the new model is unverified
            reason = f"the new model failed its smoke test: {redact(str(err))}"
            # Wrong answers fail for good; a scoring service that was down may answer on the next try.
            failure = SmokeTestUnavailableError if is_retryable(err) else SmokeTestError
            if self._roll_back(guard, deployment, model, reason):
                raise failure(self._rolled_back(reason, deployment)) from None
            raise failure(
                f"{reason[0].upper()}{reason[1:]}; {self.deployment_target} no longer serves it."
            ) from None
        self._in_flight.committing = True
        entry = guard.commit(
            **deployment.details,
            previous_model_uri=deployment.previous_model_uri,
            smoke_test=smoke.to_summary() if smoke else None,
        )
        return {
            "deployment_target": self.deployment_target,
            "outcome": "deployed",
            "model_uri": model.uri,
            "previous_model_uri": deployment.previous_model_uri,
            "job_id": job_id,
            "model_etag": candidate.model_etag,
            "data_version": candidate.data_interval_end,
            "details": deployment.details,
            "smoke_test": smoke.to_summary() if smoke else None,
            "deployed_at": entry["deployed_at"],
        }

    # -- kills and timeouts -----------------------------------------------------------------------

    def on_kill(self) -> None:
        """
        A person or the scheduler killed the task (SIGTERM) while it may be promoting.

        Airflow calls this from the SIGTERM handler, in the middle of ``execute``. Raising
        ``AirflowTaskTerminated`` here unwinds ``execute`` at once (an update in flight is not
        followed by a commit), and its interruption path rolls back and records the attempt.
        Called after a timeout, ``execute`` has already done so: nothing is left to do.
        """
        in_flight = self._in_flight
        if in_flight is None or in_flight.cleaning_up or in_flight.committing:
            return
        from airflow.sdk.exceptions import AirflowTaskTerminated

        self.log.error("The task was killed while promoting to %s: stopping it.", self.deployment_target)
        raise AirflowTaskTerminated(f"Killed while promoting to {self.deployment_target}.")

    def _interrupted(self, err: BaseException) -> None:
        """
        Undo what a killed or timed-out promotion did, and record it, before the interruption goes on.

        Never raises: the interruption (``AirflowTaskTimeout``, ``AirflowTaskTerminated``...) is what the
        task ends with; a failed cleanup is logged and recorded (or left to the claim's lease).
        """
        in_flight = self._in_flight
        if in_flight is None or in_flight.cleaning_up or in_flight.committing:
            return
        in_flight.cleaning_up = True
        what = type(err).__name__
        try:
            if in_flight.deployment is None:
                in_flight.guard.abandon("interrupted", f"the task was interrupted ({what}) before the update")
                return
            reason = f"the task was interrupted ({what}) during the update or its smoke test"
            self._roll_back(in_flight.guard, in_flight.deployment, in_flight.model, reason)
        except Exception as cleanup_err:
            self.log.error(
                "After %s, cleaning up %s failed (%s); its claim expires after %.0f s.",
                what,
                self.deployment_target,
                redact(str(cleanup_err)),
                in_flight.guard.lease_seconds,
            )

    def _not_deployed(self, candidate: CandidateModel, outcome: ClaimOutcome) -> dict[str, Any]:
        """The result of a promotion that deployed nothing."""
        return {
            "deployment_target": self.deployment_target,
            "outcome": outcome.value,
            "model_uri": candidate.model_uri,
            "job_id": candidate.job_id,
            "data_version": candidate.data_interval_end,
        }

    def _roll_back(
        self, guard: DeploymentGuard, deployment: Deployment, model: BlobLocation, reason: str
    ) -> bool:
        """
        Undo an update that did or may have reached the target, and record the attempt.

        :return: ``True`` when the previous model was put back (recorded as ``rolled_back``), ``False``
            when the target did not serve ``model`` (nothing to undo; recorded as ``failed``).
        :raises RollbackError: when putting it back failed (recorded as ``rollback_failed``).
        """
        self.log.error("%s. Rolling back to %s.", reason, deployment.previous_model_uri)
        try:
            restored = self.rollback(deployment, model)
        except Exception as rollback_err:
            failure = redact(str(rollback_err))
            guard.abandon("rollback_failed", f"{reason}; rollback: {failure}", **deployment.details)
            raise RollbackError(
                f"{reason[0].upper()}{reason[1:]}, and the rollback failed ({failure}). Point "
                f"{self.deployment_target} back to {deployment.previous_model_uri} by hand."
            ) from None
        if not restored:
            self.log.info("%s never served %s: nothing to roll back.", self.deployment_target, model.uri)
        guard.abandon("rolled_back" if restored else "failed", reason, **deployment.details)
        return restored

    def _rolled_back(self, reason: str, deployment: Deployment) -> str:
        """The message of a task that failed after its update was undone."""
        return f"{reason[0].upper()}{reason[1:]}; {self.deployment_target} was rolled back to {deployment.previous_model_uri}."

    def _smoke_sample(self) -> SmokeSample | None:
        from airflow_provider_amlretrain.promotion.smoke_test import load_sample

        if not self.smoke_test_sample:
            self.log.info("No smoke_test_sample given: the promoted model will not be smoke-tested.")
            return None
        return load_sample(
            self.wasb_conn_id,
            self.smoke_test_sample,
            max_rows=self.smoke_test_rows,
            drop_columns=self.smoke_test_drop_columns,
        )

    def _smoke_test(self, sample: SmokeSample | None) -> SmokeTestResult | None:
        from airflow_provider_amlretrain.promotion.smoke_test import check_scoring

        if sample is None:
            return None
        result = check_scoring(sample, self.score(sample))
        self.log.info(
            "Smoke test passed: %d rows scored, predictions %s.", len(sample.rows), result.predictions
        )
        return result
