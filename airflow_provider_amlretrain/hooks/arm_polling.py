"""azure-mgmt-core's ``ARMPolling`` for a web service update, with the ML spec's status field and a deadline."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from azure.core.polling.base_polling import BadResponse, LocationPolling, StatusCheckPolling
from azure.mgmt.core.polling.arm_polling import ARMPolling, AzureAsyncOperationPolling, BodyContentPolling

from airflow_provider_amlretrain.api.http import ApiRequest
from airflow_provider_amlretrain.exceptions import ProvisioningDeadlinePassed
from airflow_provider_amlretrain.hooks.retry import CALL_OPTION, CallRecord

if TYPE_CHECKING:
    from collections.abc import Callable


class MLAsyncOperationPolling(AzureAsyncOperationPolling):
    """
    ``Azure-AsyncOperation`` polling that also reads the ML ``AsyncOperationStatus`` field: the
    webServices spec names it ``provisioningState`` where generic ARM says ``status``.
    """

    def get_status(self, pipeline_response: Any) -> str:
        """The operation's status (``status``, else ``provisioningState``)."""
        response = pipeline_response.http_response
        try:
            body = json.loads(response.text()) if response.text().strip() else None
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise BadResponse("The operation status is not a JSON object.")
        status = body.get("status") or body.get("provisioningState")
        if not status:
            raise BadResponse("No status found in body")
        return str(status)


class WebServiceUpdatePolling(ARMPolling):
    """
    Waits for a web service PATCH: ``Azure-AsyncOperation`` when the answer has one, else the
    definition's ``properties.provisioningState``; gives up at a deadline.

    :param poll_interval: Seconds between polls (a ``Retry-After`` of the service wins, cut to the deadline).
    :param timeout: Seconds from now after which the wait ends with :class:`ProvisioningDeadlinePassed`.
    :param sleep: How to wait (the hook's seam; tests make it record instead).
    """

    def __init__(self, *, poll_interval: float, timeout: float, sleep: Callable[[float], Any]) -> None:
        super().__init__(
            timeout=poll_interval,
            lro_algorithms=[
                MLAsyncOperationPolling(),
                LocationPolling(),
                BodyContentPolling(),
                StatusCheckPolling(),
            ],
        )
        self._deadline = time.monotonic() + timeout
        self._sleep_function = sleep
        self.last_call: CallRecord | None = None

    def _delay(self) -> None:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise ProvisioningDeadlinePassed(self.status())
        self._sleep_function(min(self._extract_delay(), remaining))

    def request_status(self, status_link: str) -> Any:
        """GET the status link, as a named call (for retry logs and messages)."""
        self.last_call = CallRecord(ApiRequest("GET", status_link, operation="poll a web service update"))
        self._operation_config[CALL_OPTION] = self.last_call
        return super().request_status(status_link)
