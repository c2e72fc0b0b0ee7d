"""Process helpers: free ports, detached children, liveness and group shutdown.

Every service of the dev stack runs as the leader of its own process group
(``start_new_session=True``) so that it survives the ``up`` command and can be
stopped, children included, with a single :func:`os.killpg`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

from amlretrain_devstack.errors import DevStackError

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Mapping, Sequence

LOOPBACK = "127.0.0.1"

#: An opener that never goes through an HTTP proxy: the stack only listens on loopback.
_NO_PROXY_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port(preferred: int | None = None, host: str = LOOPBACK, avoid: Collection[int] = ()) -> int:
    """Return a TCP port that is free on ``host`` right now.

    :param preferred: a port to reuse if it is still free (keeps addresses stable
        across restarts); ``None`` or a busy port falls back to an OS-chosen one.
    :param host: the address to bind.
    :param avoid: ports chosen for something else but not bound yet (the OS may hand a closed one out again).
    :return: the port number.
    """
    if preferred:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, preferred))
            except OSError:
                pass
            else:
                return preferred
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
        if port not in avoid:
            return port


def spawn_detached(
    argv: Sequence[str],
    log_file: Path,
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in the background as the leader of a new session.

    Standard input is ``/dev/null``; standard output and error are appended to
    ``log_file`` (created with mode 0600).

    :param argv: the command line.
    :param log_file: where the output goes.
    :param cwd: working directory of the child.
    :param env: full environment of the child (defaults to the current one).
    :return: the child's :class:`subprocess.Popen` handle.
    """
    log_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "ab") as log:
        log.write(f"\n--- {time.strftime('%Y-%m-%dT%H:%M:%S')} starting: {' '.join(argv)}\n".encode())
        log.flush()
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=dict(env) if env is not None else None,
            start_new_session=True,
            close_fds=True,
        )


#: The fields of ``/proc/<pid>/stat`` after the command name, counted from 0: the state, then these.
STAT_PGRP, STAT_SESSION = 2, 3
#: The states of a process that has exited (zombie, dead).
_EXITED = {"Z", "X"}


def _stat_fields(proc_dir: Path) -> list[str]:
    """The fields of ``/proc/<pid>/stat`` after the command name (state first); ``[]`` if unreadable.

    :param proc_dir: ``/proc/<pid>``.
    """
    try:
        stat = proc_dir.joinpath("stat").read_text()
    except OSError:
        return []
    # The fields follow the parenthesised command name, which may contain spaces.
    return stat.rsplit(")", 1)[-1].split()


def _is_zombie(pid: int) -> bool:
    """Tell whether ``pid`` is a zombie (Linux ``/proc`` only; ``False`` elsewhere)."""
    fields = _stat_fields(Path(f"/proc/{pid}"))
    return bool(fields) and fields[0] in _EXITED


def _reap(pid: int) -> None:
    """Collect ``pid``'s exit status if it is our own child, so it is not left a zombie."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def pid_alive(pid: int | None) -> bool:
    """Tell whether a process with this id is running (zombies count as dead).

    :param pid: the process id, or ``None``.
    :return: ``True`` if the process exists and is not a zombie.
    """
    if not pid or pid <= 0:
        return False
    _reap(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _is_zombie(pid)


def command_line(pid: int) -> str | None:
    """Return the command line of ``pid`` (arguments joined by spaces), or ``None`` if unknown.

    :param pid: the process id.
    :return: the command line, from ``/proc`` or ``ps``.
    """
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        raw = b""
    if raw:
        return raw.replace(b"\0", b" ").decode(errors="replace").strip()
    try:
        result = subprocess.run(
            ["ps", "-o", "command=", "-p", str(pid)], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None


def process_matches(pid: int | None, *needles: str) -> bool:
    """Tell whether ``pid`` is alive and its command line contains every needle.

    Guards against pid reuse: a recorded pid is only signalled if it still runs
    the command the stack started.

    :param pid: the process id.
    :param needles: substrings the command line must contain.
    :return: ``True`` if it is alive and matches.
    """
    if not pid_alive(pid):
        return False
    assert pid is not None
    cmdline = command_line(pid)
    return cmdline is not None and all(needle in cmdline for needle in needles)


def live_processes_with(stat_field: int, value: int) -> list[int]:
    """The live (non-zombie) processes whose ``/proc/<pid>/stat`` field ``stat_field`` is ``value``.

    :param stat_field: :data:`STAT_PGRP` (process group) or :data:`STAT_SESSION` (session).
    :param value: the group or session id.
    :return: their pids; ``[]`` where ``/proc`` is missing.
    """
    members: list[int] = []
    proc = Path("/proc")
    if not proc.is_dir():
        return members
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(entry)
        if len(fields) > stat_field and fields[stat_field] == str(value) and fields[0] not in _EXITED:
            members.append(int(entry.name))
    return members


def group_members(pgid: int) -> list[int]:
    """List the live (non-zombie) processes of process group ``pgid``.

    Uses ``/proc`` where it exists; elsewhere returns ``[pgid]`` while the group
    accepts signals and ``[]`` otherwise.

    :param pgid: the process group id (the pid of its leader).
    :return: the pids of its live members.
    """
    if not Path("/proc").is_dir():
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return []
        return [pgid]
    return live_processes_with(STAT_PGRP, pgid)


def stop_group(pid: int | None, grace_seconds: float = 10.0) -> bool:
    """Stop the process group led by ``pid``: SIGTERM, wait, then SIGKILL.

    :param pid: the group leader's pid (``None`` is a no-op).
    :param grace_seconds: how long to wait after SIGTERM before SIGKILL.
    :return: ``True`` if SIGKILL was needed.
    """
    if not pid or not group_members(pid):
        return False
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline:
        _reap(pid)
        if not group_members(pid):
            return False
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline and group_members(pid):
        _reap(pid)
        time.sleep(0.05)
    _reap(pid)
    return True


def http_status(url: str, timeout: float = 2.0) -> int | None:
    """GET ``url`` without any proxy and return the HTTP status.

    :param url: the address to query.
    :param timeout: socket timeout in seconds.
    :return: the status code (error statuses included), or ``None`` if nothing answered.
    """
    try:
        with _NO_PROXY_OPENER.open(url, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (OSError, ValueError):
        return None


def log_tail(log_file: Path, lines: int = 20) -> str:
    """Return the last ``lines`` lines of a log file (empty if it does not exist).

    :param log_file: the file to read.
    :param lines: how many lines to keep.
    :return: the tail, as text.
    """
    try:
        text = log_file.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def wait_ready(
    is_ready: Callable[[], bool],
    process: subprocess.Popen[bytes],
    *,
    what: str,
    log_file: Path,
    timeout: float,
) -> None:
    """Poll ``is_ready`` until it returns ``True``, the process dies, or time runs out.

    :param is_ready: the readiness probe.
    :param process: the process being waited for.
    :param what: a human name for error messages (e.g. ``"Azurite"``).
    :param log_file: the process's log, whose tail goes into error messages.
    :param timeout: seconds to wait at most.
    :raises DevStackError: if the process exits or does not become ready in time.
    """
    deadline = time.monotonic() + timeout
    while True:
        if is_ready():
            return
        code = process.poll()
        if code is not None:
            raise DevStackError(
                f"{what} exited with code {code} before it was ready.\n"
                f"Last lines of {log_file}:\n{log_tail(log_file)}"
            )
        if time.monotonic() >= deadline:
            raise DevStackError(
                f"{what} did not answer within {timeout:.0f}s (pid {process.pid}).\n"
                f"Last lines of {log_file}:\n{log_tail(log_file)}\n"
                "Check the log above, then run `python -m amlretrain_devstack down` and retry."
            )
        time.sleep(0.1)
