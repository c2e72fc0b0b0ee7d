"""Entry point: ``python -m airflow_provider_amlretrain.devstack`` (also the ``amlretrain-stack`` script)."""

from __future__ import annotations

import sys

from airflow_provider_amlretrain.devstack.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
