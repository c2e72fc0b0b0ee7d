"""Operator that puts a retrained model behind a classic web service endpoint (PATCH its trained model)."""

from __future__ import annotations

import math
import time
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow_provider_amlretrain.exceptions import AzureMLApiError, AzureMLConfigError
from airflow_provider_amlretrain.hooks.default_connections import CLASSIC_MANAGEMENT_CONN_ID
from airflow_provider_amlretrain.operators.promotion_base import BaseModelPromotionOperator, Deployment

if TYPE_CHECKING:
    from airflow_provider_amlretrain.api.classic import ClassicEndpoint
    from airflow_provider_amlretrain.api.references import BlobLocation
    from airflow_provider_amlretrain.api.rrs import ScoringTable
    from airflow_provider_amlretrain.hooks.classic_management import AzureMLClassicManagementHook
    from airflow_provider_amlretrain.promotion.smoke_test import SmokeSample


class AzureMLUpdateEndpointModelOperator(BaseModelPromotionOperator):
    """
    Promote a retrained model to a non-default endpoint of a classic *predictive* web service.

    Creates the endpoint if it does not exist (idempotent), finds its trained-model resource
    (or uses ``resource_name``), PATCHes it with the new model's location and a fresh SAS, confirms
    by GET, then smoke-tests through the endpoint's RRS; a failed smoke test restores the previous
    model. See :class:`BaseModelPromotionOperator` for the record, race and staleness rules.

    :param azureml_management_conn_id: The ``azureml_classic_management`` connection.
    :param web_service_id: The predictive web service's id.
    :param endpoint_name: The endpoint to update (never the default one).
    :param resource_name: The trained-model resource, when the endpoint has several.
    :param create_endpoint: Create the endpoint when it does not exist.
    :param endpoint_description: Description of a created endpoint.
    :param throttle_level: ``Low`` or ``High`` for a created endpoint.
    :param max_concurrent_calls: Concurrency of a created endpoint.
    :param wait_after_update: Seconds to wait after the PATCH before smoke-testing: a classic endpoint
        serves the new model only after about 30 s, and scoring earlier would test the old one
        (templated; the local stack's emulator serves at once, ``amlretrain_wait_after_update`` = 0).
    """

    template_fields = (
        *BaseModelPromotionOperator.template_fields,
        "web_service_id",
        "endpoint_name",
        "resource_name",
        "wait_after_update",
    )

    def __init__(
        self,
        *,
        web_service_id: str,
        endpoint_name: str,
        azureml_management_conn_id: str = CLASSIC_MANAGEMENT_CONN_ID,
        resource_name: str | None = None,
        create_endpoint: bool = True,
        endpoint_description: str = "Retrained by Airflow (airflow-provider-amlretrain)",
        throttle_level: str = "High",
        max_concurrent_calls: int = 20,
        wait_after_update: float | str = 30.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.azureml_management_conn_id = azureml_management_conn_id
        self.web_service_id = web_service_id
        self.endpoint_name = endpoint_name
        self.resource_name = resource_name
        self.create_endpoint = create_endpoint
        self.endpoint_description = endpoint_description
        self.throttle_level = throttle_level
        self.max_concurrent_calls = max_concurrent_calls
        self.wait_after_update = wait_after_update

    @cached_property
    def hook(self) -> AzureMLClassicManagementHook:
        """The workspace's management hook."""
        from airflow_provider_amlretrain.hooks.classic_management import AzureMLClassicManagementHook

        return AzureMLClassicManagementHook(self.azureml_management_conn_id)

    def _target_endpoint(self) -> ClassicEndpoint:
        from airflow_provider_amlretrain.api.classic import check_endpoint_name

        check_endpoint_name(self.endpoint_name)
        service = self.hook.get_web_service(self.web_service_id)
        default_name = service.get("DefaultEndpointName")
        if default_name and default_name == self.endpoint_name:
            raise AzureMLConfigError(
                f"{self.endpoint_name!r} is the default endpoint of web service {self.web_service_id}, which "
                "cannot be patched. Give a non-default endpoint_name (it is created if it does not exist)."
            )
        endpoint = self.hook.find_endpoint(self.web_service_id, self.endpoint_name)
        if endpoint is None:
            if default_name:
                # Refuse a training (or model-less) web service before creating anything on it.
                self.hook.get_endpoint(self.web_service_id, default_name).trained_model(self.resource_name)
            if not self.create_endpoint:
                raise AzureMLConfigError(
                    f"Web service {self.web_service_id} has no endpoint {self.endpoint_name!r}; create it or set create_endpoint=True."
                )
            self.log.info("Creating endpoint %s on web service %s.", self.endpoint_name, self.web_service_id)
            endpoint = self.hook.create_endpoint(
                self.web_service_id,
                self.endpoint_name,
                description=self.endpoint_description,
                throttle_level=self.throttle_level,
                max_concurrent_calls=self.max_concurrent_calls,
            )
        return endpoint

    def _patch_and_confirm(self, resource_name: str, location: BlobLocation) -> ClassicEndpoint:
        self.hook.patch_trained_model(self.web_service_id, self.endpoint_name, resource_name, location)
        return self._confirm(resource_name, location)

    def _confirm(self, resource_name: str, location: BlobLocation) -> ClassicEndpoint:
        endpoint = self.hook.get_endpoint(self.web_service_id, self.endpoint_name)
        now = endpoint.trained_model(resource_name).location
        if now is None or now.relative_location != location.relative_location:
            raise AzureMLApiError(
                f"Endpoint {self.endpoint_name!r} accepted the update but still reports "
                f"{now.uri if now else 'no location'} for {resource_name!r}, not {location.uri}."
            )
        return endpoint

    def check_arguments(self) -> None:
        """Also refuse a ``wait_after_update`` that is not a number of seconds."""
        super().check_arguments()
        self._wait_seconds()

    def update_wait_seconds(self) -> float:
        """An update (and its rollback) waits ``wait_after_update`` for the endpoint to serve it."""
        return self._wait_seconds()

    def prepare(self, model: BlobLocation) -> Deployment:
        """Find (or create) the endpoint and its trained-model resource; remember the current location."""
        endpoint = self._target_endpoint()
        resource = endpoint.trained_model(self.resource_name)
        previous = resource.location
        return Deployment(
            previous_model_uri=previous.uri if previous else None,
            undo=(resource.name, previous),
            details={
                "web_service_id": self.web_service_id,
                "endpoint": self.endpoint_name,
                "resource_name": resource.name,
            },
        )

    def apply(self, model: BlobLocation, deployment: Deployment) -> None:
        """PATCH the endpoint's trained model, confirm by GET, wait until it serves it."""
        resource_name = deployment.details["resource_name"]
        self.log.info("Updating %r of endpoint %s to %s.", resource_name, self.endpoint_name, model.uri)
        self._patch_and_confirm(resource_name, model)
        self._wait_until_served()

    def _wait_seconds(self) -> float:
        try:
            seconds = float(self.wait_after_update)
        except (TypeError, ValueError):
            seconds = math.nan
        if not math.isfinite(seconds) or seconds < 0:
            raise AzureMLConfigError(
                f"wait_after_update must be a number of seconds >= 0, not {self.wait_after_update!r}."
            )
        return seconds

    def _wait_until_served(self) -> None:
        seconds = self._wait_seconds()
        if seconds > 0:
            self.log.info(
                "Waiting %.0f s for endpoint %s to serve the new model.", seconds, self.endpoint_name
            )
            time.sleep(seconds)

    def rollback(self, deployment: Deployment, model: BlobLocation) -> bool:
        """PATCH the previous location back (with the SAS the endpoint reported), if the endpoint has ``model``."""
        resource_name, previous = deployment.undo
        now = (
            self.hook.get_endpoint(self.web_service_id, self.endpoint_name)
            .trained_model(resource_name)
            .location
        )
        if now is None or now.relative_location != model.relative_location:
            return False
        if previous is None:
            raise AzureMLConfigError(
                f"Endpoint {self.endpoint_name!r} reported no previous model location to restore."
            )
        self._patch_and_confirm(resource_name, previous)
        self._wait_until_served()
        self.log.info("Endpoint %s is back on %s.", self.endpoint_name, previous.uri)
        return True

    def score(self, sample: SmokeSample) -> ScoringTable:
        """Score through the endpoint's RRS with its own key."""
        endpoint = self.hook.get_endpoint(self.web_service_id, self.endpoint_name)
        return self.hook.score(
            endpoint, input_name=self.smoke_test_input_name, columns=sample.columns, rows=sample.rows
        )
