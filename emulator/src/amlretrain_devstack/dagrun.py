"""Run a DAG locally with ``dag.test()`` and collect what happened (for the demo and flow tests)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from datetime import datetime
    from pathlib import Path

    from airflow.sdk import DAG


@dataclass
class DagRunOutcome:
    """
    The result of one local DAG run.

    :param dag_id: The DAG.
    :param run_id: The run.
    :param state: The run's final state.
    :param task_states: Task id to final state (mapped tasks: ``task_id[index]``).
    :param try_numbers: Task id to the try number it ended on.
    :param xcoms: ``(task_id, key)`` to value.
    """

    dag_id: str
    run_id: str
    state: str
    task_states: dict[str, str | None] = field(default_factory=dict)
    try_numbers: dict[str, int] = field(default_factory=dict)
    xcoms: dict[tuple[str, str], Any] = field(default_factory=dict)

    def xcom(self, task_id: str, key: str = "return_value") -> Any:
        """
        One XCom value of the run (``None`` if absent).

        :param task_id: The task.
        :param key: The XCom key.
        """
        return self.xcoms.get((task_id, key))


def migrate_metadata_db() -> None:
    """Create or upgrade the Airflow metadata DB named by the environment (``airflow db migrate``)."""
    result = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"airflow db migrate failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")


def load_dag_file(path: Path, dag_id: str | None = None) -> DAG:
    """
    Import a DAG file and return its DAG (the only one, or ``dag_id``).

    :param path: The DAG file.
    :param dag_id: Which DAG, when the file defines several.
    """
    from airflow.sdk import DAG

    spec = importlib.util.spec_from_file_location(f"amlretrain_dag_{path.stem}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    dags = [v for v in vars(module).values() if isinstance(v, DAG)]
    if dag_id is not None:
        dags = [d for d in dags if d.dag_id == dag_id]
    if len(dags) != 1:
        raise ValueError(f"{path} defines {len(dags)} matching DAGs; name one with dag_id.")
    return dags[0]


def run_dag(
    dag: DAG,
    logical_date: datetime,
    *,
    run_conf: dict[str, Any] | None = None,
    mark_success_pattern: str | None = None,
) -> DagRunOutcome:
    """
    Run ``dag`` for ``logical_date`` in this process (deferred tasks run their trigger inline).

    :param dag: The DAG.
    :param logical_date: The logical date of the run.
    :param run_conf: The run's conf.
    :param mark_success_pattern: Tasks to mark successful without running.
    """
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    run = dag.test(logical_date=logical_date, run_conf=run_conf, mark_success_pattern=mark_success_pattern)
    outcome = DagRunOutcome(dag_id=dag.dag_id, run_id=run.run_id, state=str(run.state))
    with create_session() as session:
        tis = session.scalars(
            select(TaskInstance).where(TaskInstance.dag_id == dag.dag_id, TaskInstance.run_id == run.run_id)
        ).all()
        for ti in tis:
            name = ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"
            outcome.task_states[name] = str(ti.state) if ti.state else None
            outcome.try_numbers[name] = ti.try_number
        # get_many is typed as selecting 1-tuples; scalars() yields the XComModel rows themselves.
        rows = cast(
            "list[XComModel]",
            session.scalars(XComModel.get_many(run_id=run.run_id, dag_ids=dag.dag_id)).all(),
        )
        for row in rows:
            name = row.task_id if row.map_index < 0 else f"{row.task_id}[{row.map_index}]"
            outcome.xcoms[(name, row.key)] = XComModel.deserialize_value(row)
    return outcome
