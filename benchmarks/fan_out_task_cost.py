"""
Benchmark: what one task execution of the fan-out costs on the provider's side, per kind of task.

``python benchmarks/fan_out_task_cost.py --endpoints 5`` starts its own stack (Azurite + emulator), gives each
endpoint its training blob and its endpoint as ``benchmarks/fan_out.py`` does, and then runs, for each endpoint,
the four task executions of ``benchmarks/fan_out_dag.py``'s task group (``retrain`` up to its deferral, ``retrain``
resumed after its job ended, ``evaluate``, ``promote``), each in a fresh interpreter that has already imported
``airflow.sdk``, its task runner and supervisor and ``airflow_provider_amlretrain.worker_preload`` (as a task
process forked from the forkserver of ``deploy/airflow.env`` has; ``--no-preload``: without the last, as a task
process of workers forked from the scheduler has). Each child reports the CPU seconds of
its operator module imports and of ``execute`` (or ``execute_complete``), the modules it loaded (the heavy ones
named), its HTTP requests (``requests`` sends, to the emulator and Azurite) and its execution-API round trips
(XCom pushes, task state store reads and writes, counted on stand-ins that a real task sends to the API server).

This is the provider's share only: Airflow's own per-task work (the supervisor, DAG parsing, state updates,
heartbeats, logs) is not in it; ``benchmarks/fan_out.py`` measures the whole. Writes
``benchmarks/results/fan_out_task_cost.json``; nothing here asserts a timing.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
KINDS = ("retrain_start", "retrain_resume", "evaluate", "promote")
PRELOAD_ENV = "AMLRETRAIN_TASK_COST_PRELOADED"
"""``1`` in a child's environment: it imports ``worker_preload`` before it measures."""
#: Libraries whose import a task pays for, named in the results when a task loads them.
HEAVY = (
    "azure.storage.blob",
    "azure.storage.blob.aio",
    "azure.identity",
    "msrest",
    "aiohttp",
    "requests",
    "azure.core",
    "jsonpatch",
    "airflow.providers.microsoft.azure.hooks.wasb",
)
WASB_CONN_ID = "azurite_default"

# -- the child: one task execution ------------------------------------------------------------------


class _Counter:
    """Execution-API round trips a real task would make (XCom pushes, task state store calls)."""

    def __init__(self, store: dict[str, Any]) -> None:
        self.calls: dict[str, int] = {}
        self.store = store
        self.xcom: dict[str, Any] = {}

    def count(self, what: str) -> None:
        self.calls[what] = self.calls.get(what, 0) + 1


def _context(counter: _Counter, run_id: str) -> dict[str, Any]:
    from types import SimpleNamespace

    class Store:
        def get(self, key: str) -> Any:
            counter.count("task_state_store.get")
            return counter.store.get(key)

        def set(self, key: str, value: Any) -> None:
            counter.count("task_state_store.set")
            counter.store[key] = value

        def delete(self, key: str) -> None:
            counter.count("task_state_store.delete")
            counter.store.pop(key, None)

    class Ti:
        stats_tags: dict[str, str] = {}
        try_number = 1

        def xcom_push(self, key: str, value: Any) -> None:
            counter.count("xcom_push")
            counter.xcom[key] = value

    now = datetime.now(UTC)
    return {
        "ti": Ti(),
        "task_state_store": Store(),
        "dag_run": SimpleNamespace(clear_number=0),
        "dag": SimpleNamespace(dag_id="amlretrain_fan_out_bench"),
        "run_id": run_id,
        "data_interval_start": now,
        "data_interval_end": now,
    }


def _operator(kind: str, plan: dict[str, Any], given: dict[str, Any]) -> Any:
    """The operator of one task of ``fan_out_dag.py``'s task group, with its rendered arguments."""
    from datetime import timedelta

    if kind.startswith("retrain"):
        from airflow_provider_amlretrain.operators.batch_execution import AzureMLBatchExecutionOperator

        return AzureMLBatchExecutionOperator(
            task_id="retrain",
            azureml_conn_id="azureml_train_binary",
            global_parameters=plan["global_parameters"],
            outputs=plan["outputs"],
            deferrable=True,
            poll_interval=5.0,
            max_poll_interval=30.0,
            job_timeout=timedelta(hours=3),
        )
    if kind == "evaluate":
        from airflow_provider_amlretrain.operators.evaluation_gate import AzureMLEvaluationGateOperator

        return AzureMLEvaluationGateOperator(
            task_id="evaluate",
            training_result=given["training_result"],
            wasb_conn_id=WASB_CONN_ID,
            deployment_target=plan["target"],
            rules=[
                {"metric": "AUC", "min": 0.9},
                {"metric": "AUC", "compare_to_baseline": True, "tolerance": 0.02},
            ],
        )
    from airflow_provider_amlretrain.operators.update_endpoint_model import AzureMLUpdateEndpointModelOperator

    return AzureMLUpdateEndpointModelOperator(
        task_id="promote",
        deployment_target=plan["target"],
        training_result=given["training_result"],
        gate_result=given["gate_result"],
        training_conn_id="azureml_train_binary",
        wasb_conn_id=WASB_CONN_ID,
        azureml_management_conn_id="azureml_management",
        web_service_id=given["web_service_id"],
        endpoint_name=plan["endpoint"],
        smoke_test_sample=plan["smoke_sample"],
        smoke_test_drop_columns=["label"],
        wait_after_update=0,
        force="False",
        skip_promotion="False",
    )


def child(kind: str, request: dict[str, Any]) -> dict[str, Any]:
    """
    Run one task execution in this (fresh) interpreter and measure it.

    :param kind: One of :data:`KINDS`.
    :param request: The endpoint's plan, the task state store so far, and what earlier tasks returned.
    """
    import resource

    # What a task process forked from an executor's worker has already loaded before its operator runs.
    import airflow.sdk
    import airflow.sdk.execution_time.supervisor
    import airflow.sdk.execution_time.task_runner
    import airflow.sdk.serde  # noqa: F401

    if os.environ.get(PRELOAD_ENV) == "1":  # and what deploy/airflow.env's forkserver preloads for it
        import airflow_provider_amlretrain.worker_preload  # noqa: F401
    import requests
    from airflow.sdk.exceptions import TaskDeferred

    def cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    sends: dict[str, int] = {}
    original_send = requests.Session.send

    def counted_send(self: Any, prepared: Any, **kwargs: Any) -> Any:
        key = f"{prepared.method} {'blob' if '/devstoreaccount1' in prepared.url else 'emulator'}"
        sends[key] = sends.get(key, 0) + 1
        return original_send(self, prepared, **kwargs)

    requests.Session.send = counted_send  # type: ignore[method-assign]
    loaded_before = set(sys.modules)
    counter = _Counter(dict(request["store"]))
    context = _context(counter, request["run_id"])
    began = cpu()
    operator = _operator(kind, request["plan"], request["given"])
    constructed = cpu()
    result: Any = None
    if kind == "retrain_start":
        try:
            operator.execute(context)
        except TaskDeferred as deferred:
            result = {"job_id": deferred.trigger.job_id}
    elif kind == "retrain_resume":
        event = {
            "job_id": request["given"]["job_id"],
            "outcome": "ended",
            "status": "Finished",
            "message": None,
        }
        result = operator.execute_complete(context, event)
    else:
        result = operator.execute(context)
    ended = cpu()
    loaded = set(sys.modules) - loaded_before
    return {
        "kind": kind,
        "cpu_seconds": {
            "operator_import_and_init": round(constructed - began, 4),
            "execute": round(ended - constructed, 4),
            "total": round(ended - began, 4),
        },
        "modules_loaded": len(loaded),
        "heavy_loaded": sorted(m for m in HEAVY if m in loaded),
        "http_requests": dict(sorted(sends.items())),
        "execution_api_calls": dict(sorted(counter.calls.items())),
        "xcom_bytes": {k: len(json.dumps(v, default=str)) for k, v in counter.xcom.items()},
        "result": result,
        "store": counter.store,
    }


# -- the parent: the stack and the four tasks per endpoint ----------------------------------------------


def _run_child(kind: str, request: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", kind],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO_ROOT,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{kind} failed:\n{done.stderr[-4000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _wait_for_job(job_id: str, timeout: float = 300) -> None:
    from airflow_provider_amlretrain.hooks.studio import AzureMLStudioHook

    hook, deadline = AzureMLStudioHook("azureml_train_binary"), time.monotonic() + timeout
    while not hook.get_job(job_id).status.is_terminal:
        if time.monotonic() > deadline:
            raise RuntimeError(f"job {job_id} did not end in {timeout:.0f} s")
        time.sleep(0.5)


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    totals = [r["cpu_seconds"]["total"] for r in runs]
    return {
        "runs": len(runs),
        "cpu_seconds_median": round(statistics.median(totals), 3),
        "cpu_seconds_min": round(min(totals), 3),
        "operator_import_and_init_median": round(
            statistics.median(r["cpu_seconds"]["operator_import_and_init"] for r in runs), 3
        ),
        "execute_median": round(statistics.median(r["cpu_seconds"]["execute"] for r in runs), 3),
        "modules_loaded_median": statistics.median(r["modules_loaded"] for r in runs),
        "heavy_loaded": runs[-1]["heavy_loaded"],
        "http_requests": runs[-1]["http_requests"],
        "execution_api_calls": runs[-1]["execution_api_calls"],
        "xcom_bytes": runs[-1]["xcom_bytes"],
    }


def bench_task_cost(endpoints: int, *, preloaded: bool = True) -> dict[str, Any]:
    """
    Start the stack, run the four task executions of ``endpoints`` endpoints, summarise per kind.

    :param endpoints: How many endpoints (each a run of the four).
    :param preloaded: Whether each child first imports ``worker_preload``, as a task process forked from the
        forkserver of ``deploy/airflow.env`` has.
    """
    sys.path.insert(0, str(BENCH_DIR))
    from bench_stack import benchmark_stack
    from fan_out import create_endpoints, upload_training_data
    from fan_out_dag import DATA_CONTAINER, data_blob, endpoint_name

    from airflow_provider_amlretrain.authoring import training_outputs
    from amlretrain_devstack.connections import airflow_variables

    with benchmark_stack({"job_concurrency": 5, "min_job_seconds": 1.0}) as bench:
        web_service_id = airflow_variables(bench.stack.info)["amlretrain_binary_web_service_id"]
        names = [endpoint_name(index) for index in range(endpoints)]
        upload_training_data(bench.stack, names)
        create_endpoints(web_service_id, names)
        account_url = f"{bench.stack.info['azurite']['blob_endpoint'].rstrip('/')}"
        env = {
            **bench.env,
            "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]),
            PRELOAD_ENV: "1" if preloaded else "0",
        }
        runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in KINDS}
        for endpoint in names:
            blob = data_blob(endpoint)
            plan = {
                "endpoint": endpoint,
                "target": f"binary-classic-{endpoint}",
                "global_parameters": {"Data URI": f"{account_url}/{DATA_CONTAINER}/{blob}"},
                "outputs": training_outputs(WASB_CONN_ID, "models", f"fan-out/{endpoint}/task-cost"),
                "smoke_sample": f"{DATA_CONTAINER}/{blob}",
            }
            request: dict[str, Any] = {"plan": plan, "store": {}, "run_id": "task-cost", "given": {}}
            for kind in KINDS:
                report = _run_child(kind, request, env)
                runs[kind].append(report)
                request["store"] = report["store"]
                if kind == "retrain_start":
                    request["given"]["job_id"] = report["result"]["job_id"]
                    _wait_for_job(report["result"]["job_id"])
                elif kind == "retrain_resume":
                    request["given"]["training_result"] = report["result"]
                elif kind == "evaluate":
                    request["given"].update(gate_result=report["result"], web_service_id=web_service_id)
                elif report["result"]["outcome"] != "deployed":
                    raise RuntimeError(f"{endpoint} was not promoted: {report['result']}")
    per_kind = {kind: _summary(reports) for kind, reports in runs.items()}
    return {
        "when": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "endpoints": endpoints,
        "worker_preload": preloaded,
        "per_kind": per_kind,
        "cpu_seconds_per_endpoint_median": round(sum(k["cpu_seconds_median"] for k in per_kind.values()), 3),
        "load_average": os.getloadavg(),
    }


def main() -> int:
    """Run the benchmark (or, with ``--child KIND``, one task execution read from stdin)."""
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        print(json.dumps(child(sys.argv[2], json.loads(sys.stdin.read())), default=str))
        return 0
    sys.path.insert(0, str(BENCH_DIR))
    from results_file import ResultsFile, benchmark_parser

    parser = benchmark_parser(__doc__, "fan_out_task_cost")
    parser.add_argument("--endpoints", type=int, default=5, help="endpoints, each a run of the four tasks")
    parser.add_argument(
        "--no-preload",
        action="store_true",
        help="children import the provider's modules themselves (workers not started by the preloading forkserver)",
    )
    args = parser.parse_args()
    results = bench_task_cost(args.endpoints, preloaded=not args.no_preload)
    ResultsFile(args.output).write(results, shown=results)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO_ROOT))
    sys.path.insert(0, str(REPO_ROOT / "scripts"))
    sys.exit(main())
