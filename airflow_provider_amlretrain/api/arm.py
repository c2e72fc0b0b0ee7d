"""New (Azure Resource Manager) web services: ``Microsoft.MachineLearning/webServices`` requests."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from airflow_provider_amlretrain.api.http import ApiRequest, answer_shape
from airflow_provider_amlretrain.api.states import ProvisioningStatus
from airflow_provider_amlretrain.exceptions import AzureMLResponseError

ARM_API_VERSION = "2017-01-01"
ARM_SCOPE = "https://management.azure.com/.default"


class WebServicesApi:
    """
    Builds requests for the web services of one resource group.

    :param arm_url: ``https://management.azure.com`` (or a sovereign cloud / emulator).
    :param subscription_id: The subscription.
    :param resource_group: The resource group.
    """

    def __init__(self, arm_url: str, subscription_id: str, resource_group: str) -> None:
        self.base = (
            f"{arm_url.rstrip('/')}/subscriptions/{quote(subscription_id, safe='')}/resourceGroups/"
            f"{quote(resource_group, safe='')}/providers/Microsoft.MachineLearning/webServices"
        )

    def _url(self, name: str, suffix: str = "") -> str:
        return f"{self.base}/{quote(name, safe='')}{suffix}?api-version={ARM_API_VERSION}"

    def get(self, name: str) -> ApiRequest:
        """``GET`` the definition (without keys)."""
        return ApiRequest("GET", self._url(name), operation=f"get web service {name}")

    def patch(self, name: str, definition: dict[str, Any]) -> ApiRequest:
        """``PATCH`` the definition (long-running)."""
        body = {k: definition[k] for k in ("location", "tags", "properties") if k in definition}
        return ApiRequest(
            "PATCH",
            self._url(name),
            json_body=body,
            expected=(200, 201, 202),
            operation=f"update web service {name}",
        )

    def list_keys(self, name: str) -> ApiRequest:
        """``GET .../listKeys``."""
        return ApiRequest("GET", self._url(name, "/listKeys"), operation=f"list keys of web service {name}")

    @staticmethod
    def poll(url: str) -> ApiRequest:
        """``GET`` an ``Azure-AsyncOperation`` URL."""
        return ApiRequest("GET", url, operation="poll a web service update")


def provisioning_state(definition: Any) -> ProvisioningStatus:
    """
    The state of a definition's last update (``properties.provisioningState``).

    A definition without the property has no update in progress: ARM's rule for resources that do
    not report one is that the update ended when the request was answered.

    :param definition: A web service definition.
    """
    if not isinstance(definition, dict):
        raise AzureMLResponseError(
            f"ARM answered a web service that is not an object but {answer_shape(definition)}."
        )
    properties = definition.get("properties") or {}
    state = properties.get("provisioningState") if isinstance(properties, dict) else None
    return ProvisioningStatus.SUCCEEDED if state is None else ProvisioningStatus.parse(state)


def operation_status(body: Any) -> tuple[ProvisioningStatus, str, str | None]:
    """
    The status of an async operation: parsed, as the service named it, and its error message.

    :param body: The ``Azure-AsyncOperation`` answer.
    """
    if not isinstance(body, dict):
        raise AzureMLResponseError(
            f"ARM answered an operation status that is not an object but {answer_shape(body)}."
        )
    raw = body.get("status") or body.get("provisioningState")
    if not raw:
        raise AzureMLResponseError(f"ARM answered an operation status without status: {answer_shape(body)}.")
    error = body.get("errorInfo") or body.get("error") or {}
    message = error.get("message") if isinstance(error, dict) else None
    return ProvisioningStatus.parse(raw), str(raw), message if isinstance(message, str) else None
