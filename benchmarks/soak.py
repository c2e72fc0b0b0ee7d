#!/usr/bin/env python
"""
``make soak``: the demo, 100 full pipeline runs with 20 % of every Azure ML call failing, then a secret scan.

First runs ``scripts/demo.py`` on a stack of its own (``--no-demo`` skips it) and keeps what it printed and
logged. Then starts its own stack (Azurite + emulator) and Airflow home (SQLite) in a temporary directory, runs the
example DAG ``amlretrain_retrain_and_promote`` with ``dag.test()`` in this process (see
:mod:`amlretrain_devstack.soak`), checks the invariants, and searches every log, the whole metadata DB
and every raised message for every secret of the stack (:mod:`amlretrain_devstack.secret_scan`), and the
demo's output, logs and metadata DB for the secrets of the demo's stack.
Writes ``benchmarks/results/soak.json``; exits 1 when an invariant broke or a secret was found.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "scripts"))
from demo import configure_airflow, output_to, seeded_dates  # noqa: E402 (scripts/demo.py: the demo's own helpers)
from results_file import ResultsFile, benchmark_parser  # noqa: E402 (benchmarks/, beside this script)

DAG_FILE = REPO_ROOT / "dags/amlretrain_retrain_and_promote.py"


def run_demo(work: Path) -> dict[str, Any]:
    """
    Run ``make demo``'s script on a stack in ``work``, stop that stack, and scan everything it left for its secrets.

    :param work: An empty directory.
    :return: The demo's exit code, how much was searched and the hits.
    """
    import subprocess

    from amlretrain_devstack import load_stack, stop_stack
    from amlretrain_devstack.secret_scan import find_secrets, scan_files, scan_sqlite, stack_secrets

    stack_dir = work / "stack"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "IDENTITY_"))}
    began = time.monotonic()
    demo = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts/demo.py"), "--stack-dir", str(stack_dir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    seconds = time.monotonic() - began
    try:
        secrets = stack_secrets(load_stack(stack_dir))
    finally:
        stop_stack(stack_dir)
    hits = find_secrets(demo.stdout + demo.stderr, "demo output", secrets)
    files, file_hits = scan_files([*sorted(stack_dir.glob("demo-*.log")), stack_dir / "airflow"], secrets)
    db = stack_dir / "airflow" / "airflow.db"
    rows, db_hits = scan_sqlite(db, secrets) if db.exists() else (0, [])
    return {
        "exit_code": demo.returncode,
        "seconds": round(seconds, 1),
        "output_tail": demo.stdout[-600:] if demo.returncode else "",
        "secrets_searched": sorted(secrets),
        "files_searched": files,
        "db_rows_searched": rows,
        "hits": [hit.__dict__ for hit in hits + file_hits + db_hits],
    }


def main() -> int:
    """Run the soak and the scan; exit 0 when every invariant held and no secret was found."""
    parser = benchmark_parser(__doc__, "soak")
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--failure-rate", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=20261201, help="seed of the emulator's fault draws")
    parser.add_argument("--keep", action="store_true", help="keep the temporary stack and Airflow home")
    parser.add_argument("--no-demo", action="store_true", help="skip the demo and its secret scan")
    parser.add_argument(
        "--stop-after",
        type=float,
        help="seconds after which no new run starts (the report says how many ran)",
    )
    args = parser.parse_args()
    results_file = ResultsFile(args.output)
    work = Path(tempfile.mkdtemp(prefix="amlretrain-soak-"))
    demo = None
    if not args.no_demo:
        print("Demo (make demo's script) on a stack of its own ...", flush=True)
        demo = run_demo(work / "demo")
        print(
            f"   exit {demo['exit_code']} in {demo['seconds']} s, secret hits: {len(demo['hits'])}",
            flush=True,
        )

    from amlretrain_devstack import running_stack

    configure_airflow(work / "airflow")
    db_path = work / "airflow" / "airflow.db"
    log_file = work / "airflow-output.log"
    began = time.monotonic()
    with running_stack(work / "stack", {"job_concurrency": 2, "min_job_seconds": 0.5}) as stack:
        from amlretrain_devstack.dagrun import load_dag_file, migrate_metadata_db
        from amlretrain_devstack.secret_scan import scan_files, scan_sqlite, stack_secrets
        from amlretrain_devstack.soak import REQUEST_TIMEOUT_SECONDS, run_soak, soak_connection_env

        assert stack.emulator_url, "the stack has no emulator"
        os.environ.update(soak_connection_env(stack.connection_env(), REQUEST_TIMEOUT_SECONDS))
        migrate_metadata_db()
        dates = seeded_dates(stack.seed)

        console = os.fdopen(os.dup(2), "w")  # stays on the terminal while fd 2 goes to the log

        def progress(run: Any) -> None:
            print(
                f"run {run.index:3d} {run.logical_date} {'backfill' if run.backfill else 'newest  '} "
                f"{'deferrable' if run.deferrable else 'sync      '} {run.state:8s} promote={run.promotion} "
                f"retried={run.retried_tasks} {run.seconds:.1f} s",
                file=console,
                flush=True,
            )

        print(
            f"Soak: {args.runs} runs, {args.failure_rate:.0%} of Azure ML calls failing ({work})", flush=True
        )
        with output_to(log_file):
            report = run_soak(
                stack.emulator_url,
                load_dag_file(DAG_FILE),
                dates,
                args.runs,
                rate=args.failure_rate,
                random_seed=args.seed,
                progress=progress,
                stop_after_seconds=args.stop_after,
            )
        secrets = stack_secrets(stack.info)
        files, file_hits = scan_files([log_file, work / "airflow"], secrets)
        rows, db_hits = scan_sqlite(db_path, secrets)
        report["secret_scan"] = {
            "secrets_searched": sorted(secrets),
            "shapes_searched": ["SAS signature", "bearer token", "account key"],
            "files_searched": files,
            "db_rows_searched": rows,
            "hits": [hit.__dict__ for hit in file_hits + db_hits],
        }
    report["demo"] = demo
    report["total_seconds"] = round(time.monotonic() - began, 1)
    summary = {k: v for k, v in report.items() if k not in ("details", "fault_rules", "demo")}
    summary["demo"] = {k: v for k, v in (demo or {}).items() if k != "secrets_searched"}
    results_file.write(report, shown=summary)
    if not args.keep:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    demo_failed = demo is not None and (demo["exit_code"] != 0 or demo["hits"])
    return 1 if report["problems"] or report["secret_scan"]["hits"] or demo_failed else 0


if __name__ == "__main__":
    sys.exit(main())
