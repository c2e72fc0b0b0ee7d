"""Hook for new (Azure Resource Manager) web services: definitions, updates, keys, scoring."""

from __future__ import annotations

import json
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from airflow_provider_amlretrain.api.arm import (
    ARM_SCOPE,
    WebServicesApi,
    operation_status,
    provisioning_state,
)
from airflow_provider_amlretrain.api.http import ApiRequest, ApiResponse, error_for
from airflow_provider_amlretrain.api.rrs import ScoringTable, execute_request, parse_execute_answer
from airflow_provider_amlretrain.connection_forms import WEB_SERVICES_FORM
from airflow_provider_amlretrain.exceptions import AzureMLApiError, AzureMLConfigError, AzureMLResponseError
from airflow_provider_amlretrain.flags import parse_flag
from airflow_provider_amlretrain.hooks.default_connections import ARM_CONN_ID
from airflow_provider_amlretrain.hooks.http_settings import (
    HttpSettings,
    bearer_headers,
    http_tuning,
    is_loopback,
)
from airflow_provider_amlretrain.hooks.sync_client import AzureMLHttpHook
from airflow_provider_amlretrain.redaction import redact, strip_query

if TYPE_CHECKING:
    from collections.abc import Sequence

    from azure.core.credentials import TokenCredential

DEFAULT_ARM_URL = "https://management.azure.com"


class AzureMLWebServicesHook(AzureMLHttpHook):
    """
    Reads and updates new-style web services (``Microsoft.MachineLearning/webServices``) through ARM.

    Tokens come from ``azure-identity`` through azure-core's ``BearerTokenCredentialPolicy`` (cached and
    refreshed there; sent over https only, or http to a loopback emulator, or to an emulator in another
    container with extra ``http_emulator: true``, as in docker-compose): a service principal when the
    connection has login (client id), password (secret) and extra ``tenant_id``; ``ManagedIdentityCredential``
    with extra ``managed_identity_client_id`` or ``use_managed_identity: true``; otherwise the Azure
    provider's ``DefaultAzureCredential`` (workload identity with ``managed_identity_client_id`` and
    ``workload_identity_tenant_id``, managed identity, environment...). Extras: ``subscription_id``, ``resource_group``
    (required), ``execution_url`` (the RRS host, e.g. ``https://ussouthcentral.services.azureml.net``),
    and the usual ``request_timeout``, ``max_retries``, ``retry_backoff``. Host: the ARM URL
    (default ``https://management.azure.com``).

    :param azureml_arm_conn_id: The ``azureml_web_services`` connection id.
    """

    conn_name_attr = "azureml_arm_conn_id"
    default_conn_name = ARM_CONN_ID
    conn_type = "azureml_web_services"
    hook_name = "Azure ML web services (Resource Manager)"

    def __init__(self, azureml_arm_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.azureml_arm_conn_id = azureml_arm_conn_id
        # Web service keys this hook has read (listKeys): scrubbed from every later message too.
        self._service_keys: set[str] = set()
        # ARM tokens the credential policy has sent: scrubbed from every message too.
        self._arm_tokens: set[str] = set()

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Form layout of the connection in the Airflow UI."""
        return WEB_SERVICES_FORM

    @cached_property
    def _config(self) -> dict[str, Any]:
        conn = self.get_connection(self.azureml_arm_conn_id)
        extras = conn.extra_dejson
        conn_id = self.azureml_arm_conn_id
        missing = [k for k in ("subscription_id", "resource_group") if not extras.get(k)]
        if missing:
            raise AzureMLConfigError(f"Connection {conn_id!r} lacks extra(s) {missing}: add them.")
        timeout, policy = http_tuning(conn_id, extras)

        from airflow.providers.microsoft.azure.utils import get_field

        def field(name: str) -> Any:
            return get_field(conn_id=conn_id, conn_type=self.conn_type, extras=extras, field_name=name)

        host = conn.host or DEFAULT_ARM_URL
        arm_url = host if "://" in host else f"https://{host}"
        http_emulator = parse_flag(
            field("http_emulator"),
            owner=f"Connection {conn_id!r}",
            field="extra http_emulator",
            default=False,
        )
        if not arm_url.lower().startswith("https://") and not is_loopback(arm_url) and not http_emulator:
            raise AzureMLConfigError(
                f"Connection {conn_id!r} has host {strip_query(arm_url)!r}: Azure AD tokens are only sent over "
                "https. Use https://management.azure.com (plain http is accepted for a local emulator only: on "
                "this machine, or in another container with extra http_emulator: true)."
            )

        return {
            "arm_url": arm_url,
            "http_emulator": http_emulator,
            "subscription_id": str(extras["subscription_id"]),
            "resource_group": str(extras["resource_group"]),
            "execution_url": extras.get("execution_url"),
            "timeout": timeout,
            "policy": policy,
            "client_id": conn.login,
            "client_secret": conn.password,
            "tenant_id": field("tenant_id"),
            "managed_identity_client_id": field("managed_identity_client_id"),
            "workload_identity_tenant_id": field("workload_identity_tenant_id"),
            "use_managed_identity": parse_flag(
                field("use_managed_identity"),
                owner=f"Connection {conn_id!r}",
                field="extra use_managed_identity",
                default=False,
            ),
        }

    @cached_property
    def credential(self) -> TokenCredential:
        """The ``azure-identity`` credential the connection describes."""
        config = self._config
        if config["client_id"] and config["client_secret"] and config["tenant_id"]:
            from azure.identity import ClientSecretCredential

            return ClientSecretCredential(config["tenant_id"], config["client_id"], config["client_secret"])
        workload = config["workload_identity_tenant_id"]
        if (config["managed_identity_client_id"] and not workload) or config["use_managed_identity"]:
            from azure.identity import ManagedIdentityCredential

            return ManagedIdentityCredential(client_id=config["managed_identity_client_id"] or None)
        from airflow.providers.microsoft.azure.utils import get_sync_default_azure_credential

        return get_sync_default_azure_credential(
            managed_identity_client_id=config["managed_identity_client_id"],
            workload_identity_tenant_id=workload,
        )

    def _authentication_policy(self) -> Any:
        """azure-core's bearer-token policy on :attr:`credential`, for ARM calls."""
        from airflow_provider_amlretrain.hooks.arm_auth import ArmTokenPolicy

        return ArmTokenPolicy(
            self.credential, ARM_SCOPE, self._arm_tokens, allow_http=self._config["http_emulator"]
        )

    def http_settings(self) -> HttpSettings:
        """JSON headers (the credential policy adds the token), timeout, retries, and every secret to scrub."""
        config = self._config
        secrets = tuple(
            s for s in (*sorted(self._arm_tokens), config["client_secret"], *sorted(self._service_keys)) if s
        )
        return HttpSettings(bearer_headers(None), config["timeout"], config["policy"], secrets)

    @property
    def api(self) -> WebServicesApi:
        """Request builder for the connection's resource group."""
        config = self._config
        return WebServicesApi(config["arm_url"], config["subscription_id"], config["resource_group"])

    def get_web_service(self, name: str) -> dict[str, Any]:
        """
        The web service definition (without keys).

        :param name: The web service's resource name.
        """
        return dict(self.call(self.api.get(name)))

    def update_web_service(
        self, name: str, definition: dict[str, Any], *, timeout: float = 600.0, poll_interval: float = 2.0
    ) -> dict[str, Any]:
        """
        PATCH a definition and wait until provisioning ends.

        :param name: The web service's resource name.
        :param definition: The full, edited definition.
        :param timeout: Seconds to wait for provisioning.
        :param poll_interval: Seconds between two polls.
        :return: The definition after the update.
        :raises AzureMLApiError: when provisioning fails or does not end in time.
        """
        from azure.core.exceptions import AzureError, HttpResponseError
        from azure.core.pipeline import PipelineContext, PipelineResponse

        from airflow_provider_amlretrain.exceptions import ProvisioningDeadlinePassed
        from airflow_provider_amlretrain.hooks.arm_polling import WebServiceUpdatePolling
        from airflow_provider_amlretrain.hooks.pipeline import to_api_response, transport_failure
        from airflow_provider_amlretrain.hooks.retry import AzureMLRetryPolicy, CallRecord

        request = self.api.patch(name, definition)
        answer = self._send(request)
        first = to_api_response(answer)
        if first.status_code not in request.expected:
            raise error_for(request, first, *self.http_settings().secrets)
        polling = WebServiceUpdatePolling(
            poll_interval=poll_interval, timeout=timeout, sleep=lambda s: self._sleep(s)
        )
        polling.initialize(
            self._client,
            PipelineResponse(answer.request, answer, PipelineContext(self._transport)),
            lambda final: json.loads(final.http_response.text() or "null"),
        )
        try:
            polling.run()
        except ProvisioningDeadlinePassed as passed:
            raise AzureMLApiError(
                f"Updating web service {name!r} did not finish within {timeout:.0f} s (last status {passed.status})."
            ) from None
        except HttpResponseError as err:
            raise self._update_failure(name, err) from None
        except AzureError as err:
            poll = polling.last_call or CallRecord(request)
            raise transport_failure(
                poll.request,
                err,
                tries=max(poll.tries, 1),
                nothing_sent=AzureMLRetryPolicy.nothing_was_sent(err),
                unsendable=False,
                secrets=self.http_settings().secrets,
            ) from None
        updated = polling.resource()
        if not isinstance(updated, dict):
            raise AzureMLResponseError(
                f"ARM answered the updated web service {name!r} with something that is not an object."
            )
        return updated

    def _update_failure(self, name: str, err: Any) -> AzureMLApiError:
        """
        The error for an update whose polling stopped: an error answer, a failed operation, or an answer
        without a status.

        :param name: The web service's resource name.
        :param err: azure-core's ``HttpResponseError``, with the last answer read.
        """
        from azure.core.polling.base_polling import BadResponse

        secrets = self.http_settings().secrets
        last = err.response
        answer = ApiResponse(last.status_code, {k.lower(): v for k, v in last.headers.items()}, last.text())
        poll = ApiRequest(
            last.request.method, last.request.url, operation=f"poll the update of web service {name}"
        )
        if answer.status_code not in (200, 201, 202, 204):
            return error_for(poll, answer, *secrets)
        body = answer.json(poll, *secrets)
        if isinstance(err.inner_exception, BadResponse):  # an answer ARMPolling could read no status from
            try:
                operation_status(body)
            except AzureMLResponseError as unreadable:
                return unreadable
        if isinstance(body, dict) and ("status" in body or "provisioningState" in body):
            _, raw, message = operation_status(body)
        else:
            raw, message = provisioning_state(body).value, None
        details = redact(message, *secrets) if message else "no details"
        return AzureMLApiError(
            f"Updating web service {name!r} ended {raw}: {details}. The service keeps its previous definition."
        )

    def list_keys(self, name: str) -> dict[str, str]:
        """
        ``{primary, secondary}`` keys of a web service (secrets).

        :param name: The web service's resource name.
        """
        keys = self.call(self.api.list_keys(name)) or {}
        from airflow.providers.common.compat.sdk import mask_secret

        for value in keys.values():
            if isinstance(value, str):
                mask_secret(value)
                self._service_keys.add(value)
        return keys

    def execution_location(self, name: str, definition: dict[str, Any] | None = None) -> str:
        """
        The RRS base URL of a web service.

        Taken from the definition's ``properties.swaggerLocation`` (``.../services/{id}/swagger.json``),
        else built from the ``execution_url`` extra as ``{execution_url}/subscriptions/{sub}/services/{name}``.

        :param name: The web service's resource name.
        :param definition: The definition, if already read.
        """
        definition = definition if definition is not None else self.get_web_service(name)
        swagger = str((definition.get("properties") or {}).get("swaggerLocation") or "")
        if swagger.split("?", 1)[0].endswith("/swagger.json"):
            return swagger.split("?", 1)[0][: -len("/swagger.json")]
        config = self._config
        if not config["execution_url"]:
            raise AzureMLConfigError(
                f"Web service {name!r} has no properties.swaggerLocation and connection "
                f"{self.azureml_arm_conn_id!r} has no 'execution_url' extra (the region's RRS host, e.g. "
                "https://ussouthcentral.services.azureml.net): one is needed to score through the web service."
            )
        return f"{config['execution_url'].rstrip('/')}/subscriptions/{quote(config['subscription_id'], safe='')}/services/{quote(name, safe='')}"

    def score(
        self, name: str, *, input_name: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> ScoringTable:
        """
        Score rows through the web service's RRS with its primary key.

        :param name: The web service's resource name.
        :param input_name: The input port.
        :param columns: Column names.
        :param rows: Rows.
        """
        key = self.list_keys(name).get("primary")
        if not key:
            raise AzureMLConfigError(f"Web service {name!r} returned no primary key from listKeys.")
        request = execute_request(
            self.execution_location(name), input_name=input_name, columns=columns, rows=rows
        )
        return parse_execute_answer(self.call(request, self.with_key(key)))
