"""A local emulator of the Azure ML Studio (classic) APIs (BES, RRS, endpoint management, ARM).

It is a separate implementation of the published API shapes: it imports nothing from the
provider (``airflow_provider_amlretrain``) nor from Airflow, so the client and the emulator
check each other.

Entry points: :func:`amlretrain_emulator.app.create_app` and
``python -m amlretrain_emulator {serve,seed}``.
"""

from __future__ import annotations

__all__ = ["EmulatorConfig", "create_app"]


def __getattr__(name: str) -> object:
    # Lazy, so importing the package does not import FastAPI.
    if name == "create_app":
        from amlretrain_emulator.app import create_app

        return create_app
    if name == "EmulatorConfig":
        from amlretrain_emulator.config import EmulatorConfig

        return EmulatorConfig
    raise AttributeError(name)
