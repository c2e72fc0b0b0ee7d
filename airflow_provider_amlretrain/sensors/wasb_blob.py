"""
Sensor that waits for a blob, like the Azure provider's ``WasbBlobSensor``, without its import cost.

The Azure provider's sensor module imports the storage SDK (``azure.storage.blob``, sync and async) when
a DAG file imports it: about +26 MB and a third more CPU for every parse of every DAG that uses it. This
sensor takes the same arguments and does the same work through the same Azure provider classes
(``WasbHook.check_for_blob`` when it pokes, ``WasbBlobSensorTrigger`` when it defers), imported only
when the task runs.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowException, BaseSensorOperator, conf

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context


class WasbBlobExistsSensor(BaseSensorOperator):
    """
    Wait until a blob exists in Azure Blob Storage.

    A drop-in for ``airflow.providers.microsoft.azure.sensors.wasb.WasbBlobSensor`` (same arguments,
    same behaviour in ``poke``, ``reschedule`` and deferrable mode) whose module imports no storage SDK.

    :param container_name: The container (templated).
    :param blob_name: The blob (templated).
    :param wasb_conn_id: The ``wasb`` connection (templated).
    :param check_options: Keyword arguments for ``WasbHook.check_for_blob``.
    :param public_read: Read anonymously (public container).
    :param deferrable: Wait in the triggerer (default: ``[operators] default_deferrable``).
    """

    template_fields = ("container_name", "blob_name", "wasb_conn_id")

    def __init__(
        self,
        *,
        container_name: str,
        blob_name: str,
        wasb_conn_id: str = "wasb_default",
        check_options: dict[str, Any] | None = None,
        public_read: bool = False,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.container_name = container_name
        self.blob_name = blob_name
        self.wasb_conn_id = wasb_conn_id
        self.check_options = dict(check_options or {})
        self.public_read = public_read
        self.deferrable = deferrable

    def poke(self, context: Context) -> bool:
        """
        Whether the blob exists now.

        :param context: The task context.
        """
        from airflow.providers.microsoft.azure.hooks.wasb import WasbHook

        self.log.info("Poking for blob %s in container %s.", self.blob_name, self.container_name)
        hook = WasbHook(wasb_conn_id=self.wasb_conn_id, public_read=self.public_read)
        return bool(hook.check_for_blob(self.container_name, self.blob_name, **self.check_options))

    def execute(self, context: Context) -> None:
        """
        Wait in the worker, or once poked and missing, in the triggerer.

        :param context: The task context.
        """
        if not self.deferrable:
            super().execute(context=context)
            return
        if self.poke(context):
            return
        from airflow.providers.microsoft.azure.triggers.wasb import WasbBlobSensorTrigger

        self.defer(
            timeout=timedelta(seconds=self.timeout),
            trigger=WasbBlobSensorTrigger(
                container_name=self.container_name,
                blob_name=self.blob_name,
                wasb_conn_id=self.wasb_conn_id,
                public_read=self.public_read,
                poke_interval=self.poke_interval,
            ),
            method_name="execute_complete",
        )

    def execute_complete(self, context: Context, event: dict[str, str] | None) -> None:
        """
        Finish after the trigger's event: succeed when the blob came, fail with its message otherwise.

        :param context: The task context.
        :param event: The trigger's event (``status`` and ``message``).
        """
        if not event:
            raise AirflowException(
                f"The wait for blob {self.blob_name!r} in container {self.container_name!r} ended "
                "without an event from the triggerer; clear the task to wait again."
            )
        if event.get("status") == "error":
            raise AirflowException(event.get("message", "The blob wait failed in the triggerer."))
        self.log.info(event.get("message", "The blob exists."))
