#!/usr/bin/env python
"""
``make demo``: start the local Azure world, retrain, gate and promote a model with Airflow, say what happened.

Runs on embedded defaults: Azurite and the AML classic emulator on loopback (``.amlretrain/``),
an Airflow home with a SQLite metadata DB in ``.amlretrain/airflow``, and the example DAG
``dags/amlretrain_retrain_and_promote.py`` run with ``dag.test()``: retrain through BES, gate on
the Evaluate Model metrics against the production model, PATCH the model into a classic endpoint,
smoke-test it. The full Airflow log goes to a file.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
ENDPOINT = "retrained"


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
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
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
        print(
            "The emulator's seed lists no training partitions; run `make down` and try again.",
            file=sys.stderr,
        )
        return 2
    predictions_before = predict(stack.seed, ENDPOINT)
    logical_date = datetime.fromisoformat(date).replace(tzinfo=UTC)
    dag = load_dag_file(REPO_ROOT / "dags/amlretrain_retrain_and_promote.py")
    log_file = args.stack_dir.resolve() / f"demo-{time.strftime('%Y%m%dT%H%M%S')}.log"
    print(f"3. Running DAG {dag.dag_id} for {date} (Airflow log: {log_file}) ...", flush=True)
    with output_to(log_file):
        outcome = run_dag(dag, logical_date)

    print(f"   DAG run {outcome.run_id}: {outcome.state}")
    for task_id in ("wait_for_training_data", "retrain", "evaluate", "promote"):
        print(f"   - {task_id}: {outcome.task_states.get(task_id)} (try {outcome.try_numbers.get(task_id)})")
    retrain = outcome.xcom("retrain")
    if outcome.state != "success" or not retrain:
        print(f"The run did not succeed; see {log_file}.", file=sys.stderr)
        return 1
    decision = outcome.xcom("evaluate", "gate_decision") or {}
    promotion = outcome.xcom("promote")

    print("4. Retraining (BES)")
    print(f"   job id:      {retrain['job_id']}")
    print(f"   job time:    {retrain['duration_seconds']} s (start, queue, train, evaluate)")
    print(f"   model:       {retrain['outputs']['output1']['uri']}")
    print(
        "5. Evaluation gate (Evaluate Model on a held-out split; production values from the deployment record)"
    )
    baseline = decision.get("baseline_metrics") or {}
    for name, value in (decision.get("metrics") or {}).items():
        if name in ("Positive Label", "Negative Label"):
            continue
        before = f"   (production {baseline[name]:.4f})" if name in baseline else ""
        print(f"     {name:<22} {value:>10.4f}{before}")
    for verdict in decision.get("verdicts", []):
        print(f"   {'PASS' if verdict['passed'] else 'FAIL'}  {verdict['reason']}")
    print(f"   decision:    {'promote' if decision.get('promote') else 'keep the production model'}")
    print("6. Promotion to the classic endpoint")
    if promotion and promotion.get("outcome") == "deployed":
        print(f"   endpoint {ENDPOINT!r} now serves {promotion['model_uri']}")
        print(f"   (previously {promotion['previous_model_uri']}); smoke test passed")
    else:
        print(f"   not promoted ({outcome.task_states.get('promote')}); the endpoint keeps its model")
    predictions_after = predict(stack.seed, ENDPOINT)
    print("7. Predictions for 5 sample rows (Scored Probabilities)")
    print(f"   before: {predictions_before}")
    print(f"   after:  {predictions_after}")
    print(
        f"Demo finished in {time.monotonic() - began:.1f} s. The stack keeps running: `make down` stops it."
    )
    return 0


def predict(seed: dict[str, Any], endpoint: str) -> list[str]:
    """What ``endpoint`` (or, before it exists, the default endpoint) predicts for the sample rows."""
    from airflow_provider_amlretrain.hooks.classic_management import AzureMLClassicManagementHook
    from airflow_provider_amlretrain.promotion.smoke_test import load_sample

    training = next(s for s in seed["services"] if s["kind"] == "training" and s["task"] == "binary")
    web_service = next(s for s in seed["services"] if s["kind"] == "predictive" and s["task"] == "binary")
    hook = AzureMLClassicManagementHook("azureml_management")
    sample = load_sample("azurite_default", training["sample_blob"], max_rows=5)
    found = hook.find_endpoint(web_service["web_service_id"], endpoint) or hook.get_endpoint(
        web_service["web_service_id"], web_service["endpoint_name"]
    )
    scores = hook.score(found, input_name="input1", columns=sample.columns, rows=sample.rows)
    return [f"{float(p):.3f}" for p in scores.column("Scored Probabilities")]


if __name__ == "__main__":
    sys.exit(main())
