"""
``make distributed`` for real: PostgreSQL, Redis, CeleryExecutor, api-server, scheduler, dag-processor,
triggerer and two Celery workers as separate processes, on a stack of its own (its faults and its
deployment record stay out of the other tests' way).

- The workers' pool processes (which fork every task process) start with the provider's task-time modules
  loaded (``deploy/airflow.env``'s Celery configuration).
- A REST backfill of the scheduled DAG over three days with deferrable waits: every run succeeds, tasks
  ran on both workers, the waits went through the triggerer, and the endpoint ends on the newest day.
- A worker killed with SIGKILL (its whole session) while a non-deferrable retrain waits: the retry on the
  other worker reattaches to the same BES job (the emulator's job count proves it).
- The triggerer killed with SIGKILL while a deferred retrain waits: a new triggerer takes the trigger over
  and the wait ends on the same job, in the same try.
- The emulator killed and restarted (same port, same state) while a retrain waits in the worker: the
  restarted service still knows the job, the wait ends on it, no second job.
"""

from __future__ import annotations

import signal
import time
from typing import TYPE_CHECKING, Any

import pytest
import requests

from tests.conftest import REPO_ROOT
from tests.integration.airflow_support import AirflowClient, require
from tests.integration.conftest import dump, seeded_dates, stack_with_connections

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

DAG_ID = "amlretrain_retrain_and_promote"
TARGET = "binary-classic-retrained"
WORKER_LOSS_DAG = "amlretrain_worker_loss"
TRIGGERER_LOSS_DAG = "amlretrain_triggerer_loss"
HEARTBEAT_TIMEOUT = 20


@pytest.fixture(scope="module")
def own_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A stack for this module only, its connections in this process's environment meanwhile."""
    from amlretrain_devstack.distributed import missing_prerequisites

    require(missing_prerequisites(), "the distributed deployment test")
    directory = tmp_path_factory.mktemp("distributed") / ".amlretrain"
    with stack_with_connections(directory, {"job_concurrency": 4, "min_job_seconds": 1.0}) as running:
        yield running


@pytest.fixture(scope="module")
def distributed(own_stack: Any) -> Iterator[AirflowClient]:
    from amlretrain_devstack.airflow_deployment import stop_deployment
    from amlretrain_devstack.distributed import KIND, start_distributed_airflow

    started = time.monotonic()
    deployment = start_distributed_airflow(
        own_stack.directory,
        dag_folders=[REPO_ROOT / "dags", REPO_ROOT / "tests/integration/deployment_dags"],
        settings_file=REPO_ROOT / "deploy/airflow.env",
        overrides={
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT),
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
        },
        timeout=600,  # about 2 minutes alone; more beside the other xdist worker's local Airflow on 2 cores
    )
    print(f"distributed deployment up in {time.monotonic() - started:.0f} s")
    try:
        client = AirflowClient(deployment)
        client.login()
        yield client
    finally:
        stop_deployment(own_stack.directory, KIND)


def emulator_jobs(stack: Any) -> list[dict[str, Any]]:
    """Every BES job the emulator has, oldest first."""
    answer = requests.get(f"{stack.emulator_url}/_emulator/jobs", timeout=10)
    answer.raise_for_status()
    return list(answer.json()["jobs"])


def set_faults(stack: Any, faults: dict[str, Any]) -> None:
    """Replace the emulator's fault document."""
    requests.put(f"{stack.emulator_url}/_emulator/faults", json=faults, timeout=10).raise_for_status()


def test_celery_pool_processes_start_with_the_provider_modules_loaded(distributed: AirflowClient) -> None:
    """
    ``deploy/airflow.env``'s Celery configuration: each worker's pool processes, which fork every task process,
    hold what the provider's tasks import (aiohttp's compiled parser is one of its extension modules; a pool
    process of Airflow's default Celery configuration does not map it).
    """
    from pathlib import Path

    from amlretrain_devstack.sessions import session_members

    for worker in ("worker1", "worker2"):
        pool = [
            pid
            for pid in session_members(distributed.deployment.parts[worker])
            if b"ForkPoolWorker" in Path(f"/proc/{pid}/cmdline").read_bytes()
        ]
        assert len(pool) == 2, f"{worker}'s pool: {pool}"  # AIRFLOW__CELERY__WORKER_CONCURRENCY above
        for pid in pool:
            maps = Path(f"/proc/{pid}/maps").read_text()
            assert "aiohttp/_http_parser" in maps, f"{worker}'s pool process {pid} did not preload aiohttp"


def test_backfill_over_three_days_runs_on_both_workers_and_ends_on_the_newest_model(
    distributed: AirflowClient, own_stack: Any
) -> None:
    from airflow_provider_amlretrain.promotion.record import DeploymentRecordStore

    dates = seeded_dates(own_stack.seed)[-3:]
    backfill = {
        "dag_id": DAG_ID,
        "from_date": f"{dates[0]}T00:00:00Z",
        "to_date": f"{dates[-1]}T00:00:00Z",
        "max_active_runs": 3,
        "reprocess_behavior": "none",
    }
    distributed.wait_until_parsed(DAG_ID)
    assert distributed.plan_backfill(backfill) == dates
    distributed.create_backfill(backfill)
    distributed.unpause(DAG_ID)  # after the backfill: see test_standalone_deployment for why

    runs = distributed.wait_for_runs(DAG_ID, len(dates), 480, run_type="backfill")
    assert {r["state"] for r in runs} == {"success"}, distributed.diagnosis(DAG_ID, "a backfill run failed")
    instances = {r["logical_date"][:10]: distributed.task_instances(DAG_ID, r["dag_run_id"]) for r in runs}
    states = {day: {ti["task_id"]: ti["state"] for ti in tis} for day, tis in instances.items()}
    assert all(s["retrain"] == "success" for s in states.values()), dump(states)

    workers = {ti["hostname"] for tis in instances.values() for ti in tis if ti["state"] != "skipped"}
    assert workers == {"worker1", "worker2"}, f"tasks ran on {workers}: {dump(instances)}"

    # Each retrain deferred: its log (the worker's part and the triggerer's, as the UI shows them)
    # has the hand-over to the triggerer and the event the trigger fired there.
    for run in runs:
        log = distributed.task_log(DAG_ID, run["dag_run_id"], "retrain")
        assert "Pausing task as DEFERRED" in log, log[-3000:]
        assert "Trigger fired event" in log, log[-3000:]

    promoted = sorted(day for day, s in states.items() if s["promote"] == "success")
    assert promoted, f"no run promoted a model: {dump(states)}"
    record = DeploymentRecordStore("azurite_default", "deployments").read(TARGET).record
    assert record.pending is None
    assert record.current["data_interval_start"].startswith(dates[-1]), dump(record.current)


def test_retry_after_a_killed_worker_reattaches_to_the_same_job(
    distributed: AirflowClient, own_stack: Any
) -> None:
    day = seeded_dates(own_stack.seed)[-1]
    distributed.wait_for_runs(DAG_ID, 0, 480)  # no other run may submit jobs meanwhile
    jobs_before = len(emulator_jobs(own_stack))
    set_faults(own_stack, {"job_seconds": 45})  # long enough to kill the worker while the job runs
    try:
        distributed.unpause(WORKER_LOSS_DAG)
        run = distributed.api(
            "POST", f"/dags/{WORKER_LOSS_DAG}/dagRuns", json={"logical_date": f"{day}T00:00:00Z", "conf": {}}
        )
        run_id = run["dag_run_id"]
        path = f"/dags/{WORKER_LOSS_DAG}/dagRuns/{run_id}/taskInstances/retrain"
        deadline = time.monotonic() + 240
        while True:
            ti = distributed.api("GET", path)
            # Started means its id is in the task state store: a retry can reattach (a job created but
            # not started is not, by design, and a retry submits a new one).
            started = [job for job in emulator_jobs(own_stack)[jobs_before:] if job["started_at"]]
            if ti["state"] == "running" and started:
                break
            assert time.monotonic() < deadline, distributed.diagnosis(WORKER_LOSS_DAG, "retrain never ran")
            time.sleep(1)
        victim = ti["hostname"]
        assert victim in ("worker1", "worker2"), dump(ti)
        from amlretrain_devstack.sessions import session_members, signal_session

        session = distributed.deployment.parts[victim]
        killed = signal_session(session, signal.SIGKILL)
        assert len(killed) >= 2, f"{victim}'s session held {killed}: the task process should be in it"
        deadline = time.monotonic() + 30
        while session_members(session):
            assert time.monotonic() < deadline, f"{victim} survived SIGKILL"
            time.sleep(0.5)

        runs = distributed.wait_for_runs(WORKER_LOSS_DAG, 1, 300)
    finally:
        set_faults(own_stack, {"rules": [], "fail_jobs": []})
    final = distributed.api("GET", path)
    assert runs[0]["state"] == "success", distributed.diagnosis(WORKER_LOSS_DAG, "the retry did not succeed")
    assert final["try_number"] == 2, dump(final)
    assert final["hostname"] not in (victim, None), f"the retry ran on {final['hostname']}, the dead {victim}"
    new_jobs = emulator_jobs(own_stack)[jobs_before:]
    assert len(new_jobs) == 1, f"the retry submitted a second BES job: {dump(new_jobs)}"
    assert new_jobs[0]["ended_at"], f"the job never ended: {dump(new_jobs)}"


def _start_and_wait_until_waiting(
    distributed: AirflowClient, own_stack: Any, dag_id: str, state: str, jobs_before: int, day: str
) -> tuple[str, dict[str, Any]]:
    """Trigger ``dag_id`` for ``day``; return its run id once ``retrain`` is ``state`` with its job started.

    ``day`` must be one the DAG has no run for yet (a DAG has one run per logical date).
    """
    distributed.unpause(dag_id)
    run = distributed.api(
        "POST",
        f"/dags/{dag_id}/dagRuns",
        json={"dag_run_id": f"crash-{time.time_ns()}", "logical_date": f"{day}T00:00:00Z", "conf": {}},
    )
    path = f"/dags/{dag_id}/dagRuns/{run['dag_run_id']}/taskInstances/retrain"
    deadline = time.monotonic() + 240
    while True:
        ti = distributed.api("GET", path)
        started = [job for job in emulator_jobs(own_stack)[jobs_before:] if job["started_at"]]
        if ti["state"] == state and started:
            return run["dag_run_id"], ti
        assert time.monotonic() < deadline, distributed.diagnosis(dag_id, f"retrain never was {state}")
        time.sleep(1)


def test_a_killed_triggerer_is_replaced_and_the_deferred_wait_ends_on_the_same_job(
    distributed: AirflowClient, own_stack: Any
) -> None:
    import sys

    from amlretrain_devstack.airflow_deployment import save_deployment
    from amlretrain_devstack.sessions import session_members, signal_session

    distributed.wait_for_runs(DAG_ID, 0, 480)
    jobs_before = len(emulator_jobs(own_stack))
    set_faults(own_stack, {"job_seconds": 30})  # the job still runs when the triggerer dies
    try:
        run_id, _ = _start_and_wait_until_waiting(
            distributed,
            own_stack,
            TRIGGERER_LOSS_DAG,
            "deferred",
            jobs_before,
            seeded_dates(own_stack.seed)[-1],
        )
        deployment = distributed.deployment
        session = deployment.parts["triggerer"]
        assert signal_session(session, signal.SIGKILL), "the triggerer's session was empty"
        deadline = time.monotonic() + 30
        while session_members(session):
            assert time.monotonic() < deadline, "the triggerer survived SIGKILL"
            time.sleep(0.5)
        # A new triggerer takes over the triggers of one whose heartbeat stopped (after
        # [triggerer] triggerer_health_check_threshold, 30 s).
        deployment.start_part("triggerer", [sys.executable, "-m", "airflow", "triggerer"])
        save_deployment(own_stack.directory, deployment)
        runs = [r for r in distributed.wait_for_runs(TRIGGERER_LOSS_DAG, 1, 300) if r["dag_run_id"] == run_id]
    finally:
        set_faults(own_stack, {"rules": [], "fail_jobs": []})
    final = distributed.api("GET", f"/dags/{TRIGGERER_LOSS_DAG}/dagRuns/{run_id}/taskInstances/retrain")
    assert runs[0]["state"] == "success", distributed.diagnosis(TRIGGERER_LOSS_DAG, "the wait did not end")
    assert final["try_number"] == 1, f"the task was retried instead of resumed: {dump(final)}"
    new_jobs = emulator_jobs(own_stack)[jobs_before:]
    assert len(new_jobs) == 1, f"a second BES job was submitted: {dump(new_jobs)}"
    assert new_jobs[0]["status"] == "Finished", dump(new_jobs)


def test_an_emulator_restarted_mid_job_keeps_the_job_and_the_wait_ends_on_it(
    distributed: AirflowClient, own_stack: Any
) -> None:
    from amlretrain_devstack import restart_emulator

    distributed.wait_for_runs(DAG_ID, 0, 480)
    jobs_before = len(emulator_jobs(own_stack))
    set_faults(own_stack, {"job_seconds": 30})  # the restart forgets this: the job then starts over at 1 s
    try:
        run_id, _ = _start_and_wait_until_waiting(
            # The day before the newest: the worker-loss test has the newest day's run of this DAG.
            distributed,
            own_stack,
            WORKER_LOSS_DAG,
            "running",
            jobs_before,
            seeded_dates(own_stack.seed)[-2],
        )
        job_id = next(job["id"] for job in emulator_jobs(own_stack)[jobs_before:] if job["started_at"])
        restart_emulator(own_stack)  # SIGKILL: the job is Running on disk, the polls meet a closed port
        runs = [r for r in distributed.wait_for_runs(WORKER_LOSS_DAG, 1, 300) if r["dag_run_id"] == run_id]
    finally:
        set_faults(own_stack, {"rules": [], "fail_jobs": []})
    final = distributed.api("GET", f"/dags/{WORKER_LOSS_DAG}/dagRuns/{run_id}/taskInstances/retrain")
    assert runs[0]["state"] == "success", distributed.diagnosis(WORKER_LOSS_DAG, "the wait did not end")
    new_jobs = emulator_jobs(own_stack)[jobs_before:]
    assert [job["id"] for job in new_jobs] == [job_id], f"the job was lost or doubled: {dump(new_jobs)}"
    assert new_jobs[0]["status"] == "Finished", dump(new_jobs)
    assert final["try_number"] in (1, 2), dump(
        final
    )  # a retry (if the outage outlasted the hook's) reattaches
