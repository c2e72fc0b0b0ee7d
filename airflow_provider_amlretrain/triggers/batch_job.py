"""Trigger that waits for a BES job in the triggerer."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TaskSuccessEvent, TriggerEvent

from airflow_provider_amlretrain.api.events import BatchJobEvent, BatchJobOutcome
from airflow_provider_amlretrain.api.polling import JobPollingRules, PollDecision, StatusLogThrottle
from airflow_provider_amlretrain.exceptions import AzureMLError
from airflow_provider_amlretrain.hooks.studio import AzureMLStudioAsyncHook
from airflow_provider_amlretrain.redaction import redact

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from airflow_provider_amlretrain.api.bes import BatchJobState


class AzureMLBatchJobTrigger(BaseTrigger):
    """
    Poll a BES job until it ends or ``deadline`` passes, then yield one :class:`BatchJobEvent`.

    With ``end_from_trigger``, a job that finished yields a ``TaskSuccessEvent`` instead: the task ends in
    the triggerer, with the BES operator's result (``BatchJobState.to_result``) stored as its
    ``return_value``.

    :param azureml_conn_id: The ``azureml_studio`` connection id.
    :param job_id: The BES job id.
    :param poll_interval: Seconds before the first status reads (the policy's shortest wait).
    :param deadline: Absolute UNIX time after which the wait ends as timed out, or ``None``.
    :param max_poll_interval: The longest wait between two reads (``None``: the policy's default).
    :param started_at: UNIX time the job started, which the waits grow from (``None``: the trigger's start).
    :param cancel_on_kill: Cancel the job when a user kills the deferred task.
    :param end_from_trigger: End the task here when the job finished (every other ending resumes the task).
    """

    def __init__(
        self,
        *,
        azureml_conn_id: str,
        job_id: str,
        poll_interval: float = 15.0,
        deadline: float | None = None,
        cancel_on_kill: bool = True,
        max_poll_interval: float | None = None,
        started_at: float | None = None,
        end_from_trigger: bool = False,
    ) -> None:
        super().__init__()
        self.azureml_conn_id = azureml_conn_id
        self.job_id = job_id
        self.poll_interval = float(poll_interval)
        self.deadline = float(deadline) if deadline is not None else None
        self.cancel_on_kill = cancel_on_kill
        self.max_poll_interval = float(max_poll_interval) if max_poll_interval is not None else None
        self.started_at = float(started_at) if started_at is not None else None
        self.end_from_trigger = end_from_trigger

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Class path and plain-data arguments."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "azureml_conn_id": self.azureml_conn_id,
                "job_id": self.job_id,
                "poll_interval": self.poll_interval,
                "deadline": self.deadline,
                "cancel_on_kill": self.cancel_on_kill,
                "max_poll_interval": self.max_poll_interval,
                "started_at": self.started_at,
                "end_from_trigger": self.end_from_trigger,
            },
        )

    def _hook(self) -> AzureMLStudioAsyncHook:
        return AzureMLStudioAsyncHook(azureml_conn_id=self.azureml_conn_id)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll without blocking the event loop; yield exactly one event."""
        hook = self._hook()
        rules = JobPollingRules(
            poll_interval=self.poll_interval,
            deadline=self.deadline,
            max_poll_interval=self.max_poll_interval,
            started_at=self.started_at,
        ).started()
        try:
            # One client per event loop and connection, shared with every other trigger polling it;
            # released (and closed by the last user) however this wait ends.
            async with hook.ashared_client():
                event, state = await self._wait(hook, rules)
        except AzureMLError as err:
            event, state = BatchJobEvent(self.job_id, BatchJobOutcome.ERROR, None, redact(str(err))), None
        if self.end_from_trigger and state is not None and state.status.is_success:
            if await self._store_result(state):
                yield TaskSuccessEvent()
                return
        yield TriggerEvent(event.to_payload())

    async def _store_result(self, state: BatchJobState) -> bool:
        """
        Store the BES operator's result as the task's ``return_value`` XCom, as its worker would.

        Through the task SDK's XCom (and a configured XCom backend), not ``TaskSuccessEvent(xcoms=...)``: in
        Airflow 3.3 the scheduler stores those as JSON *text*, so a downstream task would read a string.

        :param state: The finished job.
        :return: Whether it was stored; if not (no task instance, as in ``dag.test()``'s inline triggers, or
            the store failed), the task resumes on a worker, which stores it.
        """
        ti = getattr(self, "task_instance", None)
        if ti is None:
            return False
        # The task runner's own XCom class: it honours a configured [core] xcom_backend.
        from airflow.sdk.execution_time.xcom import XCom

        try:
            await XCom.aset(
                key="return_value",
                value=state.to_result(self.started_at),
                dag_id=ti.dag_id,
                task_id=ti.task_id,
                run_id=ti.run_id,
                map_index=ti.map_index,
            )
        except Exception as err:
            self.log.warning(
                "Could not store the result of BES job %s from the triggerer (%s); the task resumes on a "
                "worker to store it.",
                self.job_id,
                redact(str(err)),
            )
            return False
        for line in state.output_lines():
            self.log.info(line)
        return True

    async def _wait(
        self, hook: AzureMLStudioAsyncHook, rules: JobPollingRules
    ) -> tuple[BatchJobEvent, BatchJobState]:
        """Poll until the job ends or the deadline passes: the event to send and the last state read."""
        status_lines = StatusLogThrottle()
        while True:
            state = await hook.aget_job(self.job_id)
            decision = rules.decide(state.status)
            if decision is PollDecision.DONE:
                return BatchJobEvent(self.job_id, BatchJobOutcome.ENDED, state.status, state.details), state
            if decision is PollDecision.TIMED_OUT:
                timed_out = BatchJobEvent(
                    self.job_id,
                    BatchJobOutcome.TIMED_OUT,
                    state.status,
                    "The job did not end before its deadline.",
                )
                return timed_out, state
            rules = rules.observed(state.status)
            if status_lines.should_log(state.status):
                self.log.info("BES job %s is %s.", self.job_id, state.status.value)
            await hook._asleep(rules.sleep_seconds(retry_after=state.retry_after))

    async def on_kill(self) -> None:
        """Cancel the job when a user kills the deferred task (mark failed / clear)."""
        if not self.cancel_on_kill:
            return
        self.log.info("Task killed while deferred: cancelling BES job %s.", self.job_id)
        await self._hook().acancel_job(self.job_id)
