"""The FastAPI application factory."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from fastapi import FastAPI

    from amlretrain_emulator.config import EmulatorConfig


def create_app(config: EmulatorConfig) -> FastAPI:
    """Build the emulator app: Azure ML classic APIs plus the ``/_emulator`` admin API.

    The BES job workers start and stop with the app's lifespan (so use ``TestClient`` as a
    context manager, or a real server).

    :param config: the configuration.
    """
    from fastapi import FastAPI

    from amlretrain_emulator import admin, arm, bes, management, msi, pages, rrs
    from amlretrain_emulator.context import EmulatorContext
    from amlretrain_emulator.errors import RequestIdMiddleware, install_error_handlers
    from amlretrain_emulator.faults import ADMIN_PREFIX, FaultMiddleware, FaultStore
    from amlretrain_emulator.jobs import JobRunner
    from amlretrain_emulator.state import StateStore

    store = StateStore(config.state_dir)
    faults = FaultStore(config.faults)
    runner = JobRunner(store, config, faults)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        runner.start()
        try:
            yield
        finally:
            runner.stop()

    app = FastAPI(
        title="Azure ML Studio (classic) emulator",
        lifespan=lifespan,
        docs_url=f"{ADMIN_PREFIX}/docs",
        redoc_url=None,
        openapi_url=f"{ADMIN_PREFIX}/openapi.json",
    )
    app.state.emulator = EmulatorContext(config=config, store=store, faults=faults, runner=runner)
    install_error_handlers(app)
    app.include_router(admin.router)
    for router in (bes.router, rrs.router, management.router, arm.router, msi.router, pages.router):
        app.include_router(router)
    app.add_middleware(FaultMiddleware, store=faults)
    app.add_middleware(RequestIdMiddleware)  # outermost: every answer gets x-ms-request-id
    return app
