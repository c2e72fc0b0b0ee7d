"""ARM's bearer tokens: azure-core's ``BearerTokenCredentialPolicy``, remembering the tokens it sent for redaction."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from azure.core.pipeline.policies import BearerTokenCredentialPolicy

from airflow_provider_amlretrain.hooks.http_settings import is_loopback

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.core.pipeline import PipelineRequest


class ArmTokenPolicy(BearerTokenCredentialPolicy):
    """
    Adds ``Authorization: Bearer <token>`` from an azure-identity credential (cached and refreshed by
    azure-core), over https only, or plain http to a loopback host (the local emulator) or, with
    ``allow_http``, to any host (an emulator in another container).

    :param credential: The azure-identity credential.
    :param scope: The token scope (ARM's ``.default``).
    :param seen_tokens: Filled with every token sent, so messages can scrub them.
    :param allow_http: Send tokens over plain http to any host (the connection's ``http_emulator`` extra).
    """

    def __init__(
        self, credential: TokenCredential, scope: str, seen_tokens: set[str], *, allow_http: bool = False
    ) -> None:
        super().__init__(credential, scope)
        self._seen_tokens = seen_tokens
        self._allow_http = allow_http

    def on_request(self, request: PipelineRequest[Any]) -> None:
        """Authorize the request (and remember the token)."""
        if self._allow_http or is_loopback(request.http_request.url):
            request.context.options["enforce_https"] = False
        super().on_request(request)
        token = request.http_request.headers.get("Authorization", "").partition(" ")[2]
        if token:
            self._seen_tokens.add(token)
