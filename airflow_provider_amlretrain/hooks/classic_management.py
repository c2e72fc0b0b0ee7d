"""Hook for the classic web service management API: endpoints, their trained models, and scoring."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow_provider_amlretrain.api.classic import ClassicEndpoint, ClassicManagementApi
from airflow_provider_amlretrain.api.rrs import ScoringTable, execute_request, parse_execute_answer
from airflow_provider_amlretrain.connection_forms import MANAGEMENT_FORM
from airflow_provider_amlretrain.exceptions import (
    AzureMLConfigError,
    AzureMLNotFoundError,
    AzureMLResponseError,
)
from airflow_provider_amlretrain.hooks.default_connections import CLASSIC_MANAGEMENT_CONN_ID
from airflow_provider_amlretrain.hooks.http_settings import HttpSettings, bearer_headers, http_tuning
from airflow_provider_amlretrain.hooks.sync_client import AzureMLHttpHook

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow_provider_amlretrain.api.references import BlobLocation

DEFAULT_MANAGEMENT_URL = "https://management.azureml.net"


class AzureMLClassicManagementHook(AzureMLHttpHook):
    """
    Manages the endpoints of classic (Studio) web services in one workspace.

    Connection: host = management URL (default ``https://management.azureml.net``; regional hosts
    such as ``europewest.management.azureml.net`` work), password = the workspace token (Studio:
    Settings > Authorization), extra ``workspace_id``; optional ``request_timeout``,
    ``max_retries``, ``retry_backoff``.

    :param azureml_management_conn_id: The ``azureml_classic_management`` connection id.
    """

    conn_name_attr = "azureml_management_conn_id"
    default_conn_name = CLASSIC_MANAGEMENT_CONN_ID
    conn_type = "azureml_classic_management"
    hook_name = "Azure ML Studio (classic) management"

    def __init__(self, azureml_management_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.azureml_management_conn_id = azureml_management_conn_id
        self._scoring_keys: tuple[str, ...] = ()

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Form layout of the connection in the Airflow UI."""
        return MANAGEMENT_FORM

    @cached_property
    def _connection(self) -> tuple[str, str, HttpSettings]:
        conn = self.get_connection(self.azureml_management_conn_id)
        extras = conn.extra_dejson
        conn_id = self.azureml_management_conn_id
        workspace_id = extras.get("workspace_id")
        if not workspace_id:
            raise AzureMLConfigError(
                f"Connection {conn_id!r} has no 'workspace_id' extra: add the workspace id."
            )
        if not conn.password:
            raise AzureMLConfigError(f"Connection {conn_id!r} has no workspace token in its password field.")
        host = conn.host or DEFAULT_MANAGEMENT_URL
        url = host if "://" in host else f"https://{host}"
        timeout, policy = http_tuning(conn_id, extras)
        settings = HttpSettings(bearer_headers(conn.password), timeout, policy, (conn.password,))
        return url, str(workspace_id), settings

    def http_settings(self) -> HttpSettings:
        """Workspace-token auth for every management call."""
        return self._connection[2]

    @property
    def api(self) -> ClassicManagementApi:
        """Request builder for this workspace."""
        url, workspace_id, _ = self._connection
        return ClassicManagementApi(url, workspace_id)

    def get_web_service(self, web_service_id: str) -> dict[str, Any]:
        """
        The ``WebService`` object (``Id``, ``Name``, ``DefaultEndpointName``...).

        :param web_service_id: The web service id.
        """
        return dict(self.call(self.api.get_web_service(web_service_id)) or {})

    def list_web_services(self) -> list[dict[str, Any]]:
        """Every web service of the workspace."""
        return list(self.call(self.api.list_web_services()) or [])

    def list_endpoints(self, web_service_id: str) -> list[ClassicEndpoint]:
        """
        The endpoints of a web service.

        :param web_service_id: The web service id.
        """
        return [ClassicEndpoint.from_api(e) for e in self.call(self.api.list_endpoints(web_service_id)) or []]

    def get_endpoint(self, web_service_id: str, name: str) -> ClassicEndpoint:
        """
        One endpoint.

        :param web_service_id: The web service id.
        :param name: The endpoint name.
        """
        return ClassicEndpoint.from_api(self.call(self.api.get_endpoint(web_service_id, name)))

    def find_endpoint(self, web_service_id: str, name: str) -> ClassicEndpoint | None:
        """
        One endpoint, or ``None`` if it does not exist.

        :param web_service_id: The web service id.
        :param name: The endpoint name.
        """
        try:
            return self.get_endpoint(web_service_id, name)
        except AzureMLNotFoundError as err:
            if (
                err.error_code
                and "service" in err.error_code.lower()
                and "endpoint" not in err.error_code.lower()
            ):
                raise
            return None

    def create_endpoint(
        self,
        web_service_id: str,
        name: str,
        *,
        description: str = "",
        throttle_level: str = "High",
        max_concurrent_calls: int = 20,
    ) -> ClassicEndpoint:
        """
        Create an endpoint (PUT) and return it as the service reports it.

        :param web_service_id: The web service id.
        :param name: The endpoint name.
        :param description: Free text.
        :param throttle_level: ``Low`` or ``High``.
        :param max_concurrent_calls: 1..200.
        """
        self.call_raw(
            self.api.create_endpoint(
                web_service_id,
                name,
                description=description,
                throttle_level=throttle_level,
                max_concurrent_calls=max_concurrent_calls,
            )
        )
        return self.get_endpoint(web_service_id, name)

    def patch_trained_model(
        self, web_service_id: str, name: str, resource_name: str, location: BlobLocation
    ) -> None:
        """
        Point an endpoint's trained-model resource at a new ``.ilearner``.

        :param web_service_id: The web service id.
        :param name: The endpoint name.
        :param resource_name: The resource's name (from the endpoint's ``Resources``).
        :param location: The new model with a readable SAS.
        """
        self.call_raw(self.api.patch_trained_model(web_service_id, name, resource_name, location))

    def delete_endpoint(self, web_service_id: str, name: str) -> None:
        """
        Delete an endpoint.

        :param web_service_id: The web service id.
        :param name: The endpoint name.
        """
        self.call_raw(self.api.delete_endpoint(web_service_id, name))

    def score(
        self,
        endpoint: ClassicEndpoint,
        *,
        input_name: str,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
    ) -> ScoringTable:
        """
        Score rows through the endpoint's RRS with the endpoint's own key.

        :param endpoint: The endpoint (as read from the management API, with its key).
        :param input_name: The input port.
        :param columns: Column names.
        :param rows: Rows.
        """
        if not endpoint.primary_key:
            raise AzureMLConfigError(
                f"The management API did not return a key for endpoint {endpoint.name!r}."
            )
        if not endpoint.api_location.startswith(("https://", "http://")):
            raise AzureMLResponseError(
                f"The management API returned endpoint {endpoint.name!r} without an ApiLocation URL "
                f"({endpoint.api_location or 'empty'!r}), so it cannot be scored; a new endpoint may still be "
                "provisioning: retry in a minute."
            )
        request = execute_request(endpoint.api_location, input_name=input_name, columns=columns, rows=rows)
        return parse_execute_answer(self.call(request, self.with_key(endpoint.primary_key)))
