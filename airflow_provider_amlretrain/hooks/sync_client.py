"""The sync request path of every Azure ML hook: one azure-core ``PipelineClient`` (one ``requests.Session``) per hook."""

from __future__ import annotations

import time
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseHook

from airflow_provider_amlretrain.api.http import ApiRequest, ApiResponse, error_for
from airflow_provider_amlretrain.hooks.http_settings import HttpSettings, bearer_headers

if TYPE_CHECKING:
    from azure.core import PipelineClient


class AzureMLHttpHook(BaseHook):
    """
    Base of the Azure ML hooks: subclasses say how to authenticate (:meth:`http_settings`);
    this class sends requests through azure-core (its retry loop with this provider's rules, redacted
    logging) and raises typed, secret-free errors.
    """

    def __init__(self) -> None:
        super().__init__()
        self._sleep = time.sleep

    def http_settings(self) -> HttpSettings:
        """Headers, timeout, retry policy and secrets of this hook's API."""
        raise NotImplementedError

    def _authentication_policy(self) -> Any:
        """An azure-core credential policy for :attr:`_client`, or ``None`` when requests carry their key."""
        return None

    @cached_property
    def _transport(self) -> Any:
        """The hook's one ``requests.Session``, behind azure-core's ``RequestsTransport``."""
        from azure.core.pipeline.transport import RequestsTransport

        from airflow_provider_amlretrain.hooks.http_settings import environment_names_a_proxy

        timeout = self.http_settings().request_timeout
        return RequestsTransport(
            connection_timeout=timeout, read_timeout=timeout, use_env_settings=environment_names_a_proxy()
        )

    def _build_client(self, authentication: Any) -> PipelineClient[Any, Any]:
        from azure.core import PipelineClient

        from airflow_provider_amlretrain.hooks.pipeline import http_logger, pipeline_policies
        from airflow_provider_amlretrain.hooks.retry import AzureMLRetryPolicy

        retry = AzureMLRetryPolicy(self.http_settings().retry_policy, sleep=lambda s: self._sleep(s))
        policies = pipeline_policies(
            retry, logger=http_logger(in_triggerer=False), authentication=authentication
        )
        return PipelineClient(base_url="", policies=policies, transport=self._transport)

    @cached_property
    def _client(self) -> PipelineClient[Any, Any]:
        """The pipeline of this hook's own API (with its credential policy, if any)."""
        return self._build_client(self._authentication_policy())

    @cached_property
    def _keyed_client(self) -> PipelineClient[Any, Any]:
        """The pipeline for calls that carry their own key (RRS scoring): no credential policy, same session."""
        if self._authentication_policy() is None:
            return self._client
        return self._build_client(None)

    def _send(self, request: ApiRequest, settings: HttpSettings | None = None) -> Any:
        """
        Send ``request`` through the pipeline; return azure-core's answer, whatever its status.

        :param request: The request to send.
        :param settings: Other credentials for this call; default :meth:`http_settings`.
        :raises AzureMLTransportError: when the service cannot be reached after every retry.
        :raises AzureMLConfigError: when the request cannot even be sent (a malformed URL or header).
        """
        from azure.core.exceptions import AzureError

        from airflow_provider_amlretrain.hooks.pipeline import to_http_request, transport_failure
        from airflow_provider_amlretrain.hooks.retry import (
            CALL_OPTION,
            AzureMLRetryPolicy,
            CallRecord,
            is_unsendable,
        )

        client = self._client if settings is None else self._keyed_client
        record = CallRecord(request)
        try:
            return client.send_request(
                to_http_request(request, settings or self.http_settings()),
                **{CALL_OPTION: record},  # type: ignore[arg-type]  # a pipeline option, not ``stream``
            )
        except AzureError as err:
            raise transport_failure(
                request,
                err,
                tries=max(record.tries, 1),
                nothing_sent=AzureMLRetryPolicy.nothing_was_sent(err),
                unsendable=is_unsendable(err),
                secrets=(settings or self.http_settings()).secrets,
            ) from None

    def call_raw(self, request: ApiRequest, settings: HttpSettings | None = None) -> ApiResponse:
        """
        Send ``request`` with retries; return the successful answer (status in ``request.expected``).

        :param request: The request to send.
        :param settings: Other credentials for this call (e.g. an endpoint key); default :meth:`http_settings`.
        :raises AzureMLApiError: (or a subclass) when the service answers an error.
        :raises AzureMLTransportError: when the service cannot be reached after every retry.
        :raises AzureMLConfigError: when the request cannot even be sent (a malformed URL or header).
        """
        from airflow_provider_amlretrain.hooks.pipeline import to_api_response

        response = to_api_response(self._send(request, settings))
        if response.status_code in request.expected:
            return response
        raise error_for(request, response, *(settings or self.http_settings()).secrets)

    def call(self, request: ApiRequest, settings: HttpSettings | None = None) -> Any:
        """
        Send ``request`` with retries and return the decoded JSON body (``None`` if empty).

        :param request: The request to send.
        :param settings: Other credentials for this call; default :meth:`http_settings`.
        """
        answer = self.call_raw(request, settings)
        return answer.json(request, *(settings or self.http_settings()).secrets)

    def with_key(self, key: str) -> HttpSettings:
        """
        This hook's timeout and retry policy with another bearer key (an endpoint or web service key).

        :param key: The key (secret).
        """
        base = self.http_settings()
        return HttpSettings(
            bearer_headers(key), base.request_timeout, base.retry_policy, (key, *base.secrets)
        )
