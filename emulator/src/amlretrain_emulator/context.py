"""The emulator's runtime objects, shared by the routers through ``app.state.emulator``."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import Request

    from amlretrain_emulator.config import EmulatorConfig
    from amlretrain_emulator.faults import FaultStore
    from amlretrain_emulator.jobs import JobRunner
    from amlretrain_emulator.state import StateStore


@dataclass
class EmulatorContext:
    """What the route handlers need.

    :param config: the configuration.
    :param store: persisted state.
    :param faults: the fault-injection rules.
    :param runner: the BES job runner.
    """

    config: EmulatorConfig
    store: StateStore
    faults: FaultStore
    runner: JobRunner


def get_context(request: Request) -> EmulatorContext:
    """The context of the app serving ``request``.

    :param request: the current request.
    """
    return request.app.state.emulator


def utc_now() -> str:
    """The current UTC time, ISO 8601 with a ``Z`` (as Azure writes it)."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
