"""
Benchmarks: import and DAG-parse cost, BES job round trips, and concurrent status polls against the local stack.

Results go to a JSON file (``--output``); nothing here asserts timings. Run with ``make bench``.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# benchmarks/, beside this script
import status_polls
from bench_stack import benchmark_stack
from parse_cost import bytecode_env
from results_file import ResultsFile, benchmark_parser

REPO_ROOT = Path(__file__).resolve().parents[1]

IMPORT_TARGETS = {
    "airflow.sdk (baseline)": "import airflow.sdk",
    "operator module": "import airflow.sdk; import airflow_provider_amlretrain.operators.batch_execution",
    "sensor module": "import airflow.sdk; import airflow_provider_amlretrain.sensors.batch_job",
    "trigger module": "import airflow.sdk; import airflow_provider_amlretrain.triggers.batch_job",
    "example DAG file": (
        "import airflow.sdk, importlib.util; "
        "s = importlib.util.spec_from_file_location('d', 'dags/amlretrain_bes_retrain.py'); "
        "m = importlib.util.module_from_spec(s); s.loader.exec_module(m)"
    ),
}

_MEASURE = (
    "import time, resource; t = time.perf_counter(); {stmt}; "
    "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
)


def _env() -> dict[str, str]:
    env = bytecode_env()
    home = tempfile.mkdtemp(prefix="amlretrain-bench-")
    env.update({"AIRFLOW_HOME": home, "AIRFLOW__CORE__LOAD_EXAMPLES": "False"})
    return env


def _import_once(stmt: str, env: dict[str, str]) -> tuple[float, float]:
    """Seconds and peak RSS (MB) of running ``stmt`` in a fresh interpreter."""
    out = subprocess.run(
        [sys.executable, "-c", _MEASURE.format(stmt=stmt)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return float(out[-2]), int(out[-1]) / 1024


def bench_imports(repeats: int) -> dict[str, Any]:
    """
    Median wall time and peak RSS of importing each target in a fresh interpreter.

    One discarded warm-up round fills the file cache; then the targets take turns, round after round,
    so a slow moment of the machine hits every target alike instead of whichever ran then.
    """
    env = _env()
    for stmt in IMPORT_TARGETS.values():
        _import_once(stmt, env)
    times: dict[str, list[float]] = {name: [] for name in IMPORT_TARGETS}
    rss: dict[str, list[float]] = {name: [] for name in IMPORT_TARGETS}
    for _ in range(repeats):
        for name, stmt in IMPORT_TARGETS.items():
            seconds, megabytes = _import_once(stmt, env)
            times[name].append(seconds)
            rss[name].append(megabytes)
    results: dict[str, Any] = {
        name: {
            "median_seconds": round(statistics.median(times[name]), 3),
            "min_seconds": round(min(times[name]), 3),
            "max_seconds": round(max(times[name]), 3),
            "peak_rss_mb": round(max(rss[name]), 1),
        }
        for name in IMPORT_TARGETS
    }
    base = results["airflow.sdk (baseline)"]["median_seconds"]
    for value in results.values():
        value["over_baseline_seconds"] = round(value["median_seconds"] - base, 3)
    return results


def bench_jobs(jobs: int) -> dict[str, Any]:
    """Submit-to-Finished latency of BES jobs on the emulator, through the provider's hook."""
    with benchmark_stack({"min_job_seconds": 0.0}) as (stack, _, _):
        from airflow_provider_amlretrain.api.polling import JobPollingRules
        from airflow_provider_amlretrain.hooks.studio import AzureMLStudioHook

        hook = AzureMLStudioHook(status_polls.STUDIO_CONN)
        latencies = []
        for index in range(jobs):
            started = time.perf_counter()
            job_id = status_polls.submit_training_job(stack, hook, str(index))
            state = hook.wait_for_job(job_id, JobPollingRules(poll_interval=0.05))
            latencies.append(time.perf_counter() - started)
            assert state.status.is_success, state
        return {
            "jobs": jobs,
            "median_seconds": round(statistics.median(latencies), 3),
            "max_seconds": round(max(latencies), 3),
        }


def main() -> None:
    """Run the benchmarks and write the results file."""
    parser = benchmark_parser(__doc__, "latest")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--jobs", type=int, default=10)
    status_polls.add_arguments(parser)
    args = parser.parse_args()
    results_file = ResultsFile(args.output)
    results = {
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
        },
        "imports": bench_imports(args.repeats),
        "bes_jobs": bench_jobs(args.jobs),
        "status_polls": status_polls.bench_status_polls(args),
    }
    results_file.write(results)


if __name__ == "__main__":
    main()
