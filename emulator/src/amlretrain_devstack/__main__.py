"""Entry point: ``python -m amlretrain_devstack`` (also the ``amlretrain-stack`` script)."""

from __future__ import annotations

import sys

from amlretrain_devstack.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
