"""What every dev deployment of Airflow does: its record, its metadata, its parts, waiting and stopping.

A deployment lives in ``<stack dir>/airflow-<kind>/`` (``kind`` is ``local`` or ``distributed``) and
is recorded in ``<stack dir>/airflow-<kind>.json`` (mode 0600: it holds the deployment's keys). Each
part (``airflow standalone``, or the scheduler, a Celery worker...) leads its own session, recorded by
pid, so ``down`` stops it with every task process it started.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from amlretrain_devstack.airflow_settings import (
    ADMIN_USER,
    PASSWORDS_FILE,
    admin_password,
    airflow_env,
    new_keys,
    read_settings,
)
from amlretrain_devstack.compose_metadata import import_documents, run_imports
from amlretrain_devstack.connections import airflow_connections, identity_env
from amlretrain_devstack.errors import DevStackError
from amlretrain_devstack.procs import log_tail, pid_alive, spawn_detached
from amlretrain_devstack.sessions import stop_session
from amlretrain_devstack.state import (
    load_stack_if_any,
    now_iso,
    write_private_json,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence

KINDS = ("local", "distributed")
#: The parts whose health ``GET /api/v2/monitor/health`` reports.
HEALTH_PARTS = ("metadatabase", "scheduler", "triggerer", "dag_processor")


def record_file(stack_dir: Path, kind: str) -> Path:
    """Where the deployment of ``kind`` is recorded.

    :param stack_dir: the stack directory.
    :param kind: ``local`` or ``distributed``.
    """
    return Path(stack_dir) / f"airflow-{kind}.json"


def deployment_dir(stack_dir: Path, kind: str) -> Path:
    """The working folder of the deployment of ``kind`` (home, logs, data).

    :param stack_dir: the stack directory.
    :param kind: ``local`` or ``distributed``.
    """
    return Path(stack_dir) / f"airflow-{kind}"


@dataclass
class AirflowDeployment:
    """A running dev deployment of Airflow.

    :param kind: ``local`` or ``distributed``.
    :param url: the UI / REST base URL.
    :param home: ``AIRFLOW_HOME``.
    :param env: the environment of its Airflow processes (holds the keys: never log it).
    :param parts: part name to the pid of its session leader, in start order.
    :param extra: what a kind records besides (e.g. the PostgreSQL data folder).
    """

    kind: str
    url: str
    home: Path
    env: dict[str, str]
    parts: dict[str, int] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    started: bool = True

    @property
    def password(self) -> str | None:
        """The admin password Airflow generated."""
        return admin_password(self.home)

    @property
    def log_dir(self) -> Path:
        """Where every part's log goes."""
        return self.home.parent / "logs"

    def describe(self) -> dict[str, Any]:
        """The record written to ``airflow-<kind>.json``."""
        return {
            "kind": self.kind,
            "url": self.url,
            "home": str(self.home),
            "env": self.env,
            "parts": self.parts,
            "extra": self.extra,
            "started_at": now_iso(),
        }

    def alive_parts(self) -> list[str]:
        """The parts whose session leader still runs."""
        return [name for name, pid in self.parts.items() if pid_alive(pid)]

    def airflow(self, *args: str, timeout: float = 300.0) -> subprocess.CompletedProcess[str]:
        """Run ``airflow <args>`` with this deployment's environment; fail with its output.

        :param args: the command's arguments.
        :param timeout: seconds.
        :raises DevStackError: if the command fails.
        """
        result = subprocess.run(
            [sys.executable, "-m", "airflow", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise DevStackError(
                f"`airflow {' '.join(args)}` failed with code {result.returncode}:\n"
                f"{result.stdout[-1500:]}\n{result.stderr[-2500:]}"
            )
        return result

    def start_part(self, name: str, argv: Sequence[str], env: Mapping[str, str] | None = None) -> int:
        """Start one part in its own session, logging to ``logs/<name>.log``; record it.

        :param name: the part's name (``scheduler``, ``worker1``...).
        :param argv: its command line.
        :param env: its environment (default: the deployment's).
        :return: its pid.
        """
        process = spawn_detached(argv, self.log_dir / f"{name}.log", env=env or self.env, cwd=self.home)
        self.parts[name] = process.pid
        return process.pid


def load_deployment(stack_dir: Path, kind: str) -> AirflowDeployment | None:
    """Read the record of the deployment of ``kind``, if there is one.

    :param stack_dir: the stack directory.
    :param kind: ``local`` or ``distributed``.
    """
    info = read_record(record_file(stack_dir, kind))
    if info is None:
        return None
    return AirflowDeployment(
        kind=info["kind"],
        url=info["url"],
        home=Path(info["home"]),
        env=dict(info["env"]),
        parts={name: int(pid) for name, pid in info["parts"].items()},
        extra=dict(info.get("extra") or {}),
        started=False,
    )


def read_record(path: Path) -> dict[str, Any] | None:
    """Read a JSON record if it exists and is an object.

    :param path: the file.
    """
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return document if isinstance(document, dict) else None


def save_deployment(stack_dir: Path, deployment: AirflowDeployment) -> None:
    """Write the deployment's record (mode 0600).

    :param stack_dir: the stack directory.
    :param deployment: the deployment.
    """
    write_private_json(record_file(stack_dir, deployment.kind), deployment.describe())


def running_stack_info(stack_dir: Path) -> dict[str, Any]:
    """The ``stack.json`` of a running stack with its emulator.

    :param stack_dir: the stack directory.
    :raises DevStackError: if the stack is not running.
    """
    info = load_stack_if_any(Path(stack_dir))
    if not info or info.get("status") != "running" or not info.get("emulator"):
        raise DevStackError(
            f"No running stack with its emulator in {stack_dir}: "
            "start it with `python -m amlretrain_devstack up`."
        )
    return info


def reusable_deployment(stack_dir: Path, kind: str) -> AirflowDeployment | None:
    """The recorded deployment of ``kind`` if every one of its parts still runs (a start reuses it).

    :param stack_dir: the stack directory.
    :param kind: ``local`` or ``distributed``.
    """
    previous = load_deployment(stack_dir, kind)
    if previous is not None and previous.parts and len(previous.alive_parts()) == len(previous.parts):
        return previous
    return None


def prepare_home(stack_dir: Path, kind: str, *, keep_metadata: bool, grace_seconds: float) -> Path:
    """Stop what is left of the deployment of ``kind`` and make its ``AIRFLOW_HOME`` ready for a start.

    :param stack_dir: the stack directory.
    :param kind: ``local`` or ``distributed``.
    :param keep_metadata: keep the home of the last start (the local deployment's SQLite metadata DB is in
        it); ``False`` empties it (a fresh metadata DB each time wants a fresh home).
    :param grace_seconds: how long each part left running gets after SIGTERM.
    :return: the home, ``<stack dir>/airflow-<kind>/home``.
    """
    stop_deployment(stack_dir, kind, grace_seconds=grace_seconds)
    home = deployment_dir(stack_dir, kind) / "home"
    if not keep_metadata:
        shutil.rmtree(home, ignore_errors=True)
    reset_home(home)
    return home


def deployment_env(
    stack_info: Mapping[str, Any],
    home: Path,
    *,
    settings_file: Path,
    api_port: int,
    dag_folders: Sequence[Path],
    kind_settings: Mapping[str, str],
    overrides: Mapping[str, str] | None,
) -> dict[str, str]:
    """The environment of every Airflow process of a deployment (it holds the keys: never log it).

    :func:`~.airflow_settings.airflow_env` with the shared settings, the deployment's kept keys, then
    ``kind_settings``, the emulator's managed identity, and ``overrides`` last.

    :param stack_info: the stack's ``stack.json``.
    :param home: the deployment's ``AIRFLOW_HOME`` (from :func:`prepare_home`).
    :param settings_file: the shared settings (``deploy/airflow.env``).
    :param api_port: the API server's loopback port.
    :param dag_folders: the DAG folders (the first is ``[core] dags_folder``).
    :param kind_settings: what the kind sets (executor, metadata DB, broker...).
    :param overrides: the caller's settings (e.g. a faster scheduler heartbeat in tests).
    """
    return airflow_env(
        settings=read_settings(settings_file),
        home=home,
        api_port=api_port,
        dag_folders=dag_folders,
        keys=deployment_keys(home.parent),
        overrides={**kind_settings, **identity_env(stack_info), **(overrides or {})},
    )


@contextmanager
def stopped_on_failure(stack_dir: Path, deployment: AirflowDeployment) -> Iterator[AirflowDeployment]:
    """Around a start: if it fails (or is interrupted), stop every part that did start, then re-raise.

    :param stack_dir: the stack directory.
    :param deployment: the deployment being started.
    """
    try:
        yield deployment
    except BaseException:
        save_deployment(stack_dir, deployment)  # so that what did start is stopped
        stop_deployment(stack_dir, deployment.kind, grace_seconds=5.0)
        raise


def write_metadata(deployment: AirflowDeployment, stack_info: Mapping[str, Any]) -> list[str]:
    """Write the stack's connections and Variables into the deployment's metadata DB.

    :param deployment: the deployment (its metadata DB is migrated).
    :param stack_info: the stack's ``stack.json``.
    :return: the connection ids written.
    """
    documents = import_documents(dict(stack_info))
    run_imports(documents, env=deployment.env)
    return sorted(documents["connections"])


def unhealthy_parts(url: str) -> list[str] | None:
    """The parts ``/api/v2/monitor/health`` does not report healthy, or ``None`` if it does not answer.

    :param url: the deployment's base URL.
    """
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"{url}/api/v2/monitor/health", timeout=5) as answer:
            health = json.loads(answer.read())
    except (OSError, ValueError):
        return None
    return [part for part in HEALTH_PARTS if (health.get(part) or {}).get("status") != "healthy"]


def wait_until(
    ready: Callable[[], bool],
    deployment: AirflowDeployment,
    *,
    what: str,
    timeout: float,
    log_name: str,
) -> None:
    """Poll ``ready`` until it is true; fail early when a part died, with that part's log.

    :param ready: the probe.
    :param deployment: the deployment (its parts are watched).
    :param what: what is awaited, for the error message.
    :param timeout: seconds.
    :param log_name: the part whose log tail goes into a timeout message.
    :raises DevStackError: naming the dead part or the timeout, with a log tail.
    """
    deadline = time.monotonic() + timeout
    while not ready():
        dead = [name for name in deployment.parts if name not in deployment.alive_parts()]
        if dead:
            log = deployment.log_dir / f"{dead[0]}.log"
            raise DevStackError(f"{dead[0]} exited before {what}. Last lines of {log}:\n{log_tail(log, 40)}")
        if time.monotonic() > deadline:
            log = deployment.log_dir / f"{log_name}.log"
            raise DevStackError(
                f"{what} did not happen within {timeout:.0f} s. Last lines of {log}:\n{log_tail(log, 40)}"
            )
        time.sleep(1)


def wait_for_api(deployment: AirflowDeployment, timeout: float, log_name: str) -> None:
    """Wait until the API answers, every part reports healthy and the admin password exists.

    :param deployment: the deployment.
    :param timeout: seconds.
    :param log_name: the part whose log explains a timeout.
    """

    def ready() -> bool:
        return unhealthy_parts(deployment.url) == [] and deployment.password is not None

    wait_until(
        ready, deployment, what="Airflow reported every part healthy", timeout=timeout, log_name=log_name
    )


def stop_deployment(stack_dir: Path, kind: str, grace_seconds: float = 20.0) -> list[str]:
    """Stop every part of the deployment of ``kind``, newest first, and drop its scratch folders.

    Its home is kept for the next start (the local deployment keeps its metadata DB).

    :param stack_dir: the stack directory.
    :param kind: ``local`` or ``distributed``.
    :param grace_seconds: how long each part gets after SIGTERM.
    :return: the parts that were running.
    """
    deployment = load_deployment(stack_dir, kind)
    if deployment is None:
        return []
    stopped = []
    for name, pid in reversed(deployment.parts.items()):
        if stop_session(pid, grace_seconds):
            stopped.append(name)
    for scratch in deployment.extra.get("scratch") or []:
        shutil.rmtree(scratch, ignore_errors=True)
    with contextlib.suppress(FileNotFoundError):
        record_file(stack_dir, kind).unlink()
    return stopped


def summary(deployment: AirflowDeployment, connection_ids: Sequence[str], how: str) -> str:
    """What ``make airflow`` / ``make distributed`` print: where the UI is, who logs in, how to stop.

    :param deployment: the running deployment.
    :param connection_ids: the connections in its metadata DB.
    :param how: one line saying what runs (executor, metadata DB).
    """
    state = "started" if deployment.started else "already running"
    lines = [
        f"Airflow is up ({state}): {how}",
        f"  UI and REST API: {deployment.url}",
        f"  User: {ADMIN_USER}   Password: {deployment.password}   (from {deployment.home / PASSWORDS_FILE})",
        f"  DAGs: {deployment.env.get('AIRFLOW__CORE__DAGS_FOLDER')} (paused at creation: unpause them in the UI)",
        f"  Connections in the metadata DB (Admin > Connections): {', '.join(connection_ids)}",
        f"  Parts: {', '.join(f'{name} (pid {pid})' for name, pid in deployment.parts.items())}",
        f"  Logs: {deployment.log_dir}",
        "  Stop: make down (stops Airflow and the stack)",
    ]
    return "\n".join(lines)


def connection_ids(stack_info: Mapping[str, Any]) -> list[str]:
    """The connection ids a deployment on this stack has.

    :param stack_info: the stack's ``stack.json``.
    """
    return sorted(airflow_connections(stack_info))


def deployment_keys(work: Path) -> dict[str, str]:
    """The deployment's Fernet key and JWT secret, made once and kept in ``work/keys.json`` (mode 0600).

    Kept so that a restart still decrypts the connections in a kept metadata DB.

    :param work: the deployment's working folder.
    """
    path = Path(work) / "keys.json"
    keys = read_record(path)
    if keys is None:
        keys = new_keys()
        write_private_json(path, keys)
    return {str(name): str(value) for name, value in keys.items()}


def reset_home(home: Path) -> None:
    """Create ``AIRFLOW_HOME`` (mode 0700).

    :param home: the folder.
    """
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(home, 0o700)
