"""Operator that runs a Batch Execution Service job on an Azure ML Studio (classic) web service."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator, conf
from airflow.sdk import ResumableJobMixin

from airflow_provider_amlretrain.api.states import BatchJobStatus
from airflow_provider_amlretrain.exceptions import (
    AzureMLError,
    AzureMLNotFoundError,
    BatchJobFailedError,
    BatchJobTimeoutError,
)
from airflow_provider_amlretrain.hooks.default_connections import STUDIO_CONN_ID
from airflow_provider_amlretrain.links.batch_job import AzureMLBatchJobLink

# The hook, the trigger and the request builders load when a task runs, not when a DAG file is parsed.
if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_amlretrain.api.bes import BatchJobState
    from airflow_provider_amlretrain.api.references import BlobReference
    from airflow_provider_amlretrain.hooks.studio import AzureMLStudioHook

_GONE = "Gone"
"""Status given to a stored job id the service no longer knows: the job is submitted afresh."""


class AzureMLBatchExecutionOperator(ResumableJobMixin, BaseOperator):
    """
    Submit a BES job, persist its id, start it, and wait until it ends.

    The job id is written to the task state store *before* the job is started, so a retry (or a
    worker that died) reattaches to the same job instead of training twice. A clear (the UI's Clear,
    ``clearTaskInstances``, a backfill that reprocesses runs, ``airflow tasks clear``) starts over with a
    new job: the DAG run's ``clear_number`` is stored beside the job id, and a job submitted before the
    latest clear is never reattached to (it is cancelled if it still runs, e.g. when the task was cleared
    while deferred). With ``deferrable`` the wait happens in the triggerer. A ``job_timeout`` or a killed
    task cancels the remote job.

    Each job writes its outputs in its own ``try-<n>`` folder, inserted before the file name
    (``runs/2026-11-05/model.ilearner`` is written as ``runs/2026-11-05/try-1/model.ilearner``), so a job
    never overwrites what an earlier job of the task wrote; give each run its own folder in the blob
    names (e.g. with ``{{ run_id }}``). The result holds the locations the job actually wrote.

    Blob specs (``inputs`` / ``outputs`` values) are dicts, templated per run:
    ``{"wasb_conn_id": "azure_blob", "container": "models", "blob": "runs/{{ ds }}/model.ilearner"}``
    (credentials come from the ``wasb`` connection), or a raw SAS reference
    ``{"base_location", "relative_location", "sas_token"}``.

    Returns a secret-free dict: ``job_id``, ``status``, ``outputs`` (per port ``base_location``,
    ``relative_location``, ``uri`` without SAS) and ``duration_seconds``.

    :param outputs: Output port name to blob spec, e.g. ``{"output1": <model .ilearner>, "output2": <evaluation .csv>}``.
    :param inputs: Input port name to blob spec; omit when the experiment reads a ``Data URI`` parameter.
    :param global_parameters: Web service parameters (names are case-sensitive).
    :param azureml_conn_id: The ``azureml_studio`` connection of the *training* web service.
    :param azure_batch_pool_id: Run on a dedicated Azure Batch pool.
    :param poll_interval: Seconds before the first status checks; later waits grow with the job's elapsed
        time (half of it) up to ``max_poll_interval`` (see :class:`~airflow_provider_amlretrain.api.polling.JobPollingRules`).
    :param max_poll_interval: The longest wait between two status checks (default 120 s).
    :param job_timeout: Cancel the job and fail when it has not ended this long after it started.
    :param deferrable: Wait in the triggerer (default: ``[operators] default_deferrable``).
    :param cancel_on_kill: Cancel the remote job when the task is killed, and a job of before a clear that
        still runs when the cleared task starts over.
    :param outputs_per_attempt: Write outputs in the ``try-<n>`` folder of the task's attempt; ``False``
        writes exactly the rendered names (then a clear or a failed job's retry overwrites earlier outputs).
    :param end_from_trigger: With ``deferrable``, a job that finished ends the task in the triggerer, which
        pushes the same result to XCom: the task does not resume on a worker (one task execution fewer per
        job, which counts when many jobs run at once). A failed or timed-out job still resumes the task,
        to fail or retry it, and so does a finished job whose result the triggerer could not store. Airflow
        then runs no ``post_execute``, and success callbacks run in the DAG processor, as for every task
        ended by its trigger.
    """

    template_fields = ("inputs", "outputs", "global_parameters", "azure_batch_pool_id")
    template_fields_renderers = {"inputs": "json", "outputs": "json", "global_parameters": "json"}
    operator_extra_links = (AzureMLBatchJobLink(),)
    external_id_key = "azureml_bes_job_id"
    started_at_key = "azureml_bes_job_started_at"
    clear_number_key = "azureml_bes_job_clear_number"
    ui_color = "#d6eaf8"

    def __init__(
        self,
        *,
        outputs: Mapping[str, Any],
        inputs: Mapping[str, Any] | None = None,
        global_parameters: Mapping[str, Any] | None = None,
        azureml_conn_id: str = STUDIO_CONN_ID,
        azure_batch_pool_id: str | None = None,
        poll_interval: float = 15.0,
        max_poll_interval: float | None = None,
        job_timeout: timedelta | float | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        cancel_on_kill: bool = True,
        outputs_per_attempt: bool = True,
        end_from_trigger: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.outputs = outputs
        self.inputs = inputs
        self.global_parameters = global_parameters
        self.azureml_conn_id = azureml_conn_id
        self.azure_batch_pool_id = azure_batch_pool_id
        self.poll_interval = poll_interval
        self.max_poll_interval = max_poll_interval
        self.job_timeout = job_timeout.total_seconds() if isinstance(job_timeout, timedelta) else job_timeout
        self.deferrable = deferrable
        self.cancel_on_kill = cancel_on_kill
        self.outputs_per_attempt = outputs_per_attempt
        self.end_from_trigger = end_from_trigger
        self.job_id: str | None = None

    @cached_property
    def hook(self) -> AzureMLStudioHook:
        """The hook of the training web service."""
        from airflow_provider_amlretrain.hooks.studio import AzureMLStudioHook

        return AzureMLStudioHook(azureml_conn_id=self.azureml_conn_id)

    def execute(self, context: Context) -> dict[str, Any]:
        """Run (or reattach to) the job and return its secret-free summary."""
        self._forget_job_of_an_earlier_clear(context)
        result = self.execute_resumable(context)
        if result is None and self.job_id is not None:
            # On reattach the mixin returns what poll_until_complete returns (None) without calling
            # get_job_result: read the outcome here so a failed job raises and a finished one returns.
            result = self.get_job_result(self.job_id, context)
        return result

    # -- ResumableJobMixin ------------------------------------------------------------------------

    def submit_job(self, context: Context) -> str:
        """Create the job (not started: no compute is spent until its id is persisted)."""
        from airflow_provider_amlretrain.api.bes import build_batch_request
        from airflow_provider_amlretrain.blob_references import resolve_blob_specs
        from airflow_provider_amlretrain.blob_sas import BlobAccess, sas_lifetime

        ttl = sas_lifetime(self.job_timeout)
        body = build_batch_request(
            inputs=resolve_blob_specs(self.inputs, BlobAccess.READ, ttl),
            outputs=self._attempt_outputs(context, ttl),
            global_parameters=self.global_parameters,
            azure_batch_pool_id=self.azure_batch_pool_id,
        )
        job_id = self.hook.submit_job(body)
        self.log.info("Created BES job %s; it starts once its id is saved for retries.", job_id)
        self._store(
            context, self.clear_number_key, {"job_id": job_id, "clear_number": _clear_number(context)}
        )
        self._remember(context, job_id)
        return job_id

    def get_job_status(self, external_id: Any, context: Context) -> str:
        """Status of a job stored by an earlier try; ``Gone`` if the service forgot it."""
        job_id = str(external_id)
        try:
            state = self.hook.get_job(job_id)
        except AzureMLNotFoundError:
            self.log.warning("BES job %s from an earlier try no longer exists; submitting a new job.", job_id)
            return _GONE
        self._remember(context, job_id)
        return state.status.value

    def is_job_active(self, status: str) -> bool:
        """Whether an earlier try's job can be reattached to."""
        return status != _GONE and BatchJobStatus.parse(status).is_active

    def is_job_succeeded(self, status: str) -> bool:
        """Whether an earlier try's job already finished."""
        return status != _GONE and BatchJobStatus.parse(status).is_success

    def poll_until_complete(self, external_id: Any, context: Context) -> None:
        """Start the job if it has not started, then wait (here, or deferred to the triggerer)."""
        from airflow_provider_amlretrain.api.polling import JobPollingRules
        from airflow_provider_amlretrain.triggers.batch_job import AzureMLBatchJobTrigger

        job_id = str(external_id)
        state = self.hook.get_job(job_id)
        started_at = self._started_at(
            context, job_id
        )  # read once: each read is a round trip to the API server
        if state.status is BatchJobStatus.NOT_STARTED and started_at is None:
            # A started job stays NotStarted while it waits in the service's queue: start it only once.
            # The job is this operator's own (its id came from this task's submit): "already started" means started.
            self.hook.start_job(job_id, own_job=True)
            started_at = time.time()
            self._store(context, self.started_at_key, {"job_id": job_id, "started_at": started_at})
            self.log.info("Started BES job %s.", job_id)
            state = self.hook.get_job(job_id)
        rules = JobPollingRules(
            poll_interval=self.poll_interval,
            deadline=self._deadline(started_at),
            max_poll_interval=self.max_poll_interval,
            started_at=started_at,
        ).started()
        if state.status.is_terminal:
            return
        if self.deferrable:
            self.defer(
                trigger=AzureMLBatchJobTrigger(
                    azureml_conn_id=self.azureml_conn_id,
                    job_id=job_id,
                    poll_interval=rules.poll_interval,
                    max_poll_interval=rules.max_poll_interval,
                    started_at=rules.started_at,
                    deadline=rules.deadline,
                    cancel_on_kill=self.cancel_on_kill,
                    end_from_trigger=self.end_from_trigger,
                ),
                method_name="execute_complete",
            )
        state = self.hook.wait_for_job(job_id, rules)
        if not state.status.is_terminal:
            self._cancel_for_timeout(job_id, state)

    def get_job_result(self, external_id: Any, context: Context) -> dict[str, Any]:
        """Summary of the ended job; raises if it did not finish."""
        return self._finish(self.hook.get_job(str(external_id)), context)

    # -- deferral ---------------------------------------------------------------------------------

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """
        Resume after the trigger: validate its event and finish like the synchronous path.

        :param context: The task context.
        :param event: The trigger's payload.
        """
        from airflow_provider_amlretrain.api.events import BatchJobEvent, BatchJobOutcome

        job_event = BatchJobEvent.from_payload(event)
        self.job_id = job_event.job_id
        if job_event.outcome is BatchJobOutcome.ERROR:
            raise AzureMLError(f"Waiting for BES job {job_event.job_id} failed: {job_event.message}")
        state = self.hook.get_job(job_event.job_id)
        if job_event.outcome is BatchJobOutcome.TIMED_OUT and not state.status.is_terminal:
            self._cancel_for_timeout(job_event.job_id, state)
        return self._finish(state, context)

    # -- kill -------------------------------------------------------------------------------------

    def on_kill(self) -> None:
        """Cancel the remote job when the task is killed on the worker."""
        if self.job_id and self.cancel_on_kill:
            self.log.info("Task killed: cancelling BES job %s.", self.job_id)
            self.hook.cancel_job(self.job_id)

    # -- clears and attempts -----------------------------------------------------------------------

    def _forget_job_of_an_earlier_clear(self, context: Context) -> None:
        """
        Drop the stored job id when the DAG run was cleared after that job was submitted: a clear starts over.

        Airflow keeps the task state store across a clear, and the mixin would reattach to (or return) the
        job of before the clear. A retry does not change ``clear_number``, so it still reattaches. A job id
        stored without its clear number (by an older version of this operator) counts as this clear's only
        while the run was never cleared.
        """
        job_id = self._stored(context, self.external_id_key)
        if not job_id:
            return
        now = _clear_number(context)
        stored = self._stored(context, self.clear_number_key)
        if isinstance(stored, dict) and stored.get("job_id") != job_id:
            # A later submission was recorded but its id never saved (a try died in between): not this job.
            self.log.info(
                "BES job %s is not the job this task submitted last: this try submits a new job.", job_id
            )
        else:
            then = stored.get("clear_number") if isinstance(stored, dict) else 0
            if then == now:
                return
            self.log.info(
                "BES job %s was submitted before the DAG run was cleared (clear %s, now clear %s): this try "
                "submits a new job instead of reusing it.",
                job_id,
                then,
                now,
            )
        if self.cancel_on_kill:
            self._cancel_abandoned_job(job_id)
        store = context.get("task_state_store")
        if store is not None:
            store.delete(self.external_id_key)

    def _cancel_abandoned_job(self, job_id: str) -> None:
        """
        Cancel a job this task leaves behind for a new one, if it has not ended (a clear does not stop it).

        A task cleared while it was deferred, or cleared after its worker died, leaves its BES job running:
        nothing would read its outputs, and it would spend compute beside the new job.

        :param job_id: The job of before the clear.
        """
        try:
            state = self.hook.get_job(job_id)
        except AzureMLNotFoundError:
            return
        if state.status.is_terminal:
            return
        self.log.warning(
            "Cancelling BES job %s (still %s): the task was cleared, so its new try submits a new job.",
            job_id,
            state.status.value,
        )
        self.hook.cancel_job(job_id)

    def _attempt_outputs(self, context: Context, ttl_seconds: float) -> dict[str, BlobReference]:
        """
        The output references of a new job: in the ``try-<n>`` folder of this attempt.

        A ``wasb_conn_id`` spec is moved before its SAS is minted, so the SAS covers the blob the job really
        writes. A reference given with its own SAS is moved too, unless that SAS covers one blob only.

        :param context: The task's context (its try number names the folder).
        :param ttl_seconds: How long the minted SAS tokens are valid.
        """
        from airflow_provider_amlretrain.blob_references import (
            in_folder,
            is_blob_scoped,
            resolve_blob_spec,
            resolve_blob_specs,
            spec_in_folder,
        )
        from airflow_provider_amlretrain.blob_sas import BlobAccess

        if not self.outputs_per_attempt or not isinstance(self.outputs, Mapping):
            return resolve_blob_specs(self.outputs, BlobAccess.WRITE, ttl_seconds)
        folder = f"try-{context['ti'].try_number}"
        placed = {}
        for port, spec in self.outputs.items():
            name = str(port)
            if isinstance(spec, Mapping) and "wasb_conn_id" in spec:
                placed[name] = resolve_blob_spec(
                    name, spec_in_folder(name, spec, folder), BlobAccess.WRITE, ttl_seconds
                )
                continue
            reference = resolve_blob_spec(name, spec, BlobAccess.WRITE, ttl_seconds)
            if is_blob_scoped(reference):
                self.log.warning(
                    "Output %r has a SAS token for that one blob (sr=b), so the job writes exactly %s and "
                    "overwrites what an earlier job wrote there. Give a container SAS to keep each job's outputs.",
                    name,
                    reference.relative_location,
                )
                placed[name] = reference
            else:
                placed[name] = in_folder(reference, folder)
        return placed

    # -- helpers ----------------------------------------------------------------------------------

    def _remember(self, context: Context, job_id: str) -> None:
        self.job_id = job_id
        ti = context["ti"]
        ti.xcom_push(key="job_id", value=job_id)
        ti.xcom_push(key=AzureMLBatchJobLink().xcom_key, value=self.hook.job_page_url(job_id))

    @staticmethod
    def _store(context: Context, key: str, value: Any) -> None:
        store = context.get("task_state_store")
        if store is not None:
            store.set(key, value)

    @staticmethod
    def _stored(context: Context, key: str) -> Any:
        store = context.get("task_state_store")
        return store.get(key) if store is not None else None

    def _started_at(self, context: Context, job_id: str) -> float | None:
        """When this operator started ``job_id`` (in this or an earlier try), if it did."""
        stored = self._stored(context, self.started_at_key)
        if isinstance(stored, dict) and stored.get("job_id") == job_id:
            return float(stored["started_at"])
        return None

    def _deadline(self, started_at: float | None) -> float | None:
        """When ``job_timeout`` ends, counted from the job's start (or from now, for a job not started by this task)."""
        if self.job_timeout is None:
            return None
        return (started_at or time.time()) + float(self.job_timeout)

    def _cancel_for_timeout(self, job_id: str, state: BatchJobState) -> None:
        self.log.error(
            "BES job %s is still %s after %s s: cancelling it.", job_id, state.status.value, self.job_timeout
        )
        self.hook.cancel_job(job_id)
        raise BatchJobTimeoutError(
            f"BES job {job_id} did not end within job_timeout={self.job_timeout} s and was cancelled. "
            "Raise job_timeout if the service's queue is long.",
            job_id=job_id,
            status=state.status.value,
        )

    def _finish(self, state: BatchJobState, context: Context) -> dict[str, Any]:
        if not state.status.is_success:
            details = state.details or "the service gave no details"
            self.log.error("BES job %s ended %s. Details: %s", state.job_id, state.status.value, details)
            raise BatchJobFailedError(
                f"BES job {state.job_id} ended {state.status.value}: {details}",
                job_id=state.job_id,
                status=state.status.value,
                details=state.details,
            )
        for line in state.output_lines():
            self.log.info(line)
        return state.to_result(self._started_at(context, state.job_id))


def _clear_number(context: Context) -> int:
    """How many times the DAG run was cleared (a retry does not count; ``0`` outside a DAG run)."""
    dag_run = context.get("dag_run")
    return int(getattr(dag_run, "clear_number", None) or 0)
