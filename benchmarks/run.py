"""
Benchmarks: import and DAG-parse cost, BES job round trips, and concurrent status polls against the local stack.

Results go to a JSON file (``--output``); nothing here asserts timings. Run with ``make bench``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import status_polls  # benchmarks/status_polls.py, beside this script
from parse_cost import bytecode_env

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
    from amlretrain_devstack import running_stack

    with (
        tempfile.TemporaryDirectory() as tmp,
        running_stack(Path(tmp) / "stack", {"min_job_seconds": 0.0}) as stack,
    ):
        os.environ.update(stack.connection_env())
        os.environ.setdefault("AIRFLOW_HOME", tmp)
        from airflow_provider_amlretrain.api.bes import build_batch_request
        from airflow_provider_amlretrain.api.polling import JobPollingRules
        from airflow_provider_amlretrain.api.references import BlobReference
        from airflow_provider_amlretrain.hooks.studio import AzureMLStudioHook

        service = next(
            s for s in stack.seed["services"] if s.get("kind") == "training" and s.get("task") == "binary"
        )
        hook = AzureMLStudioHook("azureml_train_binary")
        training_blob = service["blobs"][0]["relative_location"]
        latencies = []
        for index in range(jobs):
            body = build_batch_request(
                inputs={service["input_ports"][0]: BlobReference(training_blob, stack.connection_string)},
                outputs={
                    service["model_output"]: BlobReference(
                        f"models/bench/{index}/model.ilearner", stack.connection_string
                    ),
                    service["evaluation_output"]: BlobReference(
                        f"models/bench/{index}/evaluation.csv", stack.connection_string
                    ),
                },
            )
            started = time.perf_counter()
            job_id = hook.submit_job(body)
            hook.start_job(job_id)
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
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "benchmarks/results/latest.json")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--jobs", type=int, default=10)
    status_polls.add_arguments(parser)
    args = parser.parse_args()
    results = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
        },
        "imports": bench_imports(args.repeats),
        "bes_jobs": bench_jobs(args.jobs),
        "status_polls": status_polls.bench_status_polls(args),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
