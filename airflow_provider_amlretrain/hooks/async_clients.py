"""The async request path for triggers: one azure-core ``AsyncPipelineClient`` per event loop and connection.

A triggerer runs hundreds of deferred waits on one event loop. A client per request (a new
``aiohttp.ClientSession``: DNS lookup, TCP and TLS handshake each time) costs a connection per poll;
here every trigger polling one connection shares one client (one session, its connections kept alive
longer than a poll interval, at most :data:`MAX_CONNECTIONS_PER_HOST` of them to one host), counted by its
users and closed when the last one releases it. At most as many requests as it has connections are inside its
pipeline at once (:class:`RequestSlots`); the others wait before their request is built, holding a future each
instead of a request, its pipeline context and its transport call.
"""

from __future__ import annotations

import asyncio
import weakref
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_amlretrain.api.http import ApiRequest, ApiResponse, error_for

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Hashable

    from azure.core import AsyncPipelineClient

    from airflow_provider_amlretrain.hooks.http_settings import HttpSettings

KEEPALIVE_SECONDS = 300.0
"""How long an idle pooled connection stays open: longer than any poll interval the examples use
(2-30 s) and than Azure's front-end idle timeout (4 min), so polls reuse connections."""

MAX_CONNECTIONS_PER_HOST = 10
"""Connections one shared client keeps to one host, and the requests it has in its pipeline at once
(:class:`RequestSlots`). When a thousand waits poll at once, the requests beyond it wait for a slot (a status read
takes milliseconds) instead of each opening a connection of its own; that wait does not count against the request
timeout, which starts once the request is sent."""


class RequestSlots:
    """
    At most ``size`` requests of one shared client inside its pipeline; a retry's backoff sleep gives its slot up.

    When a thousand waits poll at once, all but a few would otherwise wait inside aiohttp for a free connection,
    each with its azure-core request, pipeline context, policy frames and transport call already built: memory
    the burst holds at once, and a long queue of connection waiters. Here they wait for a slot first, and a
    slot is held only while a request is being sent or read (not while the retry policy sleeps before
    another try, which may be a ``Retry-After`` of many seconds).

    :param size: Requests at once (:data:`MAX_CONNECTIONS_PER_HOST`: the connections the client keeps).
    """

    def __init__(self, size: int) -> None:
        self._free = asyncio.Semaphore(size)

    def held(self, sleep: Callable[[float], Awaitable[Any]]) -> HeldSlot:
        """
        A slot for one call, held in an ``async with`` block, whose value is the sleep function the call's retries use.

        :param sleep: How the call's retries wait.
        """
        return HeldSlot(self._free, sleep)


class HeldSlot:
    """
    One call's slot (``async with``): taken on entry, given back on exit, given up while the call's retry sleeps.

    :param free: The free slots.
    :param sleep: How the call's retries wait.
    """

    __slots__ = ("_free", "_holding", "_sleep")

    def __init__(self, free: asyncio.Semaphore, sleep: Callable[[float], Awaitable[Any]]) -> None:
        self._free = free
        self._sleep = sleep
        self._holding = False

    async def __aenter__(self) -> Callable[[float], Awaitable[None]]:
        await self._free.acquire()
        self._holding = True
        return self.sleep_without_slot

    async def __aexit__(self, *exc_info: object) -> None:
        if self._holding:
            self._holding = False
            self._free.release()

    async def sleep_without_slot(self, seconds: float) -> None:
        """
        Wait before the call's next try without holding a slot, then take one again.

        :param seconds: How long.
        """
        self._free.release()
        self._holding = False
        # Cancelled or failed here or below: nothing is held, nothing is given back.
        await self._sleep(seconds)
        await self._free.acquire()
        self._holding = True


@dataclass
class _Shared:
    client: AsyncPipelineClient[Any, Any]
    slots: RequestSlots
    users: int = 0


class AsyncClientRegistry:
    """The shared clients, per event loop and key; a key names a connection and its HTTP settings."""

    def __init__(self) -> None:
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Hashable, _Shared]] = (
            weakref.WeakKeyDictionary()
        )

    def _clients(self) -> dict[Hashable, _Shared]:
        return self._by_loop.setdefault(asyncio.get_running_loop(), {})

    def acquire(
        self, key: Hashable, build: Callable[[], AsyncPipelineClient[Any, Any]]
    ) -> AsyncPipelineClient[Any, Any]:
        """
        The client for ``key`` on the running loop, built on first use; count one more user.

        :param key: The connection and its settings.
        :param build: Makes the client (called inside the running loop).
        """
        clients = self._clients()
        shared = clients.get(key)
        if shared is None:
            shared = clients[key] = _Shared(build(), RequestSlots(MAX_CONNECTIONS_PER_HOST))
        shared.users += 1
        return shared.client

    async def release(self, key: Hashable) -> None:
        """
        Count one user less; close the client (and its connections) when none is left.

        :param key: The key given to :meth:`acquire`.
        """
        clients = self._clients()
        shared = clients.get(key)
        if shared is None:
            return
        shared.users -= 1
        if shared.users <= 0:
            del clients[key]
            await shared.client.close()

    def held(self, key: Hashable) -> AsyncPipelineClient[Any, Any]:
        """
        The client for ``key`` on the running loop, which the caller holds (through :meth:`acquire`).

        :param key: The key.
        """
        return self._clients()[key].client

    def held_slots(self, key: Hashable) -> RequestSlots:
        """
        The request slots of the client for ``key`` on the running loop, which the caller holds.

        :param key: The key.
        """
        return self._clients()[key].slots

    def users(self, key: Hashable) -> int:
        """
        How many users hold the client for ``key`` on the running loop (0: none is open).

        :param key: The key.
        """
        shared = self._clients().get(key)
        return shared.users if shared else 0


SHARED_CLIENTS = AsyncClientRegistry()


def build_async_client(settings: HttpSettings) -> AsyncPipelineClient[Any, Any]:
    """
    A client on a new aiohttp session whose idle connections live :data:`KEEPALIVE_SECONDS`.

    :param settings: Timeout and retry policy of the connection.
    """
    import aiohttp
    from azure.core import AsyncPipelineClient
    from azure.core.pipeline.transport import AioHttpTransport

    from airflow_provider_amlretrain.hooks.http_settings import environment_names_a_proxy
    from airflow_provider_amlretrain.hooks.pipeline import http_logger, pipeline_policies
    from airflow_provider_amlretrain.hooks.retry import AzureMLAsyncRetryPolicy

    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(
            keepalive_timeout=KEEPALIVE_SECONDS, limit_per_host=MAX_CONNECTIONS_PER_HOST
        ),
        trust_env=environment_names_a_proxy(),
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,  # as azure-core's own session: its response object decompresses
    )
    transport = AioHttpTransport(
        session=session,
        session_owner=True,
        connection_timeout=settings.request_timeout,
        read_timeout=settings.request_timeout,
    )
    policies = pipeline_policies(
        AzureMLAsyncRetryPolicy(settings.retry_policy), logger=http_logger(in_triggerer=True)
    )
    return AsyncPipelineClient(base_url="", policies=policies, transport=transport)


class AzureMLAsyncHttpMixin:
    """
    The async transport twin of :class:`~airflow_provider_amlretrain.hooks.sync_client.AzureMLHttpHook`,
    for triggers: same requests, same retry rules (azure-core's loop), same errors.

    Hold the shared client for a trigger's whole wait with ``async with hook.ashared_client():``;
    a call outside such a block takes and releases the client for itself.
    """

    log: Any
    _lease: Hashable | None = None

    async def ahttp_settings(self) -> HttpSettings:
        """Headers, timeout, retry policy and secrets, read without blocking the event loop."""
        raise NotImplementedError

    def async_client_key(self, settings: HttpSettings) -> Hashable:
        """
        What makes two hooks share a client: the connection and its timeout and retry policy.

        :param settings: The connection's HTTP settings.
        """
        raise NotImplementedError

    async def _asleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    @asynccontextmanager
    async def ashared_client(self) -> AsyncIterator[None]:
        """Hold this connection's shared client on the running loop until the block ends."""
        if self._lease is not None:  # already held (nested use)
            yield
            return
        settings = await self.ahttp_settings()
        key = self.async_client_key(settings)
        SHARED_CLIENTS.acquire(key, lambda: build_async_client(settings))
        self._lease = key
        try:
            yield
        finally:
            self._lease = None
            await SHARED_CLIENTS.release(key)

    async def acall(self, request: ApiRequest) -> Any:
        """
        Async :meth:`~airflow_provider_amlretrain.hooks.sync_client.AzureMLHttpHook.call`: same retries, same errors.

        :param request: The request to send.
        """
        settings = await self.ahttp_settings()
        return (await self.acall_raw(request)).json(request, *settings.secrets)

    async def acall_raw(self, request: ApiRequest) -> ApiResponse:
        """
        Async :meth:`~airflow_provider_amlretrain.hooks.sync_client.AzureMLHttpHook.call_raw`: the successful answer.

        :param request: The request to send.
        """
        if self._lease is None:
            async with self.ashared_client():
                return await self.acall_raw(request)

        from azure.core.exceptions import AzureError

        from airflow_provider_amlretrain.hooks.pipeline import (
            to_api_response,
            to_http_request,
            transport_failure,
        )
        from airflow_provider_amlretrain.hooks.retry import (
            CALL_OPTION,
            SLEEP_OPTION,
            AzureMLAsyncRetryPolicy,
            CallRecord,
            is_unsendable,
        )

        settings = await self.ahttp_settings()
        client = SHARED_CLIENTS.held(self._lease)
        record = CallRecord(request)
        try:
            async with SHARED_CLIENTS.held_slots(self._lease).held(self._asleep) as retry_sleep:
                answer = await client.send_request(
                    to_http_request(request, settings),
                    **{CALL_OPTION: record, SLEEP_OPTION: retry_sleep},  # type: ignore[arg-type]  # pipeline options
                )
        except AzureError as err:
            raise transport_failure(
                request,
                err,
                tries=max(record.tries, 1),
                nothing_sent=AzureMLAsyncRetryPolicy.nothing_was_sent(err),
                unsendable=is_unsendable(err),
                secrets=settings.secrets,
            ) from None
        response = to_api_response(answer)
        if response.status_code not in request.expected:
            raise error_for(request, response, *settings.secrets)
        return response
