"""``make distributed``: Airflow with CeleryExecutor as separate processes on loopback, on the dev stack.

PostgreSQL (Debian's ``postgresql``) holds the metadata DB and the Celery results, Redis (Debian's
``redis-server``) is the broker; the API server, scheduler, dag-processor, triggerer and two Celery
workers (``worker1``, ``worker2``) each lead their own session. The shared settings come from
``deploy/airflow.env`` (docker-compose.yaml reads the same file). Each start makes a fresh metadata DB.

A worker names itself in the task instances it runs (``hostname`` is ``worker1`` or ``worker2``, see
:mod:`~.worker_identity`), so the UI and the REST API tell which worker ran what.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from amlretrain_devstack.airflow_deployment import (
    AirflowDeployment,
    deployment_env,
    prepare_home,
    reusable_deployment,
    running_stack_info,
    save_deployment,
    stopped_on_failure,
    wait_for_api,
    wait_until,
    write_metadata,
)
from amlretrain_devstack.airflow_settings import SETTINGS_FILE
from amlretrain_devstack.errors import DevStackError
from amlretrain_devstack.procs import LOOPBACK, free_port

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

KIND = "distributed"
HOW = "CeleryExecutor (two workers), PostgreSQL metadata DB and result backend, Redis broker"
WORKERS = ("worker1", "worker2")
#: The Python modules the distributed deployment needs, with what to install.
PYTHON_MODULES = {
    "celery": "make setup-distributed",
    "airflow.providers.celery": "make setup-distributed",
    "psycopg2": "make setup-distributed",
}
WORKER_IDENTITY = "amlretrain_devstack.worker_identity.hostname"


def postgres_bin_dir() -> Path | None:
    """The newest Debian PostgreSQL server's ``bin`` folder, if one is installed."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


def missing_prerequisites() -> list[str]:
    """What is missing to run the distributed deployment, each with what to install.

    :return: one line per missing package; empty when everything is there.
    """
    missing = []
    if postgres_bin_dir() is None:
        missing.append("PostgreSQL server: apt-get install postgresql")
    if shutil.which("redis-server") is None:
        missing.append("Redis: apt-get install redis-server")
    for module, install in PYTHON_MODULES.items():
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            missing.append(f"Python module {module}: {install}")
    return missing


def _as_postgres_user(argv: Sequence[str]) -> list[str]:
    """``initdb`` and ``postgres`` refuse root: run them as the ``postgres`` user when we are root."""
    if os.geteuid() != 0:
        return list(argv)
    return ["runuser", "-u", "postgres", "--", *argv]


def _postgres_data_dir() -> Path:
    """A fresh data folder the server's user can reach (the stack folder is private to us)."""
    data = Path(tempfile.mkdtemp(prefix="amlretrain-pg-"))
    if os.geteuid() == 0:
        shutil.chown(data, "postgres", "postgres")
    return data


def _answers(port: int, probe: bytes = b"", expect: bytes = b"") -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=2) as sock:
            if not probe:
                return True
            sock.sendall(probe)
            return sock.recv(64).startswith(expect)
    except OSError:
        return False


def _log_says(log: Path, text: str) -> bool:
    """Whether ``log`` contains ``text`` (a Celery worker logs ``celery@... ready.``)."""
    try:
        return text in log.read_text(errors="replace")
    except OSError:
        return False


def _start_postgres(deployment: AirflowDeployment, timeout: float) -> str:
    """Start PostgreSQL on a free loopback port, make the ``airflow`` database; return its address."""
    bin_dir = postgres_bin_dir()
    assert bin_dir is not None
    data = _postgres_data_dir()
    deployment.extra["scratch"] = [str(data)]
    initdb = subprocess.run(
        _as_postgres_user(
            [str(bin_dir / "initdb"), "-D", str(data / "db"), "-U", "postgres", "--auth=trust"]
        ),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if initdb.returncode != 0:
        raise DevStackError(f"initdb failed:\n{initdb.stdout[-1000:]}\n{initdb.stderr[-1500:]}")
    port = free_port()
    deployment.start_part(
        "postgres",
        _as_postgres_user(
            [
                str(bin_dir / "postgres"),
                "-D",
                str(data / "db"),
                "-p",
                str(port),
                "-k",
                str(data),
                "-c",
                f"listen_addresses={LOOPBACK}",
                "-c",
                "max_connections=200",
                "-c",
                "fsync=off",
            ]
        ),
    )
    wait_until(
        lambda: _answers(port), deployment, what="PostgreSQL answered", timeout=timeout, log_name="postgres"
    )
    psql = shutil.which("psql") or str(bin_dir / "psql")
    deadline = time.monotonic() + timeout
    while True:
        created = subprocess.run(
            [psql, "-h", LOOPBACK, "-p", str(port), "-U", "postgres", "-c", "CREATE DATABASE airflow"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if created.returncode == 0:
            return f"{LOOPBACK}:{port}"
        if time.monotonic() > deadline:  # "the database system is starting up" lasts a moment
            raise DevStackError(f"CREATE DATABASE airflow failed: {created.stderr.strip()}")
        time.sleep(1)


def _start_redis(deployment: AirflowDeployment, timeout: float) -> str:
    """Start Redis on a free loopback port (no persistence); return its address."""
    port = free_port()
    redis = shutil.which("redis-server")
    assert redis is not None
    deployment.start_part(
        "redis",
        [
            redis,
            "--port",
            str(port),
            "--bind",
            LOOPBACK,
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(deployment.home),
        ],
    )
    wait_until(
        lambda: _answers(port, b"PING\r\n", b"+PONG"),
        deployment,
        what="Redis answered PING",
        timeout=timeout,
        log_name="redis",
    )
    return f"{LOOPBACK}:{port}"


def start_distributed_airflow(
    stack_dir: Path,
    *,
    dag_folders: Sequence[Path] = (Path("dags"),),
    settings_file: Path = SETTINGS_FILE,
    overrides: Mapping[str, str] | None = None,
    timeout: float = 300.0,
) -> AirflowDeployment:
    """Start the distributed deployment on the running stack in ``stack_dir``, or reuse the running one.

    :param stack_dir: the stack directory (the stack must be up).
    :param dag_folders: the DAG folders (the first is ``[core] dags_folder``).
    :param settings_file: the shared settings (``deploy/airflow.env``).
    :param overrides: more Airflow settings, applied last (e.g. a short heartbeat timeout in tests).
    :param timeout: seconds to wait for each step.
    :return: the running deployment.
    :raises DevStackError: naming what to install when a package is missing, or the part that failed
        with its log (nothing is left running then).
    """
    missing = missing_prerequisites()
    if missing:
        raise DevStackError("The distributed deployment needs: " + "; ".join(missing))
    stack_info = running_stack_info(stack_dir)
    previous = reusable_deployment(stack_dir, KIND)
    if previous is not None:
        return previous
    # A fresh metadata DB each time: so must be the home.
    home = prepare_home(stack_dir, KIND, keep_metadata=False, grace_seconds=20.0)
    api_port = free_port()
    deployment = AirflowDeployment(kind=KIND, url=f"http://{LOOPBACK}:{api_port}", home=home, env={})
    with stopped_on_failure(stack_dir, deployment):
        deployment.env = dict(os.environ)
        postgres = _start_postgres(deployment, timeout)
        redis = _start_redis(deployment, timeout)
        deployment.env = deployment_env(
            stack_info,
            home,
            settings_file=settings_file,
            api_port=api_port,
            dag_folders=dag_folders,
            kind_settings={
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://postgres@{postgres}/airflow",
                "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql://postgres@{postgres}/airflow",
                "AIRFLOW__CELERY__BROKER_URL": f"redis://{redis}/0",
                "AIRFLOW__CORE__HOSTNAME_CALLABLE": WORKER_IDENTITY,
            },
            overrides=overrides,
        )
        save_deployment(stack_dir, deployment)
        deployment.airflow("db", "migrate", timeout=max(timeout, 600.0))
        write_metadata(deployment, stack_info)
        airflow = [sys.executable, "-m", "airflow"]
        deployment.start_part(
            "api-server", [*airflow, "api-server", "--host", LOOPBACK, "--port", str(api_port)]
        )
        for part in ("scheduler", "dag-processor", "triggerer"):
            deployment.start_part(part, [*airflow, part])
        for worker in WORKERS:
            deployment.start_part(
                worker,
                [*airflow, "celery", "worker", "--celery-hostname", f"{worker}@%h", "--skip-serve-logs"],
                env={**deployment.env, "AMLRETRAIN_WORKER_NAME": worker},
            )
        save_deployment(stack_dir, deployment)
        wait_for_api(deployment, timeout, log_name="api-server")
        for worker in WORKERS:
            wait_until(
                partial(_log_says, deployment.log_dir / f"{worker}.log", " ready."),
                deployment,
                what=f"{worker} was ready",
                timeout=timeout,
                log_name=worker,
            )
    return deployment
