"""Azurite (the Azure Storage emulator, npm package ``azurite``): install, start, probe.

Azurite is installed from the repository's ``package-lock.json`` with ``npm ci``
into ``node_modules/``; only the Blob service is started.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from amlretrain_devstack.errors import DevStackError
from amlretrain_devstack.procs import LOOPBACK, http_status, spawn_detached, wait_ready

if TYPE_CHECKING:
    from collections.abc import Mapping

#: The Azurite version pinned in ``package.json`` and ``docker-compose.yaml``.
AZURITE_VERSION = "3.37.0"
#: Azurite's well-known development account.
ACCOUNT_NAME = "devstoreaccount1"
#: Azurite's well-known development account key (public, documented by Microsoft).
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
#: Environment variable that points at an ``azurite-blob`` executable to use instead of ``node_modules``.
AZURITE_BIN_ENV = "AMLRETRAIN_AZURITE_BIN"


@dataclass(frozen=True)
class AzuriteEndpoint:
    """Addresses and credentials of one running Azurite Blob service.

    :param host: the address it listens on.
    :param port: the TCP port.
    """

    host: str
    port: int

    @property
    def blob_endpoint(self) -> str:
        """The account's Blob endpoint URL (path-style, as Azurite expects)."""
        return f"http://{self.host}:{self.port}/{ACCOUNT_NAME}"

    @property
    def connection_string(self) -> str:
        """A storage connection string for ``azure.storage.blob`` and Airflow's ``wasb`` hook."""
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT_NAME};"
            f"AccountKey={ACCOUNT_KEY};BlobEndpoint={self.blob_endpoint};"
        )

    def describe(self) -> dict[str, Any]:
        """Return the ``azurite`` section of ``stack.json`` (without process details)."""
        return {
            "version": AZURITE_VERSION,
            "host": self.host,
            "port": self.port,
            "blob_endpoint": self.blob_endpoint,
            "account_name": ACCOUNT_NAME,
            "account_key": ACCOUNT_KEY,
            "connection_string": self.connection_string,
        }


def find_project_root(start: Path | None = None) -> Path:
    """Find the directory holding this project's ``package.json``.

    Looks upward from ``start`` (default: the current directory), then upward from
    this module's location (an editable or source checkout).

    :param start: where to start looking.
    :return: the directory containing ``package.json`` that depends on ``azurite``.
    :raises DevStackError: if no such directory is found.
    """
    candidates = [(start or Path.cwd()).resolve(), Path(__file__).resolve().parent]
    for base in candidates:
        for directory in (base, *base.parents):
            manifest = directory / "package.json"
            if manifest.is_file() and '"azurite"' in manifest.read_text(errors="replace"):
                return directory
    raise DevStackError(
        "Could not find the project's package.json (with the azurite dependency). "
        "Run this command from the airflow-provider-amlretrain checkout, or set "
        f"{AZURITE_BIN_ENV} to an azurite-blob executable."
    )


def azurite_binary(project_root: Path | None = None) -> Path:
    """Return the ``azurite-blob`` executable, installing it with ``npm ci`` if missing.

    :param project_root: the directory with ``package.json``/``package-lock.json``
        (found automatically when ``None``).
    :return: the path of ``azurite-blob``.
    :raises DevStackError: if npm is missing or the install fails.
    """
    override = os.environ.get(AZURITE_BIN_ENV)
    if override:
        path = Path(override)
        if not path.is_file():
            raise DevStackError(f"{AZURITE_BIN_ENV}={override} does not exist; unset it or fix the path.")
        return path
    root = project_root or find_project_root()
    binary = root / "node_modules" / ".bin" / "azurite-blob"
    if binary.exists():
        return binary
    # Serialise concurrent installs of the same checkout (`npm ci` deletes node_modules first).
    digest = hashlib.sha256(str(root).encode()).hexdigest()[:16]
    lock_path = Path(tempfile.gettempdir()) / f"amlretrain-npm-{digest}.lock"
    with open(lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not binary.exists():
            npm_install(root)
    if not binary.exists():
        raise DevStackError(
            f"`npm ci` finished but {binary} is missing; check that package.json depends on azurite."
        )
    return binary


def npm_install(project_root: Path) -> None:
    """Run ``npm ci --no-audit --no-fund`` in ``project_root``.

    :param project_root: the directory with ``package-lock.json``.
    :raises DevStackError: if npm or node is missing, or ``npm ci`` fails.
    """
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise DevStackError("npm not found: install Node.js 20+ (which ships npm) and retry.")
    if not (project_root / "package-lock.json").is_file():
        raise DevStackError(f"{project_root}/package-lock.json is missing; restore it from git and retry.")
    print(f"Installing Azurite {AZURITE_VERSION} with `npm ci` in {project_root} ...", flush=True)
    result = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund"],
        cwd=project_root,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-20:])
        raise DevStackError(
            f"`npm ci` failed with code {result.returncode} in {project_root}:\n{tail}\n"
            "Check that the npm registry is reachable and package-lock.json is intact."
        )


def azurite_argv(binary: Path, endpoint: AzuriteEndpoint, location: Path) -> list[str]:
    """Build the Azurite Blob command line.

    :param binary: the ``azurite-blob`` executable.
    :param endpoint: where to listen.
    :param location: the data directory.
    :return: the argument vector.
    """
    return [
        str(binary),
        "--blobHost",
        endpoint.host,
        "--blobPort",
        str(endpoint.port),
        "--location",
        str(location),
        "--skipApiVersionCheck",
        "--silent",
        "--loose",
        "--disableTelemetry",
    ]


def azurite_answers(endpoint: AzuriteEndpoint, timeout: float = 2.0) -> bool:
    """Tell whether Azurite answers HTTP on ``endpoint`` (any status counts: auth is not needed).

    :param endpoint: the service address.
    :param timeout: socket timeout.
    :return: ``True`` if an HTTP response came back.
    """
    return http_status(f"{endpoint.blob_endpoint}?comp=list", timeout=timeout) is not None


def start_azurite(
    binary: Path,
    endpoint: AzuriteEndpoint,
    location: Path,
    log_file: Path,
    *,
    env: Mapping[str, str],
    timeout: float = 30.0,
) -> subprocess.Popen[bytes]:
    """Start Azurite Blob detached and wait until it answers.

    :param binary: the ``azurite-blob`` executable.
    :param endpoint: where to listen.
    :param location: the data directory (created if missing).
    :param log_file: where its output goes.
    :param env: the child's environment.
    :param timeout: seconds to wait for it to answer.
    :return: the process handle (a process group leader).
    :raises DevStackError: if it exits or does not answer in time.
    """
    location.mkdir(parents=True, exist_ok=True)
    process = spawn_detached(azurite_argv(binary, endpoint, location), log_file, cwd=location, env=env)
    wait_ready(lambda: azurite_answers(endpoint), process, what="Azurite", log_file=log_file, timeout=timeout)
    return process


__all__ = [
    "ACCOUNT_KEY",
    "ACCOUNT_NAME",
    "AZURITE_VERSION",
    "LOOPBACK",
    "AzuriteEndpoint",
    "azurite_answers",
    "azurite_binary",
    "start_azurite",
]
