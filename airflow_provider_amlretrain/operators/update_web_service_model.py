"""Operator that puts a retrained model behind a new (ARM) web service with a JSON Patch."""

from __future__ import annotations

import json
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow_provider_amlretrain.exceptions import AzureMLApiError
from airflow_provider_amlretrain.hooks.default_connections import ARM_CONN_ID
from airflow_provider_amlretrain.operators.promotion_base import BaseModelPromotionOperator, Deployment
from airflow_provider_amlretrain.promotion.web_service_patch import (
    apply_patch,
    build_model_patch,
    find_trained_model_asset,
    inverse_model_patch,
)
from airflow_provider_amlretrain.redaction import redact, strip_query

if TYPE_CHECKING:
    from airflow_provider_amlretrain.api.references import BlobLocation
    from airflow_provider_amlretrain.api.rrs import ScoringTable
    from airflow_provider_amlretrain.hooks.web_services import AzureMLWebServicesHook
    from airflow_provider_amlretrain.promotion.smoke_test import SmokeSample


class AzureMLUpdateWebServiceModelOperator(BaseModelPromotionOperator):
    """
    Promote a retrained model to a new-style (Azure Resource Manager) web service.

    GETs the definition, finds the trained-model asset (``asset_key``, ``asset_name``, or the one
    ``Resource`` asset with an ``.ilearner`` location), builds a JSON Patch (``test`` the old URI,
    ``replace`` it with the new), applies it, PATCHes the service and waits for provisioning, then
    smoke-tests through RRS. A failed smoke test applies the inverse patch. The applied patch is
    logged and returned. See :class:`BaseModelPromotionOperator` for the record rules.

    :param web_service_name: The web service's resource name.
    :param azureml_arm_conn_id: The ``azureml_web_services`` connection.
    :param asset_key: The asset's key in ``properties.assets``.
    :param asset_name: The asset's name.
    :param provisioning_timeout: Seconds to wait for each update to provision.
    :param poll_interval: Seconds between provisioning polls.
    """

    template_fields = (
        *BaseModelPromotionOperator.template_fields,
        "web_service_name",
        "asset_key",
        "asset_name",
    )

    def __init__(
        self,
        *,
        web_service_name: str,
        azureml_arm_conn_id: str = ARM_CONN_ID,
        asset_key: str | None = None,
        asset_name: str | None = None,
        provisioning_timeout: float = 600.0,
        poll_interval: float = 2.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.web_service_name = web_service_name
        self.azureml_arm_conn_id = azureml_arm_conn_id
        self.asset_key = asset_key
        self.asset_name = asset_name
        self.provisioning_timeout = provisioning_timeout
        self.poll_interval = poll_interval

    def update_wait_seconds(self) -> float:
        """An update (and its rollback) waits up to ``provisioning_timeout`` to provision."""
        return float(self.provisioning_timeout)

    @cached_property
    def hook(self) -> AzureMLWebServicesHook:
        """The ARM web services hook."""
        from airflow_provider_amlretrain.hooks.web_services import AzureMLWebServicesHook

        return AzureMLWebServicesHook(self.azureml_arm_conn_id)

    def _apply(
        self,
        patch: list[dict[str, Any]],
        asset_key: str,
        what: str,
        definition: dict[str, Any] | None = None,
    ) -> str:
        """Apply ``patch`` to the current definition, PATCH it, wait; return the URI the service reports now."""
        if definition is None:
            # Read again on purpose: the patch was built from an earlier read, so its ``test`` op fails
            # here, before anything is sent, if someone changed the model in between.
            definition = self.hook.get_web_service(self.web_service_name)
        self.log.info(
            "Applying JSON Patch (%s) to %s: %s", what, self.web_service_name, json.dumps(_loggable(patch))
        )
        updated = self.hook.update_web_service(
            self.web_service_name,
            apply_patch(definition, patch),
            timeout=self.provisioning_timeout,
            poll_interval=self.poll_interval,
        )
        return find_trained_model_asset(updated, asset_key=asset_key).uri

    def prepare(self, model: BlobLocation) -> Deployment:
        """Find the trained-model asset and build the JSON Patch (``test`` the old URI, ``replace`` it)."""
        definition = self.hook.get_web_service(self.web_service_name)
        asset = find_trained_model_asset(definition, asset_key=self.asset_key, asset_name=self.asset_name)
        patch = build_model_patch(asset, model.uri)
        return Deployment(
            previous_model_uri=strip_query(asset.uri),
            undo=patch,  # the previous URI as the service had it (it may carry a SAS): never logged
            details={
                "web_service": self.web_service_name,
                "asset_key": asset.key,
                "asset_name": asset.name,
                "json_patch": _loggable(patch),
            },
        )

    def apply(self, model: BlobLocation, deployment: Deployment) -> None:
        """Apply the patch, PATCH the service, wait for provisioning, confirm the new URI."""
        serving = self._apply(deployment.undo, deployment.details["asset_key"], "promote")
        if serving != model.uri:
            raise AzureMLApiError(
                f"Web service {self.web_service_name!r} provisioned but serves {strip_query(serving)}, not {model.uri}."
            )

    def rollback(self, deployment: Deployment, model: BlobLocation) -> bool:
        """Apply the inverse patch, if the service has ``model``."""
        asset_key = deployment.details["asset_key"]
        definition = self.hook.get_web_service(self.web_service_name)
        if find_trained_model_asset(definition, asset_key=asset_key).uri != model.uri:
            return False
        inverse = inverse_model_patch(deployment.undo)
        serving = self._apply(inverse, asset_key, "rollback", definition)  # just read and checked above
        if serving != inverse[-1]["value"]:
            raise AzureMLApiError(
                f"Web service {self.web_service_name!r} serves {strip_query(serving)} after the rollback."
            )
        return True

    def score(self, sample: SmokeSample) -> ScoringTable:
        """Score through the web service's RRS with its primary key."""
        return self.hook.score(
            self.web_service_name,
            input_name=self.smoke_test_input_name,
            columns=sample.columns,
            rows=sample.rows,
        )


def _loggable(patch: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The patch with any SAS signature in its values scrubbed, for logs, XCom and the record."""
    return [{**op, "value": redact(op["value"])} if isinstance(op.get("value"), str) else op for op in patch]
