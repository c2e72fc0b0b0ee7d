"""``make airflow``: a real Airflow (``airflow standalone``: API server with the UI, scheduler,
dag-processor, triggerer; SQLite and LocalExecutor) on loopback, on the running dev stack.

The stack's connections and Variables are written into the metadata DB, so the UI's Connections page
shows them (secrets masked); deferrable waits are on by default (``deploy/airflow.env``).
"""

from __future__ import annotations

import shutil
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
    write_metadata,
)
from amlretrain_devstack.airflow_settings import SETTINGS_FILE
from amlretrain_devstack.errors import DevStackError
from amlretrain_devstack.procs import LOOPBACK, free_port

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

KIND = "local"
#: The UI's port when it is free (else any free port).
PREFERRED_PORT = 28080
HOW = "airflow standalone (api-server, scheduler, dag-processor, triggerer), LocalExecutor, SQLite"


def start_local_airflow(
    stack_dir: Path,
    *,
    dag_folders: Sequence[Path] = (Path("dags"),),
    settings_file: Path = SETTINGS_FILE,
    overrides: Mapping[str, str] | None = None,
    timeout: float = 300.0,
    port: int | None = PREFERRED_PORT,
) -> AirflowDeployment:
    """Start ``airflow standalone`` on the running stack in ``stack_dir``, or reuse the running one.

    :param stack_dir: the stack directory (the stack must be up).
    :param dag_folders: the DAG folders (the first is ``[core] dags_folder``).
    :param settings_file: the shared settings (``deploy/airflow.env``).
    :param overrides: more Airflow settings, applied last (e.g. a faster scheduler heartbeat in tests).
    :param timeout: seconds to wait until every part is healthy.
    :param port: the UI's port when it is free, else any free port (``None``: any free port, e.g. when
        several start at once and would all find the preferred one free).
    :return: the running deployment.
    :raises DevStackError: if the stack is down or Airflow does not come up (nothing is left running).
    """
    stack_info = running_stack_info(stack_dir)
    previous = reusable_deployment(stack_dir, KIND)
    if previous is not None:
        return previous
    home = prepare_home(stack_dir, KIND, keep_metadata=True, grace_seconds=5.0)
    port = free_port(port)
    env = deployment_env(
        stack_info,
        home,
        settings_file=settings_file,
        api_port=port,
        dag_folders=dag_folders,
        kind_settings={
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        },
        overrides=overrides,
    )
    deployment = AirflowDeployment(kind=KIND, url=f"http://{LOOPBACK}:{port}", home=home, env=env)
    with stopped_on_failure(stack_dir, deployment):
        deployment.airflow("db", "migrate")
        write_metadata(deployment, stack_info)
        airflow = shutil.which("airflow", path=env["PATH"])
        if airflow is None:
            raise DevStackError(
                f"No `airflow` command next to {env['PATH'].split(':')[0]}: run `make setup`."
            )
        deployment.start_part("standalone", [airflow, "standalone"])
        save_deployment(stack_dir, deployment)
        wait_for_api(deployment, timeout, log_name="standalone")
    return deployment
