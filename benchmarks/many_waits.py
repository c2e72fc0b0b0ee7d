"""
Benchmark: many deferred waits in one triggerer, this provider's trigger against the Http provider's.

``python benchmarks/many_waits.py --waits 1000`` starts the local stack, and for each approach submits and
starts ``--waits`` BES jobs on the emulator and waits for all of them in a fresh interpreter (``waits_client.py``: every trigger's
``run()`` a task of one event loop, as the triggerer's runner does); once every wait runs, it starts the jobs
(``--job-concurrency`` run at once, each at least ``--job-seconds``, so they end spread over time).
Detection lag is the emulator's ``ended_at`` of a job to the moment its trigger event came. Nothing here
asserts a timing.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

# benchmarks/, beside this script
from bench_stack import benchmark_stack
from parse_cost import bytecode_env
from results_file import ResultsFile, benchmark_parser, load_average, percentile
from status_polls import STUDIO_CONN, finished_job, submit_training_job

if TYPE_CHECKING:
    import argparse

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
APPROACHES = ("provider", "http", "aiohttp")
"""This provider's trigger, the Http provider's, and the floor under both (one shared aiohttp session, bare GETs)."""


def http_connection(stack_env: dict[str, str]) -> str:
    """
    The Http provider connection a user would add for the same web service (the API key in a header).

    :param stack_env: The stack's ``AIRFLOW_CONN_*`` variables.
    """
    studio = json.loads(stack_env[f"AIRFLOW_CONN_{STUDIO_CONN.upper()}"])
    url = urlsplit(studio["host"])
    return json.dumps(
        {
            "conn_type": "http",
            "host": url.hostname,
            "port": url.port,
            "schema": url.scheme,
            "extra": {"Authorization": f"Bearer {studio['password']}"},
        }
    )


def run_approach(
    approach: str, stack: Any, env: dict[str, str], args: argparse.Namespace, tmp: Path, warm_up_job: str
) -> dict[str, Any]:
    """
    Submit ``args.waits`` jobs, wait for them with ``approach`` in a fresh interpreter, measure.

    :param approach: ``provider``, ``http`` or ``aiohttp``.
    :param stack: The running stack.
    :param env: The client's environment.
    :param args: The command line.
    :param tmp: A scratch directory.
    :param warm_up_job: An ended job, waited for before the measured waits (it loads the approach's modules).
    """
    import requests

    from airflow_provider_amlretrain.hooks.studio import AzureMLStudioHook

    hook = AzureMLStudioHook(STUDIO_CONN)
    jobs = []
    for index in range(args.waits):
        job_id = submit_training_job(stack, hook, f"waits/{approach}/{index}", start=False)
        jobs.append({"job_id": job_id, "url": hook.job_url(job_id)})
    jobs_file, ready = tmp / f"{approach}-jobs.json", tmp / f"{approach}-ready"
    warm_up = {"job_id": warm_up_job, "url": hook.job_url(warm_up_job)}
    jobs_file.write_text(json.dumps({"warm_up": warm_up, "jobs": jobs}))
    load_before = load_average()
    command = [
        sys.executable,
        str(BENCH_DIR / "waits_client.py"),
        approach,
        str(jobs_file),
        str(args.interval),
    ]
    stdout_file, stderr_file = tmp / f"{approach}-client.out", tmp / f"{approach}-client.err"
    # Files, not pipes: a thousand triggers log, and a full pipe nobody reads yet would block the client.
    with (
        stdout_file.open("w") as stdout,
        stderr_file.open("w") as stderr,
        subprocess.Popen(
            [*command, str(ready)], cwd=REPO_ROOT, env=env, stdout=stdout, stderr=stderr
        ) as client,
    ):
        # The jobs start once every wait is running, so each one ends while its trigger polls.
        while not ready.exists() and client.poll() is None:
            time.sleep(0.2)
        if ready.exists():
            for job in jobs:
                hook.start_job(job["job_id"])
        client.wait()
    if client.returncode != 0:
        raise RuntimeError(f"the {approach} client failed:\n{stderr_file.read_text()[-3000:]}")
    out = subprocess.CompletedProcess(command, client.returncode, stdout_file.read_text(), "")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    ended = {
        job["id"]: datetime.fromisoformat(job["ended_at"]).timestamp()
        for job in requests.get(f"{stack.emulator_url}/_emulator/jobs", timeout=60).json()["jobs"]
        if job.get("ended_at")
    }
    detected = result.pop("detected_at")
    lags = [detected[job_id] - ended[job_id] for job_id in detected if job_id in ended]
    ends = [ended[job["job_id"]] for job in jobs if job["job_id"] in ended]
    result.update(
        {
            "jobs_detected": len(detected),
            "jobs_ended_over_seconds": round(max(ends) - min(ends), 3),
            "detection_lag_median_seconds": round(statistics.median(lags), 3),
            "detection_lag_p95_seconds": round(percentile(lags, 0.95), 3),
            "detection_lag_max_seconds": round(max(lags), 3),
            "load_average_before": load_before,
            "load_average_after": load_average(),
        }
    )
    return result


def bench_many_waits(args: argparse.Namespace) -> dict[str, Any]:
    """
    Both approaches, one after the other, against the same emulator.

    :param args: The command line (``waits``, ``interval``, ``job_concurrency``, ``job_seconds``).
    """
    config = {"min_job_seconds": args.job_seconds, "job_concurrency": args.job_concurrency}
    # Bytecode cached: the Http trigger reloads its response check module on every poll.
    with benchmark_stack(config, bytecode_env()) as (stack, env, tmp):
        env.update(
            {
                "AIRFLOW_CONN_BES_HTTP": http_connection(stack.connection_env()),
                "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(BENCH_DIR), env.get("PYTHONPATH", "")]),
            }
        )
        os.environ.update(env)
        results: dict[str, Any] = {
            "waits": args.waits,
            "poll_interval_seconds": args.interval,
            "emulator_job_concurrency": args.job_concurrency,
            "emulator_min_job_seconds": args.job_seconds,
            "how": "in-process triggerer runner: every trigger's run() a task of one asyncio loop in a fresh "
            "interpreter (what TriggerRunner does); the triggerer's DB and supervisor round trips are left out, "
            "the same for both approaches",
        }
        # Warms the emulator up (its first training imports its libraries); each client's warm-up wait.
        warm_up_job = finished_job(stack)
        for approach in args.approaches:
            results[approach] = run_approach(approach, stack, env, args, tmp, warm_up_job)
        return results


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """
    The benchmark's options.

    :param parser: The parser to extend.
    """
    parser.add_argument("--waits", type=int, default=1000, help="concurrent deferred waits (BES jobs)")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between polls, both approaches")
    parser.add_argument("--job-concurrency", type=int, default=100, help="emulator jobs running at once")
    parser.add_argument("--job-seconds", type=float, default=5.0, help="emulator minimum job duration")
    parser.add_argument("--approaches", nargs="+", default=list(APPROACHES), choices=APPROACHES)


def main() -> None:
    """Run the benchmark and write its results file."""
    parser = benchmark_parser(__doc__, "many_waits")
    add_arguments(parser)
    args = parser.parse_args()
    results_file = ResultsFile(args.output)
    results_file.write(bench_many_waits(args))


if __name__ == "__main__":
    sys.path.insert(0, str(REPO_ROOT))
    main()
