"""
Benchmark: N endpoints retrained, gated and promoted in one DAG run on a real local Airflow.

``python benchmarks/fan_out.py --endpoints 200`` starts its own stack (Azurite + emulator, ``--job-concurrency``
BES jobs at once, each at least ``--job-seconds``) and a real ``airflow standalone`` (LocalExecutor, SQLite, the
devstack's ``start_local_airflow``) in a temporary directory, uploads one training blob per endpoint and
creates the endpoints on the classic predictive web service, then triggers one run of
``benchmarks/fan_out_dag.py`` (retrain with deferrable waits >> evaluate >> promote, per endpoint) and waits.

It reports the DAG run's wall time (queued to end) against the emulator's own job time at the same
concurrency (first job start to last job end, from ``/_emulator/jobs``), the overhead
``(DAG wall - job span) / job span``, per-phase counts (task instances, tries, deferrals), CPU seconds of every
Airflow part and of the emulator, the machine's load, and which model every endpoint serves afterwards (all N
must be promoted: a count from the emulator's records, not a timing). A timeline is sampled every
``--sample-seconds`` for ``benchmarks/report.py``'s plot. Writes ``benchmarks/results/fan_out.json``; exits 1
when the run failed or an endpoint was not promoted. Nothing here asserts a timing.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import fan_out_measures as measures  # benchmarks/, beside this script
from fan_out_dag import (
    DAG_ID,
    DATA_CONTAINER,
    END_FROM_TRIGGER_ENV,
    ENDPOINTS_ENV,
    MAX_POLL_SECONDS_ENV,
    POLL_SECONDS_ENV,
    data_blob,
    endpoint_name,
)
from results_file import ResultsFile, benchmark_parser

if TYPE_CHECKING:
    import argparse

    from tests.integration.airflow_support import AirflowClient

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
DAG_FILE = BENCH_DIR / "fan_out_dag.py"
#: Task states sampled for the timeline (the run's task instances in each).
SAMPLED_STATES = ("scheduled", "queued", "running", "deferred", "success")
#: The parts ``airflow standalone`` starts, as their command lines name them.
PARTS = ("api-server", "api_server", "dag-processor", "dag_processor", "triggerer", "scheduler")
#: Task runners patient with an API server that 2 busy cores slow down (as the suite's local Airflow is: the
#: execution API's default 5 s timeout and the settings file's 120 s without a heartbeat fail tasks for no reason
#: of their own).
#: What the task runner logs when a task defers (checked in Airflow 3.3.2's task logs).
DEFERRED_MARK = "Pausing task as DEFERRED"
#: LocalExecutor workers forked from the scheduler, as Airflow does unless told otherwise (deploy/airflow.env
#: starts them from a forkserver that preloads airflow_provider_amlretrain.worker_preload).
PLAIN_FORK_WORKERS = {
    "AIRFLOW__SCHEDULER__MP_START_METHOD": "fork",
    "AIRFLOW__SCHEDULER__MP_FORKSERVER_PRELOAD": "",
}
#: Logged once each time a worker starts a task process (a try, or a resumption after a deferral).
WORKER_START_MARK = "Worker startup parse complete"
#: Seconds a SQLite connection waits for a lock (the driver's default is 5).
SQLITE_BUSY_SECONDS = 60
#: Seconds the scheduler may be reported unhealthy before the benchmark gives up on the run.
UNHEALTHY_PATIENCE = 120
PATIENT_TASKS = {
    "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "60",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "300",
}


# -- preparing the stack ------------------------------------------------------------------------------


def upload_training_data(stack: Any, endpoints: list[str]) -> list[str]:
    """
    Give every endpoint its own training blob: a copy of one of the seed's three newest binary partitions.

    :param stack: The running stack.
    :param endpoints: The endpoint names.
    :return: The seed partitions copied, in turn.
    """
    from azure.storage.blob import BlobServiceClient
    from demo import seeded_dates  # scripts/demo.py

    sources = [f"binary/dt={date}/train.csv" for date in seeded_dates(stack.seed)[-3:]]
    client = BlobServiceClient.from_connection_string(stack.connection_string)
    container = client.get_container_client(DATA_CONTAINER)
    contents = [container.download_blob(name).readall() for name in sources]
    for index, endpoint in enumerate(endpoints):
        container.upload_blob(data_blob(endpoint), contents[index % len(contents)], overwrite=True)
    return sources


def create_endpoints(web_service_id: str, endpoints: list[str]) -> None:
    """
    Create the endpoints on the predictive web service (each serves the seed's model until promoted).

    :param web_service_id: The classic predictive web service.
    :param endpoints: The endpoint names.
    """
    from airflow_provider_amlretrain.hooks.classic_management import AzureMLClassicManagementHook

    hook = AzureMLClassicManagementHook("azureml_management")
    for endpoint in endpoints:
        hook.create_endpoint(web_service_id, endpoint, description="fan-out benchmark")


# -- measuring processes -----------------------------------------------------------------------------


def part_name(process: Any) -> str:
    """
    Which part of ``airflow standalone`` a direct child of it is (``scheduler``, ``triggerer``...).

    :param process: A ``psutil.Process``.
    """
    command = " ".join(process.cmdline())
    for part in PARTS:
        if part in command:
            return part.replace("_", "-")
    return f"pid-{process.pid}"


def airflow_cpu(leader: int) -> dict[str, float]:
    """
    CPU seconds (user + system) of every part of the deployment so far, with its ended descendants.

    Each part is the subtree of one child of ``airflow standalone`` (the scheduler's holds the LocalExecutor
    workers and every task process they ran, counted when reaped); ``scheduler-own`` is the scheduler process
    alone.

    :param leader: The pid of ``airflow standalone`` (its session's leader).
    """
    import psutil

    from amlretrain_devstack.sessions import session_members

    totals: Counter[str] = Counter()
    for pid in session_members(leader):
        try:
            process = psutil.Process(pid)
            times = process.cpu_times()
            own = times.user + times.system
            reaped = times.children_user + times.children_system
            top = process
            while top.pid != leader and top.ppid() not in (leader, 0, 1):
                top = psutil.Process(top.ppid())
            part = "standalone" if top.pid == leader else part_name(top)
        except psutil.Error:
            continue  # ended meanwhile: its parent counts it once reaped
        totals[part] += own + reaped
        if part == "scheduler" and process.pid == top.pid:
            totals["scheduler-own"] += own
    return {name: round(seconds, 2) for name, seconds in sorted(totals.items())}


def process_cpu(pid: int | None) -> float:
    """
    CPU seconds of one process and its reaped children (0 if it is gone).

    :param pid: The process.
    """
    import psutil

    try:
        times = psutil.Process(pid).cpu_times()
    except (psutil.Error, ValueError):
        return 0.0
    return round(times.user + times.system + times.children_user + times.children_system, 2)


def machine_busy_seconds() -> float:
    """CPU seconds all cores of the machine spent busy since boot (not idle, not waiting on I/O)."""
    import psutil

    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


def session_footprint(leader: int) -> tuple[int, float]:
    """
    The live processes of the deployment and their summed RSS in MB.

    :param leader: The pid of ``airflow standalone``.
    """
    import psutil

    from amlretrain_devstack.sessions import session_members

    members = session_members(leader)
    rss = 0
    for pid in members:
        try:
            rss += psutil.Process(pid).memory_info().rss
        except psutil.Error:
            continue
    return len(members), round(rss / 2**20, 1)


# -- sampling the run ----------------------------------------------------------------------------------


class TimelineSampler(threading.Thread):
    """
    Every ``interval`` seconds: the run's task instances per state (REST counts), the emulator's jobs per
    status, the deployment's process count and RSS, the machine's load and busy cores.

    :param client: A logged-in client of its own (a ``requests`` session is not shared between threads).
    :param run_id: The DAG run.
    :param emulator_url: The emulator.
    :param leader: The pid of ``airflow standalone``.
    :param interval: Seconds between samples.
    :param began: ``time.time()`` the samples are relative to (the trigger).
    """

    def __init__(
        self,
        client: AirflowClient,
        run_id: str,
        emulator_url: str,
        leader: int,
        interval: float,
        began: float,
    ) -> None:
        super().__init__(name="fan-out-sampler", daemon=True)
        self.client, self.run_id, self.emulator_url = client, run_id, emulator_url
        self.leader, self.interval, self.began = leader, interval, began
        self.samples: list[dict[str, Any]] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        """Sample until stopped; a failed sample is skipped (the machine is busy, not the benchmark wrong)."""
        import requests

        busy_before, at_before = machine_busy_seconds(), time.time()
        while not self.stopped.wait(self.interval):
            try:
                states = {
                    state: self.client.api(
                        "GET",
                        f"/dags/{DAG_ID}/dagRuns/{self.run_id}/taskInstances",
                        params={"state": state, "limit": 1},
                    )["total_entries"]
                    for state in SAMPLED_STATES
                }
                health = requests.get(f"{self.emulator_url}/_emulator/health", timeout=30).json()
            except (AssertionError, requests.RequestException, KeyError, ValueError) as exc:
                print(f"   sample skipped: {type(exc).__name__}: {str(exc)[:200]}", flush=True)
                continue
            busy, now = machine_busy_seconds(), time.time()
            processes, rss_mb = session_footprint(self.leader)
            self.samples.append(
                {
                    "t": round(now - self.began, 1),
                    "task_instances": states,
                    "emulator_jobs": health.get("jobs", {}),
                    "airflow_processes": processes,
                    "airflow_rss_mb": rss_mb,
                    "busy_cores": round((busy - busy_before) / max(1e-6, now - at_before), 2),
                    "load_average_1m": round(os.getloadavg()[0], 2),
                }
            )
            busy_before, at_before = busy, now


def wait_for_run(client: AirflowClient, run_id: str, timeout: float) -> dict[str, Any]:
    """
    Wait until the run has ended; give up early when a part of Airflow stays unhealthy (a dead scheduler never
    ends the run).

    :param client: The logged-in client.
    :param run_id: The DAG run.
    :param timeout: Seconds.
    :raises RuntimeError: with what every task was doing, on a timeout or a part that stays unhealthy.
    """
    from amlretrain_devstack.airflow_deployment import unhealthy_parts

    deadline, healthy_at = time.monotonic() + timeout, time.monotonic()
    while True:
        run = client.api("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}")
        if run["state"] in ("success", "failed"):
            return dict(run)
        unhealthy = unhealthy_parts(client.url)
        if not unhealthy:
            healthy_at = time.monotonic()
        problem = None
        if time.monotonic() > deadline:
            problem = f"the run did not end in {timeout:.0f} s"
        elif time.monotonic() - healthy_at > UNHEALTHY_PATIENCE:
            problem = f"{unhealthy or 'the API'} unhealthy for {UNHEALTHY_PATIENCE} s"
        if problem:
            raise RuntimeError(client.diagnosis(DAG_ID, problem))
        time.sleep(5)


# -- after the run -------------------------------------------------------------------------------------


def all_task_instances(client: AirflowClient, run_id: str) -> list[dict[str, Any]]:
    """
    Every task instance of the run (the API pages by at most 100).

    :param client: The logged-in client.
    :param run_id: The DAG run.
    """
    found: list[dict[str, Any]] = []
    while True:
        page = client.api(
            "GET",
            f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances",
            params={"limit": 100, "offset": len(found), "order_by": "id"},
        )
        found.extend(page["task_instances"])
        if not page["task_instances"] or len(found) >= page["total_entries"]:
            return found


def log_marks(log_dir: Path, run_id: str, mark: str) -> Counter[str]:
    """
    How many times each task's log files say ``mark`` (e.g. one line per deferral, or per worker start).

    :param log_dir: The deployment's task log folder (``$AIRFLOW_HOME/logs``).
    :param run_id: The DAG run.
    :param mark: The text of the line counted.
    """
    counts: Counter[str] = Counter()
    for log in log_dir.glob(f"dag_id={DAG_ID}/run_id={run_id}/task_id=*/**/*.log"):
        task = log.relative_to(log_dir).parts[2].removeprefix("task_id=").rsplit(".", 1)[-1]
        counts[task] += log.read_text(errors="replace").count(mark)
    return counts


def _seconds_between(start: str | None, end: str | None) -> float | None:
    return measures.epoch(end) - measures.epoch(start) if start and end else None


def phases(
    task_instances: list[dict[str, Any]], deferred: Counter[str], started: Counter[str]
) -> dict[str, Any]:
    """
    Per task (``plan``, ``retrain``, ``evaluate``, ``promote``): instances, states, tries, deferrals, worker
    starts (tries and resumptions; a task its trigger ended is not resumed), the wait from queued to start
    (not for a resumption), the run time of the last try (first start to end, a deferred wait included) and
    its last queueing to end.

    :param task_instances: The run's task instances (REST).
    :param deferred: Deferrals per task.
    :param started: Worker starts per task.
    """
    by_task: dict[str, list[dict[str, Any]]] = {}
    for ti in task_instances:
        by_task.setdefault(ti["task_id"].rsplit(".", 1)[-1], []).append(ti)
    result = {}
    for task, tis in by_task.items():
        # A task that deferred is queued again when its trigger fires: its queued_when is then after its first
        # start, and queued to end measures the resumption (the wait for a slot and the run after the wait).
        waits = [
            w
            for ti in tis
            if (w := _seconds_between(ti.get("queued_when"), ti.get("start_date"))) is not None and w >= 0
        ]
        last_queued = [
            w for ti in tis if (w := _seconds_between(ti.get("queued_when"), ti.get("end_date"))) is not None
        ]
        runs = [d for ti in tis if (d := ti.get("duration")) is not None]
        result[task] = {
            "task_instances": len(tis),
            "states": dict(Counter(ti["state"] for ti in tis)),
            "tries": sum(int(ti["try_number"]) for ti in tis),
            "retried": sum(1 for ti in tis if int(ti["try_number"]) > 1),
            "deferrals": deferred.get(task, 0),
            "worker_starts": started.get(task, 0),
            "queued_to_start_median_seconds": round(statistics.median(waits), 2) if waits else None,
            "queued_to_start_max_seconds": round(max(waits), 2) if waits else None,
            "last_try_median_seconds": round(statistics.median(runs), 2) if runs else None,
            "last_try_max_seconds": round(max(runs), 2) if runs else None,
            "last_queued_to_end_median_seconds": round(statistics.median(last_queued), 2)
            if last_queued
            else None,
        }
    return result


def run_jobs(emulator_url: str, since: float) -> list[dict[str, Any]]:
    """
    The emulator's records of the BES jobs created since ``since`` (the trigger; the stack is the benchmark's own).

    :param emulator_url: The emulator.
    :param since: ``time.time()`` of the trigger.
    """
    import requests

    return [
        job
        for job in requests.get(f"{emulator_url}/_emulator/jobs", timeout=60).json()["jobs"]
        if job.get("created_at") and measures.epoch(job["created_at"]) >= since - 1
    ]


def detection_lags(
    client: AirflowClient, run_id: str, task_instances: list[dict[str, Any]], jobs: list[dict[str, Any]]
) -> dict[str, Any]:
    """
    From each job's end to its trigger firing: the deferred wait's detection lag, matched by the job id each
    ``retrain`` returned. The trigger fired when ``retrain`` was queued again (queued after its start: resumed
    on a worker) or, when the trigger ended the task (``end_from_trigger``), when it ended.

    :param client: The logged-in client.
    :param run_id: The DAG run.
    :param task_instances: The run's task instances.
    :param jobs: The emulator's records of the run's jobs.
    """
    ended = {job["id"]: measures.epoch(job["ended_at"]) for job in jobs if job.get("ended_at")}
    lags = []
    for ti in task_instances:
        if not ti["task_id"].endswith(".retrain") or ti["state"] != "success" or not ti.get("queued_when"):
            continue
        value = client.api(
            "GET",
            f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{ti['task_id']}/xcomEntries/return_value",
            params={"map_index": ti["map_index"]},
        )["value"]
        job_id = (json.loads(value) if isinstance(value, str) else value).get("job_id")
        if job_id in ended:
            resumed = ti.get("start_date") and measures.epoch(ti["queued_when"]) > measures.epoch(
                ti["start_date"]
            )
            fired = ti["queued_when"] if resumed else ti["end_date"]
            lags.append(measures.epoch(fired) - ended[job_id])
    return measures.spread(lags)


def promotion_check(
    emulator_url: str, web_service_id: str, endpoints: list[str], job_ids: set[str]
) -> dict[str, Any]:
    """
    Which model every endpoint serves now, from the emulator's records: all must serve a model of this run,
    each its own.

    :param emulator_url: The emulator.
    :param web_service_id: The predictive web service.
    :param endpoints: The endpoint names.
    :param job_ids: The BES jobs of the run.
    """
    import requests

    served = {
        entry["endpoint"]: (entry.get("model") or {}).get("job_id")
        for entry in requests.get(f"{emulator_url}/_emulator/endpoints", timeout=60).json()["endpoints"]
        if entry["web_service_id"] == web_service_id
    }
    changes = requests.get(f"{emulator_url}/_emulator/endpoint-changes", timeout=60).json()["changes"]
    promoted = [name for name in endpoints if served.get(name) in job_ids]
    return {
        "endpoints": len(endpoints),
        "promoted": len(promoted),
        "distinct_models_served": len({served[name] for name in promoted}),
        "not_promoted": [name for name in endpoints if name not in promoted],
        "model_changes": sum(1 for change in changes if change["endpoint"] in set(endpoints)),
    }


# -- the benchmark -------------------------------------------------------------------------------------


def airflow_settings(args: argparse.Namespace, home: Path) -> dict[str, str]:
    """
    The settings of the benchmark's Airflow on top of ``deploy/airflow.env``, and the DAG's own variables.

    SQLite waits up to ``SQLITE_BUSY_SECONDS`` for a lock instead of its 5 s: with every task process, the
    scheduler and the API server writing on 2 busy cores, 5 s ran out and the scheduler died ("database is
    locked", seen in a 20-endpoint run).

    :param args: The command line.
    :param home: The deployment's ``AIRFLOW_HOME`` (its metadata DB).
    """
    return {
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db?timeout={SQLITE_BUSY_SECONDS}",
        "AIRFLOW__CORE__PARALLELISM": str(args.parallelism),
        "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": str(args.max_active_tasks),
        **PATIENT_TASKS,
        ENDPOINTS_ENV: str(args.endpoints),
        POLL_SECONDS_ENV: str(args.poll_seconds),
        MAX_POLL_SECONDS_ENV: str(args.max_poll_seconds),
        END_FROM_TRIGGER_ENV: "0" if args.resume_on_worker else "1",
        **(PLAIN_FORK_WORKERS if args.plain_fork_workers else {}),
    }


def run_timeout(args: argparse.Namespace) -> float:
    """
    How long the run may take: ``--timeout``, else a budget that grows with the endpoints and the job waves.

    :param args: The command line.
    """
    if args.timeout:
        return float(args.timeout)
    waves = measures.least_job_seconds(args.endpoints, args.job_concurrency, args.job_seconds)
    return 600.0 + 3 * waves + 20.0 * args.endpoints


def bench_fan_out(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """
    Start everything in ``work``, run the fan-out once, measure, stop everything.

    :param args: The command line.
    :param work: An empty directory.
    """
    (work / "client-home").mkdir()
    os.environ["AIRFLOW_HOME"] = str(work / "client-home")  # this process's Airflow (hooks): nothing kept
    from amlretrain_devstack import running_stack
    from amlretrain_devstack.airflow_deployment import deployment_dir, stop_deployment
    from amlretrain_devstack.airflow_local import KIND, start_local_airflow
    from amlretrain_devstack.connections import airflow_variables
    from tests.integration.airflow_support import AirflowClient

    logging.getLogger("azure").setLevel(logging.WARNING)  # not every storage request at INFO
    dag_folder = work / "dags"
    dag_folder.mkdir()
    shutil.copy(DAG_FILE, dag_folder / DAG_FILE.name)
    endpoints = [endpoint_name(index) for index in range(args.endpoints)]
    config = {"job_concurrency": args.job_concurrency, "min_job_seconds": args.job_seconds}
    with running_stack(work / "stack", config, timeout=120) as stack:
        os.environ.update(stack.connection_env())
        web_service_id = airflow_variables(stack.info)["amlretrain_binary_web_service_id"]
        print(f"Uploading {len(endpoints)} training blobs and creating the endpoints ...", flush=True)
        sources = upload_training_data(stack, endpoints)
        create_endpoints(web_service_id, endpoints)
        print("Starting airflow standalone (LocalExecutor) ...", flush=True)
        started = time.monotonic()
        deployment = start_local_airflow(
            stack.directory,
            dag_folders=[dag_folder],
            settings_file=REPO_ROOT / "deploy/airflow.env",
            overrides=airflow_settings(args, deployment_dir(stack.directory, KIND) / "home"),
            timeout=480,
            port=None,
        )
        try:
            start_seconds = time.monotonic() - started
            leader = deployment.parts["standalone"]
            client, sampler_client = AirflowClient(deployment), AirflowClient(deployment)
            client.login()
            sampler_client.login()
            client.unpause(DAG_ID)
            time.sleep(args.settle_seconds)  # start-up work (parsing, first heartbeats) out of the measure
            cpu_before = airflow_cpu(leader)
            emulator_before = process_cpu(stack.info["emulator"]["pid"])
            azurite_before = process_cpu(stack.info["azurite"]["pid"])
            busy_before, load_before = machine_busy_seconds(), os.getloadavg()
            triggered_at = time.time()
            run_id = client.trigger(DAG_ID)
            print(f"Triggered {run_id}; waiting (at most {run_timeout(args):.0f} s) ...", flush=True)
            sampler = TimelineSampler(
                sampler_client, run_id, str(stack.emulator_url), leader, args.sample_seconds, triggered_at
            )
            sampler.start()
            try:
                run = wait_for_run(client, run_id, run_timeout(args))
            finally:
                sampler.stopped.set()
                sampler.join(timeout=60)
            ended_at = time.time()
            cpu_after = airflow_cpu(leader)
            emulator_cpu = process_cpu(stack.info["emulator"]["pid"]) - emulator_before
            azurite_cpu = process_cpu(stack.info["azurite"]["pid"]) - azurite_before
            busy = machine_busy_seconds() - busy_before
            load_after = os.getloadavg()
            task_instances = all_task_instances(client, run_id)
            deferred = log_marks(deployment.home / "logs", run_id, DEFERRED_MARK)
            started = log_marks(deployment.home / "logs", run_id, WORKER_START_MARK)
            jobs = run_jobs(str(stack.emulator_url), triggered_at)
            lags = detection_lags(client, run_id, task_instances, jobs)
        finally:
            stop_deployment(stack.directory, KIND)
        job_ids = {job["id"] for job in jobs}
        promotion = promotion_check(str(stack.emulator_url), web_service_id, endpoints, job_ids)
    dag_seconds = measures.epoch(run["end_date"]) - measures.epoch(run["queued_at"])
    span = measures.job_span(jobs)
    least = measures.least_job_seconds(args.endpoints, args.job_concurrency, args.job_seconds)
    airflow_cpu_used = measures.cpu_delta(cpu_before, cpu_after)
    run_phases = phases(task_instances, deferred, started)
    executions = sum(p["worker_starts"] for p in run_phases.values())
    wall = ended_at - triggered_at
    return {
        "settings": {
            "endpoints": args.endpoints,
            "emulator_job_concurrency": args.job_concurrency,
            "emulator_min_job_seconds": args.job_seconds,
            "poll_interval_seconds": args.poll_seconds,
            "max_poll_interval_seconds": args.max_poll_seconds,
            "retrain_ends_in_the_triggerer": not args.resume_on_worker,
            "worker_preload": not args.plain_fork_workers,
            "AIRFLOW__CORE__PARALLELISM": args.parallelism,
            "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": args.max_active_tasks,
            "executor": f"LocalExecutor (airflow standalone, SQLite with a {SQLITE_BUSY_SECONDS} s busy timeout)",
            "training_data": f"each endpoint its own blob, a copy of one of {sources}",
        },
        "airflow_start_seconds": round(start_seconds, 1),
        "dag_run": {
            "state": run["state"],
            "queued_at": run["queued_at"],
            "start_date": run["start_date"],
            "end_date": run["end_date"],
            "wall_seconds": round(dag_seconds, 1),
            "queued_to_start_seconds": round(
                measures.epoch(run["start_date"]) - measures.epoch(run["queued_at"]), 1
            ),
        },
        "jobs": {k: v for k, v in span.items() if k not in ("first_started", "last_ended")},
        "job_intervals": [
            [
                round(measures.epoch(job["started_at"]) - triggered_at, 2),
                round(measures.epoch(job["ended_at"]) - triggered_at, 2),
            ]
            for job in jobs
        ],
        "least_job_seconds": least,
        "overhead": round(measures.overhead(dag_seconds, span["span_seconds"]), 3),
        "overhead_against_least": round(measures.overhead(dag_seconds, least), 3),
        "head_seconds": round(span["first_started"] - measures.epoch(run["queued_at"]), 1),
        "tail_seconds": round(measures.epoch(run["end_date"]) - span["last_ended"], 1),
        "detection_lag_seconds": lags,
        "phases": run_phases,
        "task_executions": executions,
        "cpu_seconds": {
            "airflow": airflow_cpu_used,
            "airflow_total": round(sum(v for k, v in airflow_cpu_used.items() if k != "scheduler-own"), 1),
            "emulator": round(emulator_cpu, 1),
            "azurite": round(azurite_cpu, 1),
            "machine_busy": round(busy, 1),
            "machine_busy_cores": round(busy / wall, 2),
            "tasks_per_execution": round(
                (airflow_cpu_used.get("scheduler", 0.0) - airflow_cpu_used.get("scheduler-own", 0.0))
                / max(1, executions),
                2,
            ),
        },
        "cpus": os.cpu_count(),
        "load_average_before": [round(v, 2) for v in load_before],
        "load_average_after": [round(v, 2) for v in load_after],
        "promotion": promotion,
        "timeline": sampler.samples,
        "promote_ends": sorted(
            round(measures.epoch(ti["end_date"]) - triggered_at, 1)
            for ti in task_instances
            if ti["task_id"].endswith(".promote") and ti["state"] == "success" and ti.get("end_date")
        ),
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """
    The benchmark's options.

    :param parser: The parser to extend.
    """
    parser.add_argument("--endpoints", type=int, default=200, help="endpoints retrained in the one run")
    parser.add_argument("--job-seconds", type=float, default=20.0, help="emulator's minimum BES job duration")
    parser.add_argument("--job-concurrency", type=int, default=20, help="emulator's BES jobs running at once")
    parser.add_argument("--parallelism", type=int, default=16, help="AIRFLOW__CORE__PARALLELISM")
    parser.add_argument(
        "--max-active-tasks", type=int, default=16, help="AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG"
    )
    parser.add_argument("--poll-seconds", type=float, default=5.0, help="BES operator's first poll interval")
    parser.add_argument(
        "--max-poll-seconds", type=float, default=30.0, help="BES operator's longest poll interval"
    )
    parser.add_argument(
        "--resume-on-worker",
        action="store_true",
        help="retrain resumes on a worker after its wait (end_from_trigger off, as before issue 12)",
    )
    parser.add_argument(
        "--plain-fork-workers",
        action="store_true",
        help="LocalExecutor workers forked from the scheduler (Airflow's default), not from deploy/airflow.env's "
        "forkserver that preloads airflow_provider_amlretrain.worker_preload",
    )
    parser.add_argument("--sample-seconds", type=float, default=5.0, help="seconds between timeline samples")
    parser.add_argument("--settle-seconds", type=float, default=20.0, help="idle seconds before the trigger")
    parser.add_argument(
        "--timeout", type=float, help="seconds the run may take (default grows with the size)"
    )


def main() -> int:
    """Run the benchmark, write its results file; exit 1 if the run failed or an endpoint was not promoted."""
    parser = benchmark_parser(__doc__, "fan_out")
    add_arguments(parser)
    parser.add_argument("--keep", action="store_true", help="keep the temporary stack and Airflow home")
    args = parser.parse_args()
    results_file = ResultsFile(args.output)
    work = Path(tempfile.mkdtemp(prefix="amlretrain-fan-out-"))
    ok = False
    try:
        results = bench_fan_out(args, work)
        promotion = results["promotion"]
        ok = results["dag_run"]["state"] == "success" and promotion["promoted"] == promotion["endpoints"]
        shown = {k: v for k, v in results.items() if k not in ("timeline", "job_intervals", "promote_ends")}
        results_file.write(results, shown=shown)
    finally:
        if args.keep or not ok:
            print(f"kept {work}", flush=True)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.path.insert(0, str(REPO_ROOT))
    sys.path.insert(0, str(REPO_ROOT / "scripts"))
    sys.exit(main())
