"""The environment of the Airflow processes a dev deployment starts (``make airflow``, ``make distributed``).

Settings every deployment shares come from one env file, ``deploy/airflow.env``, which
docker-compose.yaml reads too (``env_file``); what differs per deployment (home, ports, metadata DB,
broker, keys, executor) is added here.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from amlretrain_devstack.errors import DevStackError
from amlretrain_devstack.procs import LOOPBACK, free_port

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

#: The shared settings file, relative to the repository root (the Makefile's working directory).
SETTINGS_FILE = Path("deploy/airflow.env")
#: The simple auth manager's user, and the file where Airflow writes its generated password.
ADMIN_USER = "admin"
PASSWORDS_FILE = "simple_auth_manager_passwords.json.generated"
#: Variables of the calling environment a deployment does not inherit.
INHERITED_NOT = ("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_")


def read_settings(path: Path = SETTINGS_FILE) -> dict[str, str]:
    """Read a docker-compose style env file: ``KEY=VALUE`` lines, ``#`` comments, no quoting.

    :param path: the file.
    :return: the variables, in file order.
    :raises DevStackError: if the file is missing or a line is not ``KEY=VALUE``.
    """
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise DevStackError(
            f"Cannot read the Airflow settings file {path}: {exc.strerror or exc}. "
            "Run from the repository root or pass --settings."
        ) from exc
    settings: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        if not sep or not name.strip().isidentifier():
            raise DevStackError(f"{path}:{number} is not a KEY=VALUE line: {raw!r}")
        settings[name.strip()] = value.strip()
    return settings


def new_keys() -> dict[str, str]:
    """Fresh secrets every process of one deployment must share: Fernet key and JWT secret.

    :return: ``AIRFLOW__CORE__FERNET_KEY`` and ``AIRFLOW__API_AUTH__JWT_SECRET``.
    """
    return {
        "AIRFLOW__CORE__FERNET_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
    }


def dag_bundles(dag_folders: Sequence[Path]) -> str:
    """``[dag_processor] dag_bundle_config_list`` for local DAG folders (the first is ``dags-folder``).

    :param dag_folders: the folders; extra ones (e.g. test DAGs) become ``extra-1``, ``extra-2``...
    :return: the JSON value.
    """
    return json.dumps(
        [
            {
                "name": "dags-folder" if index == 0 else f"extra-{index}",
                "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
                "kwargs": {"path": str(Path(folder).resolve())},
            }
            for index, folder in enumerate(dag_folders)
        ]
    )


def airflow_env(
    *,
    settings: Mapping[str, str],
    home: Path,
    api_port: int,
    dag_folders: Sequence[Path],
    keys: Mapping[str, str],
    overrides: Mapping[str, str] | None = None,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The full environment of one Airflow process of a dev deployment.

    :param settings: the shared settings (:func:`read_settings`).
    :param home: ``AIRFLOW_HOME``.
    :param api_port: the API server's loopback port (also the execution API the task runners call).
    :param dag_folders: the DAG folders (the first is ``[core] dags_folder``).
    :param keys: :func:`new_keys` of this deployment.
    :param overrides: deployment-specific settings (executor, metadata DB, broker...), applied last.
    :param base: the environment to start from (default: this process's), without its ``AIRFLOW__``
        settings, ``AIRFLOW_CONN_*`` and ``AIRFLOW_VAR_*``, which would silently win over the deployment's
        (its connections and Variables are in its metadata DB).
    :return: the environment.
    """
    source = os.environ if base is None else base
    env = {name: value for name, value in source.items() if not name.startswith(INHERITED_NOT)}
    bin_dir = str(Path(sys.executable).parent)
    env.update(settings)
    # Log servers on free ports: the default 8793/8794 collide with any other Airflow on this host. Distinct from
    # the API server's port and each other: none is bound yet, and the OS can hand the same closed port out twice
    # (seen: the triggerer's log server took the API server's port, which then failed to start).
    worker_log_port = free_port(avoid={api_port})
    trigger_log_port = free_port(avoid={api_port, worker_log_port})
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(Path(dag_folders[0]).resolve()),
            "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": dag_bundles(dag_folders),
            "AIRFLOW__API__HOST": LOOPBACK,
            "AIRFLOW__API__PORT": str(api_port),
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(worker_log_port),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(trigger_log_port),
            "AIRFLOW__API__BASE_URL": f"http://{LOOPBACK}:{api_port}",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://{LOOPBACK}:{api_port}/execution/",
            # `airflow standalone` and the Celery workers start their parts as `airflow ...` through PATH.
            "PATH": bin_dir + os.pathsep + env.get("PATH", ""),
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(keys)
    env.update(overrides or {})
    return env


def admin_password(home: Path) -> str | None:
    """The admin password the simple auth manager generated in ``home``, once it has.

    :param home: ``AIRFLOW_HOME``.
    :return: the password, or ``None`` before the API server has written it.
    """
    try:
        return str(json.loads((Path(home) / PASSWORDS_FILE).read_text())[ADMIN_USER])
    except (OSError, ValueError, KeyError):
        return None
