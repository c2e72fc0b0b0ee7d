"""The Azure ML classic emulator (``amlretrain_emulator``) as a dev stack service.

Two commands of the emulator are used:

* ``seed --state-dir D`` (connection string in ``AMLRETRAIN_EMULATOR_STORAGE_CONNECTION_STRING``)
  prints a JSON document (workspace, services and their keys, data blobs) on standard output;
* ``serve --host H --port P --state-dir D --config FILE`` runs the HTTP server,
  ready once ``GET /_emulator/health`` answers 200.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from amlretrain_devstack.errors import DevStackError
from amlretrain_devstack.procs import http_status, log_tail, spawn_detached, wait_ready
from amlretrain_devstack.state import write_private_json

if TYPE_CHECKING:
    from collections.abc import Mapping

EMULATOR_MODULE = "amlretrain_emulator"
HEALTH_PATH = "/_emulator/health"
#: Path of the emulator's managed-identity token endpoint (enabled by ``identity_header``).
MSI_PATH = "/msi/token"
#: Environment variable the emulator reads the storage connection string from.
CONNECTION_STRING_ENV = "AMLRETRAIN_EMULATOR_STORAGE_CONNECTION_STRING"
#: Keys of the emulator config that the dev stack always sets itself.
RESERVED_CONFIG_KEYS = frozenset({"storage_connection_string"})


def emulator_available() -> bool:
    """Tell whether the emulator package can be imported (it ships in the ``amlretrain-emulator`` distribution).

    :return: ``True`` if ``python -m amlretrain_emulator`` can run.
    """
    try:
        return importlib.util.find_spec(f"{EMULATOR_MODULE}.__main__") is not None
    except (ImportError, ValueError):
        return False


def known_config_keys() -> frozenset[str] | None:
    """Return the config keys the emulator accepts, or ``None`` if it cannot tell.

    :return: the emulator's ``CONFIG_KEYS``.
    """
    try:
        module = importlib.import_module(f"{EMULATOR_MODULE}.config")
    except ImportError:
        return None
    keys = getattr(module, "CONFIG_KEYS", None)
    return frozenset(keys) if keys else None


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Build the environment for stack processes.

    Makes this package importable in the child even when it is not installed
    (source checkout), and keeps loopback traffic away from any HTTP proxy.

    :param extra: variables to add on top.
    :return: the environment mapping.
    """
    env = dict(os.environ)
    package_parent = str(Path(__file__).resolve().parents[1])
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if package_parent not in paths:
        env["PYTHONPATH"] = os.pathsep.join([package_parent, *paths])
    for name in ("NO_PROXY", "no_proxy"):
        hosts = [h for h in env.get(name, "").split(",") if h]
        for host in ("127.0.0.1", "localhost"):
            if host not in hosts:
                hosts.append(host)
        env[name] = ",".join(hosts)
    env.setdefault("PYTHONUNBUFFERED", "1")
    if extra:
        env.update(extra)
    return env


def _emulator_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", EMULATOR_MODULE, *args]


def _parse_seed_output(stdout: str) -> dict[str, Any]:
    """Parse the seed command's JSON document, tolerating log lines before it."""
    text = stdout.strip()
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError:
        start = text.find("{")
        try:
            parsed = json.loads(text[start:]) if start >= 0 else None
        except json.JSONDecodeError:
            parsed = None
    if not isinstance(parsed, dict):
        raise DevStackError(
            f"The emulator seed command did not print a JSON object on stdout; got: {text[:500]!r}"
        )
    return parsed


def run_seed(
    state_dir: Path,
    connection_string: str,
    log_file: Path,
    *,
    env: Mapping[str, str],
    timeout: float = 180.0,
) -> dict[str, Any]:
    """Run the emulator's ``seed`` command and return its JSON output.

    :param state_dir: the emulator state directory.
    :param connection_string: the Azurite connection string.
    :param log_file: where the command's standard error goes.
    :param env: the child's environment.
    :param timeout: seconds to allow.
    :return: the seed document (workspace, services, data).
    :raises DevStackError: if the command fails, times out or prints no JSON.
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    # The connection string goes through the environment, not argv (process listings).
    argv = _emulator_cmd("seed", "--state-dir", str(state_dir))
    env = {**env, CONNECTION_STRING_ENV: connection_string}
    log_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a") as log:
        try:
            result = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                env=dict(env),
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise DevStackError(
                f"The emulator seed command did not finish within {timeout:.0f}s; see {log_file}."
            ) from exc
    if result.returncode != 0:
        raise DevStackError(
            f"The emulator seed command failed with code {result.returncode}.\n"
            f"Last lines of {log_file}:\n{log_tail(log_file)}"
        )
    return _parse_seed_output(result.stdout)


def write_config(
    path: Path, connection_string: str, overrides: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Write the emulator's config file (mode 0600) and return what was written.

    An ``identity_header`` secret is generated (enabling the emulator's managed-identity
    token endpoint) unless ``overrides`` sets one.

    :param path: where to write it.
    :param connection_string: the Azurite connection string.
    :param overrides: tunables merged over the defaults (``faults``, ``job_concurrency``,
        ``min_job_seconds``, ...); ``storage_connection_string`` cannot be overridden.
    :return: the config document.
    :raises DevStackError: if ``overrides`` has keys the emulator does not know.
    """
    overrides = dict(overrides or {})
    known = known_config_keys()
    if known is not None:
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise DevStackError(
                f"Unknown emulator config key(s) in the fault config: {', '.join(unknown)}. "
                f"Known keys: {', '.join(sorted(known))}. Put fault rules under "
                '"faults", e.g. {"faults": {...}, "min_job_seconds": 0}.'
            )
    config: dict[str, Any] = {"identity_header": secrets.token_urlsafe(24)}
    config.update({key: value for key, value in overrides.items() if key not in RESERVED_CONFIG_KEYS})
    config["storage_connection_string"] = connection_string
    write_private_json(path, config)
    return config


def emulator_url(host: str, port: int) -> str:
    """Return the emulator's base URL.

    :param host: listen address.
    :param port: TCP port.
    :return: e.g. ``http://127.0.0.1:8123``.
    """
    return f"http://{host}:{port}"


def emulator_healthy(url: str, timeout: float = 2.0) -> bool:
    """Tell whether ``GET {url}/_emulator/health`` answers 200.

    :param url: the emulator base URL.
    :param timeout: socket timeout.
    :return: ``True`` when healthy.
    """
    return http_status(url.rstrip("/") + HEALTH_PATH, timeout=timeout) == 200


def start_emulator(
    host: str,
    port: int,
    state_dir: Path,
    config_file: Path,
    log_file: Path,
    *,
    env: Mapping[str, str],
    timeout: float = 60.0,
) -> subprocess.Popen[bytes]:
    """Start the emulator server detached and wait for its health check.

    :param host: listen address.
    :param port: TCP port.
    :param state_dir: the emulator state directory.
    :param config_file: the JSON config written by :func:`write_config`.
    :param log_file: where its output goes.
    :param env: the child's environment.
    :param timeout: seconds to wait for health.
    :return: the process handle (a process group leader).
    :raises DevStackError: if it exits or is not healthy in time.
    """
    argv = _emulator_cmd(
        "serve",
        "--host",
        host,
        "--port",
        str(port),
        "--state-dir",
        str(state_dir),
        "--config",
        str(config_file),
    )
    process = spawn_detached(argv, log_file, cwd=state_dir, env=env)
    url = emulator_url(host, port)
    wait_ready(
        lambda: emulator_healthy(url), process, what="The AML emulator", log_file=log_file, timeout=timeout
    )
    return process
