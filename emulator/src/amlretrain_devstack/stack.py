"""Start, inspect and stop the whole local stack (Azurite + AML emulator).

The Python API used by the CLI and by test fixtures::

    with running_stack(tmp_path / ".amlretrain") as stack:
        os.environ.update(stack.connection_env())
        ...
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from amlretrain_devstack.azurite import (
    AzuriteEndpoint,
    azurite_answers,
    azurite_binary,
    start_azurite,
)
from amlretrain_devstack.connections import airflow_connection_env
from amlretrain_devstack.emulator_service import (
    EMULATOR_MODULE,
    MSI_PATH,
    child_env,
    emulator_available,
    emulator_healthy,
    emulator_url,
    run_seed,
    start_emulator,
    write_config,
)
from amlretrain_devstack.errors import DevStackError
from amlretrain_devstack.procs import LOOPBACK, free_port, process_matches, stop_group
from amlretrain_devstack.state import (
    DEFAULT_DIR,
    SCHEMA_VERSION,
    load_stack_if_any,
    locked,
    now_iso,
    prepare_directory,
    stack_file,
    write_private_json,
)

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

#: Seed keys copied into the ``emulator`` section when the seed provides them.
_IDENTITY_KEYS = ("msi_endpoint", "identity_endpoint", "identity_header")
_PORT_ATTEMPTS = 3


@dataclass
class Stack:
    """A running dev stack.

    :param directory: the stack directory (holds ``stack.json``, data and logs).
    :param info: the ``stack.json`` document.
    :param started: ``True`` if this call started the processes, ``False`` if it
        found them already running.
    :param processes: process handles, only for processes started by this Python process.
    """

    directory: Path
    info: dict[str, Any]
    started: bool = False
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict, repr=False)

    @property
    def stack_file(self) -> Path:
        """Path of ``stack.json``."""
        return stack_file(self.directory)

    @property
    def connection_string(self) -> str:
        """The Azurite storage connection string."""
        return str(self.info["azurite"]["connection_string"])

    @property
    def blob_endpoint(self) -> str:
        """The Azurite Blob endpoint URL."""
        return str(self.info["azurite"]["blob_endpoint"])

    @property
    def emulator_url(self) -> str | None:
        """The emulator base URL, or ``None`` for an Azurite-only stack."""
        emulator = self.info.get("emulator") or {}
        return emulator.get("url")

    @property
    def seed(self) -> dict[str, Any]:
        """The emulator seed document (empty for an Azurite-only stack)."""
        return dict(self.info.get("seed") or {})

    def connection_env(self) -> dict[str, str]:
        """Return the ``AIRFLOW_CONN_*`` variables for this stack (see :func:`airflow_connection_env`)."""
        return airflow_connection_env(self.info)


def _log_dir(directory: Path) -> Path:
    return directory / "logs"


def _owned_pid(section: Mapping[str, Any] | None, kind: str) -> int | None:
    """Return the section's pid if that process is still the one the stack started."""
    if not section or not section.get("pid"):
        return None
    pid = int(section["pid"])
    marker = "azurite" if kind == "azurite" else EMULATOR_MODULE
    return pid if process_matches(pid, marker, str(section.get("port", ""))) else None


def _section_health(section: Mapping[str, Any] | None, kind: str) -> dict[str, Any]:
    if not section:
        return {"enabled": False, "pid": None, "alive": False, "healthy": False}
    pid = section.get("pid")
    alive = _owned_pid(section, kind) is not None
    if kind == "azurite":
        healthy = alive and azurite_answers(AzuriteEndpoint(section["host"], int(section["port"])))
    else:
        healthy = alive and emulator_healthy(str(section["url"]))
    return {"enabled": True, "pid": pid, "alive": alive, "healthy": healthy}


def stack_status(directory: Path = DEFAULT_DIR) -> dict[str, Any]:
    """Check each part of the stack recorded in ``directory``.

    :param directory: the stack directory.
    :return: ``{"exists": bool, "status": str, "up": bool, "azurite": {...}, "emulator": {...}}``
        where each part has ``enabled``, ``pid``, ``alive`` and ``healthy``; ``up`` is
        ``True`` when every enabled part is healthy.
    """
    info = load_stack_if_any(Path(directory).expanduser().resolve())
    if info is None:
        return {"exists": False, "status": "absent", "up": False, "azurite": None, "emulator": None}
    azurite = _section_health(info.get("azurite"), "azurite")
    emulator = _section_health(info.get("emulator"), "emulator")
    up = azurite["healthy"] and (emulator["healthy"] or not emulator["enabled"])
    return {"exists": True, "status": info.get("status"), "up": up, "azurite": azurite, "emulator": emulator}


def _start_azurite_on_free_port(
    directory: Path, previous_port: int | None, env: Mapping[str, str], timeout: float
) -> tuple[AzuriteEndpoint, subprocess.Popen[bytes]]:
    binary = azurite_binary()
    log_file = _log_dir(directory) / "azurite.log"
    last_error: DevStackError | None = None
    for attempt in range(_PORT_ATTEMPTS):
        endpoint = AzuriteEndpoint(LOOPBACK, free_port(previous_port if attempt == 0 else None))
        try:
            return endpoint, start_azurite(
                binary, endpoint, directory / "azurite", log_file, env=env, timeout=timeout
            )
        except DevStackError as exc:
            last_error = exc
            if "EADDRINUSE" not in str(exc):
                raise
    assert last_error is not None
    raise last_error


def _start_emulator_on_free_port(
    directory: Path,
    previous_port: int | None,
    state_dir: Path,
    config_file: Path,
    env: Mapping[str, str],
    timeout: float,
) -> tuple[int, subprocess.Popen[bytes]]:
    log_file = _log_dir(directory) / "emulator.log"
    last_error: DevStackError | None = None
    for attempt in range(_PORT_ATTEMPTS):
        port = free_port(previous_port if attempt == 0 else None)
        try:
            return port, start_emulator(
                LOOPBACK, port, state_dir, config_file, log_file, env=env, timeout=timeout
            )
        except DevStackError as exc:
            last_error = exc
            if "address already in use" not in str(exc).lower():
                raise
    assert last_error is not None
    raise last_error


def _reuse_if_healthy(
    directory: Path, info: dict[str, Any] | None, with_emulator: bool, fault_config: Mapping[str, Any] | None
) -> Stack | None:
    if not info or info.get("status") != "running":
        return None
    status = stack_status(directory)
    if not status["up"] or (with_emulator and not status["emulator"]["enabled"]):
        return None
    recorded = (info.get("emulator") or {}).get("fault_config")
    if with_emulator and fault_config is not None and dict(fault_config) != recorded:
        raise DevStackError(
            f"The stack in {directory} is already running with a different fault config; "
            "run `python -m amlretrain_devstack down` first."
        )
    return Stack(directory=directory, info=info, started=False)


def start_stack(
    directory: Path = DEFAULT_DIR,
    fault_config: Mapping[str, Any] | None = None,
    *,
    with_emulator: bool = True,
    timeout: float = 60.0,
) -> Stack:
    """Start Azurite and the AML emulator in the background, or reuse a healthy running stack.

    Idempotent: if ``stack.json`` in ``directory`` records running, healthy
    processes, they are reused and :attr:`Stack.started` is ``False``. Otherwise any
    leftover processes are stopped and the stack starts afresh on free loopback
    ports (the previous ports are reused when still free).

    :param directory: the stack directory (created with mode 0700).
    :param fault_config: tunables written into the emulator's config file
        (``faults``, ``job_concurrency``, ``min_job_seconds``, ...).
    :param with_emulator: ``False`` starts Azurite only.
    :param timeout: seconds to wait for each service to become ready.
    :return: the running :class:`Stack`.
    :raises DevStackError: with a message that says what to do, if anything fails
        (nothing is left running in that case).
    """
    if with_emulator and not emulator_available():
        raise DevStackError(
            "The AML emulator (amlretrain_emulator) is not importable: "
            "install its distribution, `pip install -e ./emulator` in the checkout, or start Azurite only "
            "(`up --azurite-only`, or `with_emulator=False`)."
        )
    directory = prepare_directory(directory)
    with locked(directory):
        previous = load_stack_if_any(directory)
        reused = _reuse_if_healthy(directory, previous, with_emulator, fault_config)
        if reused is not None:
            return reused
        if previous:
            _stop_recorded(previous, grace_seconds=5.0)
        return _start_fresh(directory, previous or {}, fault_config, with_emulator, timeout)


def _start_fresh(
    directory: Path,
    previous: Mapping[str, Any],
    fault_config: Mapping[str, Any] | None,
    with_emulator: bool,
    timeout: float,
) -> Stack:
    env = child_env()
    processes: dict[str, subprocess.Popen[bytes]] = {}
    previous_azurite = previous.get("azurite") or {}
    previous_emulator = previous.get("emulator") or {}
    try:
        endpoint, processes["azurite"] = _start_azurite_on_free_port(
            directory, previous_azurite.get("port"), env, timeout
        )
        azurite: dict[str, Any] = {
            **endpoint.describe(),
            "pid": processes["azurite"].pid,
            "location": str(directory / "azurite"),
            "log": str(_log_dir(directory) / "azurite.log"),
        }
        info: dict[str, Any] = {
            "version": SCHEMA_VERSION,
            "status": "running",
            "started_at": now_iso(),
            "directory": str(directory),
            "azurite": azurite,
            "emulator": None,
            "seed": None,
        }
        if with_emulator:
            state_dir = directory / "emulator"
            seed = run_seed(
                state_dir,
                endpoint.connection_string,
                _log_dir(directory) / "seed.log",
                env=env,
                timeout=max(timeout, 120.0),
            )
            config_file = directory / "emulator-config.json"
            config = write_config(config_file, endpoint.connection_string, fault_config)
            port, processes["emulator"] = _start_emulator_on_free_port(
                directory, previous_emulator.get("port"), state_dir, config_file, env, timeout
            )
            emulator: dict[str, Any] = {
                "url": emulator_url(LOOPBACK, port),
                "host": LOOPBACK,
                "port": port,
                "pid": processes["emulator"].pid,
                "state_dir": str(state_dir),
                "config_file": str(config_file),
                "log": str(_log_dir(directory) / "emulator.log"),
                "fault_config": dict(fault_config) if fault_config is not None else None,
            }
            if config.get("identity_header"):
                emulator["msi_endpoint"] = emulator["url"] + MSI_PATH
                emulator["identity_header"] = config["identity_header"]
            for key in _IDENTITY_KEYS:
                if seed.get(key):
                    emulator[key] = seed[key]
            info["emulator"] = emulator
            info["seed"] = seed
        write_private_json(stack_file(directory), info)
    except BaseException:
        for process in processes.values():
            stop_group(process.pid, grace_seconds=5.0)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=1)
        raise
    return Stack(directory=directory, info=info, started=True, processes=processes)


def _stop_recorded(info: Mapping[str, Any], grace_seconds: float) -> list[str]:
    stopped = []
    # Stop the emulator first: it talks to Azurite, not the other way round.
    for name in ("emulator", "azurite"):
        pid = _owned_pid(info.get(name), name)
        if pid is not None:
            stopped.append(name)
            stop_group(pid, grace_seconds=grace_seconds)
    return stopped


def restart_emulator(stack: Stack, *, kill: bool = True, timeout: float = 60.0) -> None:
    """Stop the stack's emulator (SIGKILL by default: a crash) and start it again on the same port and state.

    Its jobs, services and keys are on disk, so the restarted emulator knows every job; jobs that were
    running start over, as the emulator's job runner documents. Faults set at run time are forgotten
    (those of the config file apply again).

    :param stack: a running stack with an emulator.
    :param kill: ``True`` kills the process group at once; ``False`` stops it with SIGTERM first.
    :param timeout: seconds to wait for the restarted emulator's health check.
    :raises DevStackError: if the stack has no emulator or it does not come back.
    """
    emulator = stack.info.get("emulator")
    if not emulator:
        raise DevStackError("This stack has no emulator to restart.")
    pid = int(emulator["pid"])
    if kill:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
    stop_group(pid, grace_seconds=10.0)  # waits for a killed group to be gone; stops a live one
    old = stack.processes.pop("emulator", None)
    if old is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            old.wait(timeout=5)
    process = start_emulator(
        str(emulator["host"]),
        int(emulator["port"]),
        Path(emulator["state_dir"]),
        Path(emulator["config_file"]),
        Path(emulator["log"]),
        env=child_env(),
        timeout=timeout,
    )
    stack.processes["emulator"] = process
    emulator["pid"] = process.pid
    write_private_json(stack_file(stack.directory), stack.info)


def stop_stack(target: Stack | Path = DEFAULT_DIR, grace_seconds: float = 10.0) -> list[str]:
    """Stop the stack's process groups (SIGTERM, then SIGKILL after the grace period).

    Idempotent: stopping a stopped or absent stack does nothing. ``stack.json`` is
    kept (its data stays valid for the next ``up``) with ``status: "stopped"`` and
    the pids cleared.

    :param target: a :class:`Stack` or a stack directory.
    :param grace_seconds: how long each service gets to exit after SIGTERM.
    :return: the names of the parts that were running.
    """
    directory = target.directory if isinstance(target, Stack) else Path(target).expanduser().resolve()
    if not directory.is_dir():
        return []
    with locked(directory):
        info = load_stack_if_any(directory)
        if info is None:
            return []
        stopped = _stop_recorded(info, grace_seconds)
        if isinstance(target, Stack):
            for process in target.processes.values():
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=1)
        for name in ("azurite", "emulator"):
            if info.get(name):
                info[name]["pid"] = None
        if info.get("status") != "stopped":
            info["status"] = "stopped"
            info["stopped_at"] = now_iso()
        write_private_json(stack_file(directory), info)
    return stopped


@contextlib.contextmanager
def running_stack(
    directory: Path = DEFAULT_DIR,
    fault_config: Mapping[str, Any] | None = None,
    *,
    with_emulator: bool = True,
    timeout: float = 60.0,
    keep_running: bool = False,
) -> Iterator[Stack]:
    """Context manager for test fixtures: start (or reuse) a stack, stop it on exit.

    A stack that was already running before entry is left running on exit.

    :param directory: the stack directory.
    :param fault_config: emulator tunables (see :func:`start_stack`).
    :param with_emulator: ``False`` starts Azurite only.
    :param timeout: seconds to wait for each service.
    :param keep_running: leave the stack running on exit even if it was started here.
    :return: a context manager yielding the :class:`Stack`.
    """
    stack = start_stack(directory, fault_config, with_emulator=with_emulator, timeout=timeout)
    try:
        yield stack
    finally:
        if stack.started and not keep_running:
            stop_stack(stack)
