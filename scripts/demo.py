#!/usr/bin/env python
"""
``make demo``: start the local Azure world, retrain a model through BES with Airflow, say what happened.

Runs on embedded defaults: Azurite and the AML classic emulator on loopback (``.amlretrain/``),
an Airflow home with a SQLite metadata DB in ``.amlretrain/airflow``, and the example DAG
``dags/amlretrain_bes_retrain.py`` run with ``dag.test()``. The full Airflow log goes to a file.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))


@contextlib.contextmanager
def output_to(path: Path) -> Iterator[None]:
    """Send this process's stdout and stderr (file descriptors included) to ``path``."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with path.open("ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def seeded_dates(seed: dict[str, Any], task: str = "binary") -> list[str]:
    """Dates of the training partitions the emulator's seed uploaded for ``task``."""
    found = set(re.findall(rf"{task}/dt=(\d{{4}}-\d{{2}}-\d{{2}})/", json.dumps(seed)))
    return sorted(found)


def configure_airflow(home: Path) -> None:
    """Point Airflow at a local home with a SQLite DB (before Airflow is imported)."""
    home.mkdir(parents=True, exist_ok=True)
    os.environ["AIRFLOW_HOME"] = str(home)
    os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{home}/airflow.db"
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO_ROOT / "dags")


def main() -> int:
    """Run the demo; exit 0 when the DAG run succeeded."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stack-dir", type=Path, default=REPO_ROOT / ".amlretrain")
    parser.add_argument("--date", help="logical date to retrain for (default: the newest seeded partition)")
    args = parser.parse_args()
    began = time.monotonic()

    from airflow_provider_amlretrain.devstack import start_stack

    print("1. Local Azure world (Azurite + Azure ML classic emulator) ...", flush=True)
    stack = start_stack(args.stack_dir.resolve())
    print(f"   Azurite blob endpoint: {stack.blob_endpoint}")
    print(f"   AML emulator:          {stack.emulator_url}")
    print(f"   addresses and keys:    {stack.stack_file}")

    configure_airflow(args.stack_dir.resolve() / "airflow")
    os.environ.update(stack.connection_env())
    from airflow_provider_amlretrain.devstack.dagrun import load_dag_file, migrate_metadata_db, run_dag

    print("2. Airflow metadata DB (SQLite) ...", flush=True)
    migrate_metadata_db()

    dates = seeded_dates(stack.seed)
    date = args.date or (dates[-1] if dates else None)
    if date is None:
        print("The emulator's seed lists no training partitions; run `make down` and try again.", file=sys.stderr)
        return 2
    logical_date = datetime.fromisoformat(date).replace(tzinfo=timezone.utc)
    dag = load_dag_file(REPO_ROOT / "dags/amlretrain_bes_retrain.py")
    log_file = args.stack_dir.resolve() / f"demo-{time.strftime('%Y%m%dT%H%M%S')}.log"
    print(f"3. Running DAG {dag.dag_id} for {date} (Airflow log: {log_file}) ...", flush=True)
    with output_to(log_file):
        outcome = run_dag(dag, logical_date)

    print(f"   DAG run {outcome.run_id}: {outcome.state}")
    for task_id, state in sorted(outcome.task_states.items()):
        print(f"   - {task_id}: {state} (try {outcome.try_numbers.get(task_id)})")
    report = outcome.xcom("report")
    if outcome.state != "success" or not report:
        print(f"The run did not succeed; see {log_file}.", file=sys.stderr)
        return 1
    print("4. What happened")
    print(f"   BES job id:  {report['job_id']}")
    print(f"   job time:    {report['duration_seconds']} s (submit + start + train + evaluate)")
    print(f"   model:       {report['model_uri']}")
    print("   evaluation (Evaluate Model, held-out split):")
    for name, value in report["metrics"].items():
        print(f"     {name:<28} {value:.4f}")
    print(f"Demo finished in {time.monotonic() - began:.1f} s. The stack keeps running: `make down` stops it.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
