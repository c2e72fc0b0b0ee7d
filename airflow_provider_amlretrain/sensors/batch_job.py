"""Sensor that waits for a BES job someone else started."""

from __future__ import annotations

import time
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowSensorTimeout, BaseSensorOperator, conf

from airflow_provider_amlretrain.exceptions import AzureMLError, BatchJobFailedError
from airflow_provider_amlretrain.hooks.default_connections import STUDIO_CONN_ID
from airflow_provider_amlretrain.links.batch_job import AzureMLBatchJobLink

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_amlretrain.hooks.studio import AzureMLStudioHook


class AzureMLBatchJobSensor(BaseSensorOperator):
    """
    Wait until a BES job ends; succeed when it finished, fail when it failed or was cancelled.

    Works in ``poke`` and ``reschedule`` mode, or deferred to the triggerer with ``deferrable``.

    :param job_id: The BES job id (templated).
    :param azureml_conn_id: The ``azureml_studio`` connection of the web service that runs the job.
    :param deferrable: Wait in the triggerer (default: ``[operators] default_deferrable``).
    """

    template_fields = ("job_id",)
    operator_extra_links = (AzureMLBatchJobLink(),)
    ui_color = "#d6eaf8"

    def __init__(
        self,
        *,
        job_id: str,
        azureml_conn_id: str = STUDIO_CONN_ID,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.job_id = job_id
        self.azureml_conn_id = azureml_conn_id
        self.deferrable = deferrable

    @cached_property
    def hook(self) -> AzureMLStudioHook:
        """The web service's hook."""
        from airflow_provider_amlretrain.hooks.studio import AzureMLStudioHook

        return AzureMLStudioHook(azureml_conn_id=self.azureml_conn_id)

    def execute(self, context: Context) -> Any:
        """Poke, or defer to the trigger when ``deferrable``."""
        from airflow_provider_amlretrain.triggers.batch_job import AzureMLBatchJobTrigger

        context["ti"].xcom_push(key=AzureMLBatchJobLink().xcom_key, value=self.hook.job_page_url(self.job_id))
        if not self.deferrable:
            return super().execute(context)
        if self.poke(context):
            return None
        deadline = None
        if self.timeout is not None:
            deadline = time.time() + float(self.timeout)
        # Two ends to one wait, both AirflowSensorTimeout as in poke mode: the trigger's deadline (an event
        # handled in execute_complete) and the deferral's own timeout (Airflow fails the task with
        # TaskDeferralTimeout, which the sensor base turns into AirflowSensorTimeout), should the
        # triggerer be down when the deadline passes.
        self.defer(
            trigger=AzureMLBatchJobTrigger(
                azureml_conn_id=self.azureml_conn_id,
                job_id=self.job_id,
                poll_interval=float(self.poke_interval),
                started_at=time.time(),
                deadline=deadline,
                cancel_on_kill=False,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=float(self.timeout)) if self.timeout is not None else None,
        )
        return None

    def poke(self, context: Context) -> bool:
        """Whether the job has finished; raises if it failed or was cancelled."""
        state = self.hook.get_job(self.job_id)
        if state.status.is_terminal and not state.status.is_success:
            raise BatchJobFailedError(
                f"BES job {self.job_id} ended {state.status.value}: {state.details or 'no details'}",
                job_id=self.job_id,
                status=state.status.value,
                details=state.details,
            )
        self.log.info("BES job %s is %s.", self.job_id, state.status.value)
        return state.status.is_success

    def execute_complete(self, context: Context, event: dict[str, Any]) -> None:
        """
        Validate the trigger's event.

        :param context: The task context.
        :param event: The trigger's payload.
        """
        from airflow_provider_amlretrain.api.events import BatchJobEvent, BatchJobOutcome

        job_event = BatchJobEvent.from_payload(event)
        if job_event.outcome is BatchJobOutcome.TIMED_OUT:
            raise AirflowSensorTimeout(
                f"BES job {self.job_id} did not end within the sensor's timeout ({self.timeout} s)."
            )
        if job_event.outcome is BatchJobOutcome.ERROR:
            raise AzureMLError(f"Waiting for BES job {self.job_id} failed: {job_event.message}")
        assert job_event.status is not None
        if not job_event.status.is_success:
            raise BatchJobFailedError(
                f"BES job {self.job_id} ended {job_event.status.value}: {job_event.message or 'no details'}",
                job_id=self.job_id,
                status=job_event.status.value,
                details=job_event.message,
            )
        self.log.info("BES job %s finished.", self.job_id)
