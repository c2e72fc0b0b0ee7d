"""Fixtures for the dev stack tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Protocol

import pytest

from amlretrain_devstack.azurite import AZURITE_BIN_ENV, azurite_binary, find_project_root

REPO_ROOT = Path(__file__).resolve().parents[3]
SOURCE_ROOT = REPO_ROOT / "emulator" / "src"


@pytest.fixture(scope="session")
def azurite_installed() -> Path:
    """Make sure ``azurite-blob`` is installed (``npm ci`` on first use); skip if Node.js is missing."""
    if not os.environ.get(AZURITE_BIN_ENV):
        root = find_project_root(REPO_ROOT)
        if not (root / "node_modules/.bin/azurite-blob").exists() and shutil.which("npm") is None:
            pytest.skip("npm not found: install Node.js 20+ to run the Azurite tests")
    return azurite_binary(find_project_root(REPO_ROOT))


@pytest.fixture
def stack_dir(tmp_path: Path) -> Path:
    """A fresh stack directory."""
    return tmp_path / ".amlretrain"


class RunCli(Protocol):
    """Signature of the :func:`cli` fixture."""

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]: ...


def _run_cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``python -m amlretrain_devstack ARGS`` from the repository root.

    :param args: command-line arguments.
    :param check: fail the test on a non-zero exit code.
    :return: the completed process (text output captured).
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SOURCE_ROOT), env.get("PYTHONPATH", "")) if p)
    result = subprocess.run(
        [sys.executable, "-m", "amlretrain_devstack", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    if check and result.returncode != 0:
        pytest.fail(
            f"devstack {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
        )
    return result


@pytest.fixture
def cli() -> RunCli:
    """Run the dev stack CLI in a subprocess (see :func:`_run_cli`)."""
    return _run_cli
