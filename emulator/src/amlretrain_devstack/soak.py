"""Fault soak: many full pipeline runs while a share of every Azure ML call fails, then check the invariants.

Each run is the example DAG ``amlretrain_retrain_and_promote`` (wait for data, retrain through BES,
gate on Evaluate Model, promote to the classic endpoint ``retrained``, smoke-test) run with
``dag.test()`` in this process (:func:`~amlretrain_devstack.dagrun.run_dag`: the same operator,
hook, trigger and sensor code a worker runs; one process so that 100 runs take minutes, not hours).
Runs alternate between sync waits and deferrable waits of ``retrain`` (the trigger runs inline). Most runs train the
newest seeded day (each at a later time of that day, so each has a newer data version); every fifth
(the second, the seventh...) is a backfill of an older day, which must never replace a newer model.
The same code soaks another DAG with the same task ids (``retrain``, ``evaluate``, ``promote``) given its
run conf and endpoint, as the small soak of the test suite does.

The emulator fails a share of every Azure ML request (:func:`fault_document`): 429, 503
``RequestThrottled``, connections reset before the service sees the request, requests that time out,
and answers lost after the service acted. Azurite (storage) is not faulted.

What is checked afterwards (:func:`check_soak`):

- every run succeeded;
- exactly one BES job was started per run, and it is the job the run's ``retrain`` task returned;
- the endpoint's full model history (the emulator records every change) only ever moves to a model
  whose gate passed and whose data version is not older than the model it replaced, or back to the
  model served before (a rollback).
"""

from __future__ import annotations

import json
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from airflow.sdk import DAG

    from amlretrain_devstack.dagrun import DagRunOutcome

#: The faults, in equal shares of the failure rate.
FAULT_KINDS: tuple[dict[str, Any], ...] = (
    {"status": 429, "retry_after": 1},
    {"status": 503, "code": "RequestThrottled", "retry_after": 1},
    {"drop_connection": True, "when": "before"},
    {"delay_seconds": "timeout"},  # replaced by the client's request timeout plus one second
    {"drop_connection": True, "when": "after"},
)
#: The client's per-request timeout during a soak (connection extra ``request_timeout``), so timeouts are quick.
REQUEST_TIMEOUT_SECONDS = 2.0
DAG_ID = "amlretrain_retrain_and_promote"
ENDPOINT = "retrained"


def fault_document(
    rate: float, random_seed: int, request_timeout: float = REQUEST_TIMEOUT_SECONDS
) -> dict[str, Any]:
    """
    Emulator fault rules that fail ``rate`` of every Azure ML request, spread evenly over :data:`FAULT_KINDS`.

    Rules are tried in order and a request a rule spares goes on to the next, so rule ``i`` of ``n``
    has the chance ``(rate / n) / (1 - i * rate / n)``: each kind then hits ``rate / n`` of the requests.

    :param rate: The share of requests to fail (0 < rate < 1).
    :param random_seed: Seed of the emulator's draws.
    :param request_timeout: The client's per-request timeout (a delay fault lasts one second longer).
    """
    if not 0 < rate < 1:
        raise ValueError(f"the failure rate must be between 0 and 1, not {rate}")
    share = rate / len(FAULT_KINDS)
    rules = []
    for index, kind in enumerate(FAULT_KINDS):
        rule = dict(kind)
        if rule.get("delay_seconds") == "timeout":
            rule["delay_seconds"] = request_timeout + 1
        rule["probability"] = round(share / (1 - index * share), 6)
        rules.append(rule)
    return {"rules": rules, "random_seed": random_seed}


def soak_connection_env(connection_env: Mapping[str, str], request_timeout: float) -> dict[str, str]:
    """
    The stack's Airflow connections with ``request_timeout`` set on every Azure ML connection.

    :param connection_env: ``AIRFLOW_CONN_*`` variables (see :meth:`~amlretrain_devstack.stack.Stack.connection_env`).
    :param request_timeout: Seconds.
    """
    env = dict(connection_env)
    for name, value in connection_env.items():
        if not name.startswith("AIRFLOW_CONN_AZUREML"):
            continue
        connection = json.loads(value)
        connection["extra"] = {**(connection.get("extra") or {}), "request_timeout": request_timeout}
        env[name] = json.dumps(connection)
    return env


@dataclass
class SoakRun:
    """
    One pipeline run of the soak and what it left behind.

    :param index: Its number (0-based).
    :param logical_date: ISO logical date.
    :param backfill: Whether it trained an older day than the newest.
    :param deferrable: Whether its waits were deferred.
    :param state: The run's final state.
    :param task_states: Task id to final state.
    :param retried_tasks: Tasks that needed more than one try.
    :param job_id: The BES job its ``retrain`` task returned.
    :param model: ``container/blob`` of the model it trained.
    :param gate_passed: The gate's decision (``None``: the gate did not decide).
    :param promotion: What the promotion did (``deployed``, ``stale``, ``skipped``...).
    :param data_version: The data version of its model (ISO), when the promotion step computed one.
    :param seconds: Wall time of the run.
    """

    index: int
    logical_date: str
    backfill: bool
    deferrable: bool
    state: str = ""
    task_states: dict[str, str | None] = field(default_factory=dict)
    retried_tasks: list[str] = field(default_factory=list)
    job_id: str | None = None
    model: str | None = None
    gate_passed: bool | None = None
    promotion: str | None = None
    data_version: str | None = None
    seconds: float = 0.0


def soak_plan(dates: list[str], runs: int) -> list[tuple[datetime, bool, bool]]:
    """
    ``(logical_date, backfill, deferrable)`` of each run: the newest day at later and later times, every fifth
    run (from the second) an older day, deferrable waits on odd runs.

    :param dates: The seeded days (ISO dates), oldest first; at least two.
    :param runs: How many runs.
    """
    if len(dates) < 2:
        raise ValueError("the soak needs at least two seeded days (the newest, and older ones to backfill)")
    newest = datetime.fromisoformat(dates[-1]).replace(tzinfo=UTC)
    older = [datetime.fromisoformat(day).replace(tzinfo=UTC) for day in dates[:-1]]
    plan = []
    for index in range(runs):
        if index % 5 == 1:
            plan.append((older[(index // 5) % len(older)], True, index % 2 == 1))
        else:
            plan.append((newest + timedelta(minutes=index), False, index % 2 == 1))
    return plan


def summarize_run(
    index: int, plan: tuple[datetime, bool, bool], outcome: DagRunOutcome, seconds: float
) -> SoakRun:
    """
    What one run left behind, from its task states and XComs.

    :param index: The run's number.
    :param plan: Its entry of :func:`soak_plan`.
    :param outcome: What :func:`~amlretrain_devstack.dagrun.run_dag` returned.
    :param seconds: Its wall time.
    """
    logical_date, backfill, deferrable = plan
    retrain = outcome.xcom("retrain") or {}
    decision = outcome.xcom("evaluate", "gate_decision")
    promotion = outcome.xcom("promote") or outcome.xcom("promote", "promotion") or {}
    output = (retrain.get("outputs") or {}).get("output1") or {}
    return SoakRun(
        index=index,
        logical_date=logical_date.isoformat(),
        backfill=backfill,
        deferrable=deferrable,
        state=outcome.state,
        task_states=dict(outcome.task_states),
        retried_tasks=sorted(task for task, tries in outcome.try_numbers.items() if tries > 1),
        job_id=retrain.get("job_id"),
        model=output.get("relative_location"),
        gate_passed=None if decision is None else bool(decision.get("promote")),
        promotion=promotion.get("outcome") or outcome.task_states.get("promote"),
        data_version=promotion.get("data_version"),
        seconds=round(seconds, 2),
    )


def check_soak(runs: list[SoakRun], jobs: list[dict[str, Any]], changes: list[dict[str, Any]]) -> list[str]:
    """
    The broken invariants of a soak (empty: all held).

    :param runs: Every run (see :func:`summarize_run`).
    :param jobs: The emulator's jobs (``GET /_emulator/jobs``).
    :param changes: The endpoint's model changes, oldest first (``GET /_emulator/endpoint-changes``).
    """
    problems = [
        f"run {run.index} ended {run.state}: {run.task_states}" for run in runs if run.state != "success"
    ]
    started = [job for job in jobs if job.get("start_requested_at")]
    if len(started) != len(runs):
        problems.append(f"{len(started)} BES jobs were started for {len(runs)} runs")
    started_ids = {job["id"] for job in started}
    for run in runs:
        if run.job_id not in started_ids:
            problems.append(f"run {run.index} returned job {run.job_id}, which the emulator never started")
    by_model: dict[str | None, SoakRun] = {run.model: run for run in runs if run.model}
    served: list[str | None] = [None]  # the seed's model
    for number, change in enumerate(changes):
        location = change.get("relative_location")
        if len(served) >= 2 and location == served[-2]:
            served.append(location)  # a rollback to the model served before
            continue
        trained_by = by_model.get(location)
        if trained_by is None:
            problems.append(f"change {number}: the endpoint got {location}, which no run of the soak trained")
        elif not trained_by.gate_passed:
            problems.append(
                f"change {number}: the endpoint got the model of run {trained_by.index}, which its gate rejected"
            )
        else:
            before = by_model.get(served[-1])
            newer = trained_by.data_version
            if before and before.data_version and newer and newer < before.data_version:
                problems.append(
                    f"change {number}: run {trained_by.index}'s model (data {newer}) replaced "
                    f"run {before.index}'s (data {before.data_version})"
                )
        served.append(location)
    return problems


def admin_get(emulator_url: str, path: str) -> Any:
    """
    One answer of the emulator's admin API (loopback, no faults apply there).

    :param emulator_url: The emulator's base URL.
    :param path: E.g. ``/_emulator/jobs``.
    """
    with urllib.request.urlopen(f"{emulator_url.rstrip('/')}{path}", timeout=30) as answer:
        return json.loads(answer.read())


def admin_put(emulator_url: str, path: str, document: Any) -> None:
    """
    Replace a document of the emulator's admin API.

    :param emulator_url: The emulator's base URL.
    :param path: E.g. ``/_emulator/faults``.
    :param document: The JSON document.
    """
    request = urllib.request.Request(
        f"{emulator_url.rstrip('/')}{path}",
        data=json.dumps(document).encode(),
        method="PUT",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30):
        pass


def run_soak(
    emulator_url: str,
    dag: DAG,
    dates: list[str],
    runs: int,
    *,
    rate: float = 0.2,
    random_seed: int = 20261201,
    run_conf: dict[str, Any] | None = None,
    endpoint: str = ENDPOINT,
    progress: Callable[[SoakRun], None] | None = None,
    stop_after_seconds: float | None = None,
) -> dict[str, Any]:
    """
    Run the soak against a stack whose connections are in the environment, and check it.

    The caller sets the environment first: the stack's connections (through :func:`soak_connection_env`)
    and an Airflow home with a migrated metadata DB.

    :param emulator_url: The emulator's base URL.
    :param dag: The DAG (its ``retrain`` task's ``deferrable`` is set for each run).
    :param dates: The seeded days, oldest first.
    :param runs: How many pipeline runs.
    :param rate: The share of Azure ML requests to fail.
    :param random_seed: Seed of the emulator's fault draws.
    :param run_conf: The conf of every run.
    :param endpoint: The classic endpoint the DAG promotes to.
    :param progress: Called after each run.
    :param stop_after_seconds: Start no new run after this long (the report says how many of ``runs`` ran).
    :return: The report: runs, counts, faults applied, problems (empty when every invariant held).
    """
    from amlretrain_devstack.dagrun import run_dag

    faults = fault_document(rate, random_seed)
    jobs_before = {job["id"] for job in admin_get(emulator_url, "/_emulator/jobs")["jobs"]}
    changes_before = len(_endpoint_changes(emulator_url, endpoint))
    admin_put(emulator_url, "/_emulator/faults", faults)
    results: list[SoakRun] = []
    began = time.monotonic()
    try:
        retrain = dag.get_task("retrain")
        for index, entry in enumerate(soak_plan(dates, runs)):
            if stop_after_seconds is not None and time.monotonic() - began > stop_after_seconds:
                break
            retrain.deferrable = entry[2]  # type: ignore[union-attr]
            started = time.monotonic()
            outcome = run_dag(dag, entry[0], run_conf=run_conf)
            results.append(summarize_run(index, entry, outcome, time.monotonic() - started))
            if progress is not None:
                progress(results[-1])
        stats = admin_get(emulator_url, "/_emulator/fault-stats")
    finally:
        admin_put(emulator_url, "/_emulator/faults", {"rules": []})
    jobs = [job for job in admin_get(emulator_url, "/_emulator/jobs")["jobs"] if job["id"] not in jobs_before]
    changes = _endpoint_changes(emulator_url, endpoint)[changes_before:]
    problems = check_soak(results, jobs, changes)
    return {
        "planned_runs": runs,
        "runs": len(results),
        "failure_rate": rate,
        "random_seed": random_seed,
        "request_timeout_seconds": REQUEST_TIMEOUT_SECONDS,
        "fault_rules": faults["rules"],
        "requests": stats["requests"],
        "faults_applied": stats["injected"],
        "faults_applied_share": round(sum(stats["injected"].values()) / max(stats["requests"], 1), 4),
        "succeeded": sum(run.state == "success" for run in results),
        "jobs_created": len(jobs),
        "jobs_started": sum(bool(job.get("start_requested_at")) for job in jobs),
        "endpoint_changes": len(changes),
        "deployed": sum(run.promotion == "deployed" for run in results),
        "gate_rejected": sum(run.gate_passed is False for run in results),
        "not_promoted_older_data": sum(run.promotion == "stale" for run in results),
        "runs_with_a_retried_task": sum(bool(run.retried_tasks) for run in results),
        "seconds": round(time.monotonic() - began, 1),
        "problems": problems,
        "details": [asdict(run) for run in results],
    }


def _endpoint_changes(emulator_url: str, endpoint: str) -> list[dict[str, Any]]:
    changes = admin_get(emulator_url, "/_emulator/endpoint-changes")["changes"]
    return [change for change in changes if change["endpoint"] == endpoint]
