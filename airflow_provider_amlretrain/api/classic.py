"""The classic web service management API (``management.azureml.net``): requests and objects."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from airflow_provider_amlretrain.api.http import ApiRequest, answer_shape
from airflow_provider_amlretrain.api.references import BlobLocation
from airflow_provider_amlretrain.exceptions import AzureMLConfigError, AzureMLResponseError

ENDPOINT_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,22}[a-z0-9])?$")
THROTTLE_LEVELS = ("Low", "High")


def check_endpoint_name(name: str) -> str:
    """
    Check an endpoint name: at most 24 lowercase letters, digits and inner hyphens.

    :param name: The name.
    """
    if not isinstance(name, str) or not ENDPOINT_NAME.fullmatch(name):
        raise AzureMLConfigError(
            f"Endpoint name {name!r} is not valid: use at most 24 lowercase letters, digits and hyphens, "
            "not starting or ending with a hyphen."
        )
    return name


@dataclass(frozen=True)
class EndpointResource:
    """
    An updatable resource (trained model) of an endpoint.

    :param name: E.g. ``Census Model [trained model]``.
    :param kind: ``TrainedModel``.
    :param location: Where the model is now.
    """

    name: str
    kind: str
    location: BlobLocation | None


@dataclass(frozen=True)
class ClassicEndpoint:
    """
    A classic web service endpoint.

    :param name: Endpoint name.
    :param web_service_id: Its web service.
    :param workspace_id: Its workspace.
    :param api_location: Its execution URL (RRS/BES base).
    :param resources: Its updatable resources.
    :param primary_key: Its key (secret).
    :param version: The ``Version`` timestamp.
    """

    name: str
    web_service_id: str
    workspace_id: str
    api_location: str
    resources: tuple[EndpointResource, ...]
    primary_key: str | None = field(default=None, repr=False)
    version: str | None = None

    @classmethod
    def from_api(cls, data: Any) -> ClassicEndpoint:
        """
        Parse an ``Endpoint`` object.

        :param data: The decoded answer.
        """
        if not isinstance(data, dict) or not data.get("Name"):
            raise AzureMLResponseError(
                f"The management API answered an endpoint without a Name ({answer_shape(data)}); check that the "
                "connection's host is the management API (https://management.azureml.net or its region)."
            )
        resources = []
        raw_resources = data.get("Resources") or []
        if not isinstance(raw_resources, list) or not all(isinstance(item, dict) for item in raw_resources):
            raise AzureMLResponseError(
                f"The management API answered endpoint {data['Name']!r} with Resources that are not a list of objects."
            )
        for item in raw_resources:
            location = item.get("Location")
            parsed = None
            if isinstance(location, dict) and location.get("RelativeLocation"):
                parsed = BlobLocation(
                    base_location=str(location.get("BaseLocation") or ""),
                    relative_location=str(location["RelativeLocation"]),
                    sas_token=location.get("SasBlobToken"),
                )
            resources.append(
                EndpointResource(
                    name=str(item.get("Name")), kind=str(item.get("Kind", "TrainedModel")), location=parsed
                )
            )
        return cls(
            name=str(data["Name"]),
            web_service_id=str(data.get("WebServiceId", "")),
            workspace_id=str(data.get("WorkspaceId", "")),
            api_location=str(data.get("ApiLocation", "")),
            resources=tuple(resources),
            primary_key=data.get("PrimaryKey"),
            version=data.get("Version"),
        )

    def trained_model(self, resource_name: str | None) -> EndpointResource:
        """
        The resource to patch: the one named, or the only ``TrainedModel``.

        :param resource_name: The resource name, if known.
        """
        models = [r for r in self.resources if r.kind == "TrainedModel"]
        if not models:
            raise AzureMLConfigError(
                f"Endpoint {self.name!r} has no updatable trained-model resources: it belongs to the training "
                "web service, or to a web service without a trained model. Create the endpoint on the "
                "*predictive* web service and patch that one."
            )
        if resource_name is None:
            if len(models) > 1:
                raise AzureMLConfigError(
                    f"Endpoint {self.name!r} has several trained models ({', '.join(r.name for r in models)}): "
                    "name the one to replace with resource_name."
                )
            return models[0]
        for resource in models:
            if resource.name == resource_name:
                return resource
        raise AzureMLConfigError(
            f"Endpoint {self.name!r} has no resource named {resource_name!r}; its trained models are: "
            f"{', '.join(repr(r.name) for r in models)}."
        )


class ClassicManagementApi:
    """
    Builds requests for the classic management API of one workspace.

    :param management_url: ``https://management.azureml.net`` or a regional/emulated host.
    :param workspace_id: The workspace id.
    """

    def __init__(self, management_url: str, workspace_id: str) -> None:
        self.base = f"{management_url.rstrip('/')}/workspaces/{quote(workspace_id, safe='')}"

    def _service(self, web_service_id: str) -> str:
        return f"{self.base}/webservices/{quote(web_service_id, safe='')}"

    def _endpoint(self, web_service_id: str, name: str) -> str:
        return f"{self._service(web_service_id)}/endpoints/{quote(check_endpoint_name(name), safe='')}"

    def list_web_services(self) -> ApiRequest:
        """``GET /workspaces/{ws}/webservices``."""
        return ApiRequest(
            "GET", f"{self.base}/webservices", expected=(200, 204), operation="list web services"
        )

    def get_web_service(self, web_service_id: str) -> ApiRequest:
        """``GET .../webservices/{id}``."""
        return ApiRequest("GET", self._service(web_service_id), operation=f"get web service {web_service_id}")

    def list_endpoints(self, web_service_id: str) -> ApiRequest:
        """``GET .../endpoints``."""
        return ApiRequest(
            "GET",
            f"{self._service(web_service_id)}/endpoints",
            expected=(200, 204),
            operation=f"list endpoints of {web_service_id}",
        )

    def get_endpoint(self, web_service_id: str, name: str) -> ApiRequest:
        """``GET .../endpoints/{name}``."""
        return ApiRequest("GET", self._endpoint(web_service_id, name), operation=f"get endpoint {name}")

    def create_endpoint(
        self,
        web_service_id: str,
        name: str,
        *,
        description: str,
        throttle_level: str,
        max_concurrent_calls: int,
    ) -> ApiRequest:
        """``PUT .../endpoints/{name}``."""
        if throttle_level not in THROTTLE_LEVELS:
            raise AzureMLConfigError(
                f"throttle_level must be one of {THROTTLE_LEVELS}, not {throttle_level!r}."
            )
        if not 1 <= int(max_concurrent_calls) <= 200:
            raise AzureMLConfigError(f"max_concurrent_calls must be 1..200, not {max_concurrent_calls}.")
        body = {
            "Description": description,
            "ThrottleLevel": throttle_level,
            "MaxConcurrentCalls": int(max_concurrent_calls),
        }
        return ApiRequest(
            "PUT",
            self._endpoint(web_service_id, name),
            json_body=body,
            expected=(200, 201, 202, 204),
            operation=f"create endpoint {name}",
        )

    def patch_trained_model(
        self, web_service_id: str, name: str, resource_name: str, location: BlobLocation
    ) -> ApiRequest:
        """``PATCH .../endpoints/{name}`` with a new location for one trained-model resource."""
        if not location.relative_location.endswith(".ilearner"):
            raise AzureMLConfigError(f"The model {location.uri} is not an .ilearner blob.")
        body = {
            "Resources": [
                {
                    "Name": resource_name,
                    "Location": {
                        "BaseLocation": location.base_location,
                        "RelativeLocation": location.relative_location,
                        "SasBlobToken": location.sas_token or "",
                    },
                }
            ]
        }
        return ApiRequest(
            "PATCH",
            self._endpoint(web_service_id, name),
            json_body=body,
            expected=(200, 202, 204),
            operation=f"update the model of endpoint {name}",
        )

    def delete_endpoint(self, web_service_id: str, name: str) -> ApiRequest:
        """``DELETE .../endpoints/{name}``."""
        return ApiRequest(
            "DELETE",
            self._endpoint(web_service_id, name),
            expected=(200, 202, 204),
            operation=f"delete endpoint {name}",
        )
