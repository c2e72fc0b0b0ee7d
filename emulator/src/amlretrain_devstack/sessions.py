"""Stop a process session, whatever process groups it holds.

An Airflow task process calls ``setpgid``: it leaves its worker's (or executor's) process group but
stays in the session. So the parts of a dev deployment each lead their own session
(:func:`~.procs.spawn_detached`) and are stopped by session, not by group.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time

from amlretrain_devstack.procs import STAT_SESSION, _reap, live_processes_with


def session_members(sid: int) -> list[int]:
    """The live (non-zombie) processes of session ``sid`` (Linux ``/proc``).

    :param sid: the session id (the pid of its leader).
    :return: their pids; ``[]`` where ``/proc`` is missing.
    """
    return live_processes_with(STAT_SESSION, sid)


def signal_session(sid: int, sig: signal.Signals) -> list[int]:
    """Send ``sig`` to every process of session ``sid``.

    :param sid: the session id.
    :param sig: the signal.
    :return: the pids signalled.
    """
    members = session_members(sid)
    for pid in members:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)
    return members


def stop_session(sid: int | None, grace_seconds: float = 10.0) -> bool:
    """Stop session ``sid``: SIGTERM to every member, wait, then SIGKILL to those left.

    :param sid: the session leader's pid (``None`` is a no-op).
    :param grace_seconds: how long the processes get to exit after SIGTERM.
    :return: ``True`` if something was running.
    """
    if not sid or not session_members(sid):
        return False
    signal_session(sid, signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline:
        _reap(sid)
        if not session_members(sid):
            return True
        time.sleep(0.1)
    deadline = time.monotonic() + 5.0
    while signal_session(sid, signal.SIGKILL) and time.monotonic() < deadline:
        _reap(sid)
        time.sleep(0.1)
    _reap(sid)
    return True
