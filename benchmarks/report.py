"""
Write the "Performance" part of ``benchmarks/RESULTS.md`` and its plots from the results under ``benchmarks/results/``.

``python benchmarks/report.py`` reads ``many_waits.json``, ``poll_policy.json``, ``parse_cost.json``,
``fan_out.json`` and ``tls_polls.json`` (each written by its benchmark), draws PNGs into ``benchmarks/plots/`` and replaces the text
between ``<!-- performance -->`` and ``<!-- /performance -->`` in ``RESULTS.md`` (the rest of the file, e.g.
the "Reliability" part, is left as it is, but for its soak table: ``soak_report.py``). A missing results file
is reported as not run.
"""

from __future__ import annotations

import itertools
import json
import statistics
from pathlib import Path
from typing import Any

from results_md import RESULTS_MD, pyplot, replace_block  # benchmarks/, beside this script

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
PLOTS_DIR = BENCH_DIR / "plots"
START, END = "<!-- performance -->", "<!-- /performance -->"


def _load(name: str) -> dict[str, Any] | None:
    path = RESULTS_DIR / name
    return json.loads(path.read_text()) if path.exists() else None


def _met(condition: bool) -> str:
    return "**met**" if condition else "**not met**"


def _ratio(mine: float, theirs: float) -> str:
    return f"{mine / theirs:.2f}x" if theirs else "n/a"


#: The many-waits tables' rows: label, key of a side's results, format.
MANY_WAITS_ROWS = (
    ("jobs detected (events saying Finished)", "events_saying_finished", "{}"),
    ("CPU seconds, after the first round of polls", "cpu_seconds", "{:.2f}"),
    ("CPU seconds, whole wait (first round: one-time imports)", "cpu_seconds_with_first_round", "{:.2f}"),
    ("peak RSS MB (process)", "peak_rss_mb", "{:.1f}"),
    ("RSS MB before the waits (imports, after a one-job warm-up wait)", "rss_before_waits_mb", "{:.1f}"),
    ("RSS MB the waits added (peak minus before)", "rss_growth_mb", "{:.1f}"),
    ("HTTP requests", "http_requests", "{}"),
    ("CPU ms per HTTP request (after the first round)", "cpu_ms_per_request", "{:.2f}"),
    ("TCP connections opened", "tcp_connections_opened", "{}"),
    ("aiohttp sessions created", "aiohttp_sessions_created", "{}"),
    ("longest event-loop stall, ms", "longest_loop_stall_ms", "{:.0f}"),
    ("detection lag median, s", "detection_lag_median_seconds", "{:.2f}"),
    ("detection lag p95, s", "detection_lag_p95_seconds", "{:.2f}"),
    ("jobs ended over, s", "jobs_ended_over_seconds", "{:.1f}"),
    ("wall seconds", "wall_seconds", "{:.1f}"),
)
#: The rows of the table at a pace both keep.
SAME_PACE_KEYS = (
    "events_saying_finished",
    "cpu_seconds",
    "cpu_seconds_with_first_round",
    "http_requests",
    "cpu_ms_per_request",
    "rss_growth_mb",
    "tcp_connections_opened",
    "longest_loop_stall_ms",
    "detection_lag_median_seconds",
    "detection_lag_p95_seconds",
)


def _many_waits_sides(data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any] | None]:
    """
    This provider's, the Http provider's and the floor's results (``None`` when not run), with the derived measures.

    :param data: A ``many_waits`` results file.
    """
    mine, theirs, floor = data["provider"], data["http"], data.get("aiohttp")
    for side in (mine, theirs, *([floor] if floor else [])):
        side["rss_growth_mb"] = side["peak_rss_mb"] - side["rss_before_waits_mb"]
        polls = side.get("http_requests_after_first_round", side["http_requests"])
        side["cpu_ms_per_request"] = 1000 * side["cpu_seconds"] / max(1, polls)
    return mine, theirs, floor


def _many_waits_table(
    rows: tuple[tuple[str, str, str], ...],
    mine: dict[str, Any],
    theirs: dict[str, Any],
    floor: dict[str, Any] | None,
) -> list[str]:
    """
    A many-waits table: this provider, the Http provider, their ratio, and the floor when it was run.

    :param rows: Label, key and format of each row.
    :param mine: This provider's results.
    :param theirs: The Http provider's results.
    :param floor: The floor's results, or ``None``.
    """
    lines = [
        "| measure | this provider | Http provider | ratio |" + (" floor: bare aiohttp |" if floor else ""),
        "|---|---|---|---|" + ("---|" if floor else ""),
    ]
    for label, key, fmt in rows:
        a, b = mine.get(key), theirs.get(key)
        ratio = _ratio(a, b) if isinstance(a, int | float) and isinstance(b, int | float) else ""
        shown = ["n/a" if value is None else fmt.format(value) for value in (a, b)]
        row = f"| {label} | {shown[0]} | {shown[1]} | {ratio} |"
        if floor:  # the floor loads no Airflow before its waits: its memory says nothing of a trigger's
            memory = key.startswith(("rss_", "peak_rss"))
            row += " n/a |" if memory or floor.get(key) is None else f" {fmt.format(floor[key])} |"
        lines.append(row)
    return lines


def many_waits_section(data: dict[str, Any] | None) -> list[str]:
    """
    The table and plot of the many-deferred-waits benchmark.

    :param data: ``many_waits.json``.
    """
    lines = ["### 1. Many deferred waits, one triggerer", ""]
    if not data or "provider" not in data or "http" not in data:
        return [*lines, "Not run (`python benchmarks/many_waits.py`).", ""]
    mine, theirs, floor = _many_waits_sides(data)
    lines += [
        f"{data['waits']} BES jobs on the emulator ({data['emulator_job_concurrency']} running at once, "
        f"at least {data['emulator_min_job_seconds']} s each), each awaited by one trigger polling every "
        f"{data['poll_interval_seconds']} s. How: {data['how']}. The Http provider's side is `HttpEventTrigger` "
        "with a response check on `StatusCode` (its `HttpSensorTrigger` only waits for a non-404 answer, and "
        "`HttpSensor(deferrable=True, response_check=...)` does not defer at all), polling the same status URL.",
        "",
        *_many_waits_table(MANY_WAITS_ROWS, mine, theirs, floor),
    ]
    detected_all = mine["events_saying_finished"] == data["waits"] == theirs["events_saying_finished"]
    lines += [
        "",
        f"Targets: every job detected: {_met(detected_all)}; at most half the Http provider's CPU: "
        f"{_met(mine['cpu_seconds'] <= 0.5 * theirs['cpu_seconds'])} (whole wait: "
        f"{_met(mine['cpu_seconds_with_first_round'] <= 0.5 * theirs['cpu_seconds_with_first_round'])}); "
        f"at most half the memory the waits add: {_met(mine['rss_growth_mb'] <= 0.5 * theirs['rss_growth_mb'])} "
        f"(the interpreter, Airflow and the imports, {mine['rss_before_waits_mb']:.0f} MB, come before); a handful of "
        f"connections per host: {mine['tcp_connections_opened']} against {theirs['tcp_connections_opened']} "
        "(one shared pool of at most `MAX_CONNECTIONS_PER_HOST` connections to a host). Per request, this "
        f"provider spends {mine['cpu_ms_per_request']:.2f} CPU ms against {theirs['cpu_ms_per_request']:.2f} "
        f"({_ratio(mine['cpu_ms_per_request'], theirs['cpu_ms_per_request'])})"
        + (
            f"; in total it spends more because it keeps the {data['poll_interval_seconds']} s interval "
            f"({mine['http_requests']} requests) where the Http side, a session and a connection per poll, falls "
            f"behind it ({theirs['http_requests']})."
            if mine["cpu_seconds"] > theirs["cpu_seconds"]
            else f", for {mine['http_requests']} requests against {theirs['http_requests']}."
        )
        + (
            f" Bare aiohttp on one shared session (the floor: no pipeline, no retries) spends "
            f"{floor['cpu_ms_per_request']:.2f}."
            if floor
            else ""
        ),
        "",
        f"Load average (1, 5, 15 min) before/after: this provider {mine['load_average_before']} / "
        f"{mine['load_average_after']}, Http {theirs['load_average_before']} / {theirs['load_average_after']}.",
        "",
    ]
    plt = pyplot()
    keys = [
        ("CPU s", "cpu_seconds"),
        ("peak RSS MB", "peak_rss_mb"),
        ("TCP connections", "tcp_connections_opened"),
        ("lag median s", "detection_lag_median_seconds"),
        ("lag p95 s", "detection_lag_p95_seconds"),
    ]
    fig, axes = plt.subplots(1, len(keys), figsize=(14, 3.2))
    for axis, (label, key) in zip(axes, keys, strict=True):
        axis.bar(["provider", "Http"], [mine[key], theirs[key]], color=["#1f77b4", "#ff7f0e"])
        axis.set_title(label)
    fig.suptitle(f"{data['waits']} deferred waits in one event loop")
    fig.tight_layout()
    fig.savefig(PLOTS_DIR / "many_waits.png", dpi=90)
    plt.close(fig)
    return [*lines, "![many waits](plots/many_waits.png)", ""]


def many_waits_same_pace_section(data: dict[str, Any] | None) -> list[str]:
    """
    The many-waits table at an interval both approaches keep (``many_waits_30s.json``): the same work, side by side.

    :param data: ``many_waits_30s.json`` (``benchmarks/many_waits.py --interval 30``), with the floor (``aiohttp``:
        bare GETs on one shared session) when it was run.
    """
    if not data or "provider" not in data or "http" not in data:
        return []
    mine, theirs, floor = _many_waits_sides(data)
    lines = [
        f"**At a pace both keep** (`python benchmarks/many_waits.py --interval {data['poll_interval_seconds']:g} "
        "--output benchmarks/results/many_waits_30s.json`): the same "
        f"{data['waits']} jobs, every trigger polling every {data['poll_interval_seconds']:g} s, so both sides make "
        "about as many requests and the totals compare the same work."
        + (
            " The floor is no trigger to deploy: bare GETs on one shared aiohttp session, no pipeline, no retries "
            "(`SharedSessionPoll` in `benchmarks/waits_client.py`); it shows how much of a poll is aiohttp's own."
            if floor
            else ""
        ),
        "",
        *_many_waits_table(
            tuple(row for row in MANY_WAITS_ROWS if row[1] in SAME_PACE_KEYS), mine, theirs, floor
        ),
    ]
    lines += [
        "",
        f"At this pace: at most half the Http provider's CPU: {_met(mine['cpu_seconds'] <= 0.5 * theirs['cpu_seconds'])} "
        f"({_ratio(mine['cpu_seconds'], theirs['cpu_seconds'])}); at most half the memory the waits add: "
        f"{_met(mine['rss_growth_mb'] <= 0.5 * theirs['rss_growth_mb'])} "
        f"({_ratio(mine['rss_growth_mb'], theirs['rss_growth_mb'])})."
        + (
            f" Bare aiohttp spends {floor['cpu_ms_per_request']:.2f} CPU ms per request: "
            f"{_ratio(floor['cpu_ms_per_request'], theirs['cpu_ms_per_request'])} of the Http provider's."
            if floor
            else ""
        ),
        f"Load average before/after: this provider {mine['load_average_before']} / {mine['load_average_after']}, "
        f"Http {theirs['load_average_before']} / {theirs['load_average_after']}.",
        "",
    ]
    return lines


def _policy_search_lines(model: dict[str, Any]) -> list[str]:
    """What the grid of growing policies and the policy told the longest duration show, when measured."""
    search = model.get("growing_policy_search")
    if not search:
        return []
    lines = [
        "",
        "**Can any growing policy meet the target?** The model also plays a grid of the provider's family of "
        "policies (first wait, then a share of the elapsed time, up to a ceiling; fixed polling is a share of 0):",
        "",
        "| durations | policies tried | meeting the target | lowest median lag among them s (its requests, p95 lag) |",
        "|---|---|---|---|",
    ]
    for spacing in ("log_spaced", "evenly_spaced"):
        found = search[spacing]["meeting_target"]
        best = min(found, key=lambda row: row["lag_median_seconds"]) if found else None
        shown = (
            f"{best['lag_median_seconds']} ({best['requests_per_job_mean']}, {best['lag_p95_seconds']}): "
            f"first {best['first']:g} s, share {best['growth']:g}, ceiling {best['ceiling']:g} s"
            if best
            else "none"
        )
        lines.append(f"| {spacing.replace('_', ' ')} | {search[spacing]['tried']} | {len(found)} | {shown} |")
    known = model["evenly_spaced"].get("knowing_the_longest")
    if known:
        fixed = model["evenly_spaced"]["fixed"]
        lines += [
            "",
            "For evenly spaced durations none of them does, and no policy whose waits only grow can be expected to: a request at time t is paid by "
            "every job still running, a share that shrinks as t nears the longest duration L, while the lag weighs "
            "every moment alike, so the best waits *shrink* towards L (as sqrt(L - t)). A policy told L = 10 min "
            f"(waits 1.8 sqrt(L - t), at least 2 s) gives a median lag of {known['lag_median_seconds']} s with "
            f"{known['requests_per_job_mean']} requests a job against fixed polling's {fixed['lag_median_seconds']} s "
            f"and {fixed['requests_per_job_mean']}: the target is met only by knowing how long the jobs take. The "
            "provider does not take such a hint; `max_poll_interval` bounds the lag of long jobs instead.",
        ]
    return lines


def poll_policy_section(data: dict[str, Any] | None) -> list[str]:
    """
    The table and plot of the polling-policy benchmark.

    :param data: ``poll_policy.json``.
    """
    lines = ["### 2. Detection lag against requests", ""]
    if not data:
        return [*lines, "Not run (`python benchmarks/poll_policy.py`).", ""]
    model = data["model"]
    lines += [
        "**Model** (the provider's `JobPollingRules` played over job durations, no network): fixed 30 s polling "
        "against the provider's policy (15 s first wait, then half the elapsed time, 120 s ceiling; `Retry-After` "
        "honoured up to the ceiling), jobs of 5 s to 10 min.",
        "",
        "| durations | policy | lag median s | lag p95 s | requests per job (mean) |",
        "|---|---|---|---|---|",
    ]
    for spacing in ("log_spaced", "evenly_spaced"):
        for policy in ("fixed", "provider"):
            row = model[spacing][policy]
            lines.append(
                f"| {spacing.replace('_', ' ')} | {policy} | {row['lag_median_seconds']} | "
                f"{row['lag_p95_seconds']} | {row['requests_per_job_mean']} |"
            )
    for spacing in ("log_spaced", "evenly_spaced"):
        fixed, provider = model[spacing]["fixed"], model[spacing]["provider"]
        met = (
            provider["requests_per_job_mean"] < fixed["requests_per_job_mean"]
            and provider["lag_median_seconds"] < fixed["lag_median_seconds"]
        )
        lines.append(
            f"\nTarget (fewer requests than fixed 30 s with a lower median lag), {spacing.replace('_', ' ')} "
            f"durations: {_met(met)}."
        )
    lines += _policy_search_lines(model)
    emulator = data.get("emulator")
    if emulator:
        lines += [
            "",
            f"**Emulator spot check** (real short jobs through the sync hook's `wait_for_job`, both policies "
            f"scaled down {emulator['scale']:.0f} times, jobs of "
            f"{sorted({r['job_seconds'] for r in emulator['runs']})} s):",
            "",
            "| policy | lag median s | lag p95 s | requests per job | model predicts (lag median, requests) |",
            "|---|---|---|---|---|",
        ]
        for policy in ("fixed", "provider"):
            row, model_row = emulator[policy], emulator[policy]["model_prediction"]
            lines.append(
                f"| {policy} | {row['lag_median_seconds']} | {row['lag_p95_seconds']} | "
                f"{row['requests_per_job_mean']} | {model_row['lag_median_seconds']}, "
                f"{model_row['requests_per_job_mean']} |"
            )
    plt = pyplot()
    curve = model["curve"]
    fig, (lag_axis, req_axis) = plt.subplots(1, 2, figsize=(11, 3.5))
    for policy, style in (("fixed", "--"), ("provider", "-")):
        lag_axis.plot(curve["duration_seconds"], [p[0] for p in curve[policy]], style, label=policy)
        req_axis.plot(curve["duration_seconds"], [p[1] for p in curve[policy]], style, label=policy)
    for axis, title in ((lag_axis, "median detection lag, s"), (req_axis, "mean status requests per job")):
        axis.set_xscale("log")
        axis.set_xlabel("job duration, s")
        axis.set_title(title)
        axis.legend()
    fig.tight_layout()
    fig.savefig(PLOTS_DIR / "poll_policy.png", dpi=90)
    plt.close(fig)
    return [*lines, "", "![poll policy](plots/poll_policy.png)", ""]


def parse_cost_section(data: dict[str, Any] | None) -> list[str]:
    """
    The tables and plot of the DAG parse-cost benchmark.

    :param data: ``parse_cost.json``.
    """
    lines = ["### 3. DAG parse cost", ""]
    if not data:
        return [*lines, "Not run (`python benchmarks/parse_cost.py`).", ""]
    files = {k: v for k, v in data.items() if k.endswith(".py")}
    counted = all("instructions_ratio_to_baseline" in row for row in files.values())
    lines += [
        f"Each file parsed in a fresh interpreter, median of {data['repeats']} rounds (load average "
        f"{data['load_average']}); baseline `benchmarks/baseline_dag.py` imports only `airflow.sdk`. Instructions: "
        f"{data.get('instructions', 'not counted')}.",
        "",
        "| file | CPU s | CPU ratio | instructions M | instructions ratio | peak RSS MB | RSS over baseline MB "
        "| provider modules import ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, row in files.items():
        lines.append(
            f"| `{name}` | {row['cpu_seconds_median']} | {row['cpu_ratio_to_baseline']} | "
            f"{row.get('instructions_millions', '-')} | {row.get('instructions_ratio_to_baseline', '-')} | "
            f"{row['peak_rss_mb_median']} | {row['rss_over_baseline_mb']} | "
            f"{row['provider_modules_import_ms_median']} |"
        )
    if all("processor_parse_cpu_ms_median" in row for row in files.values()):
        lines += [
            "",
            f"Each re-parse in the DAG processor (`benchmarks/processor_parse.py`): Airflow's `_parse_file` (`DagBag` "
            "and serialisation) in a child forked from a parent that pre-imported the files' `airflow.*` modules, "
            f"median of {data.get('processor_rounds')} parses:",
            "",
            "| file | CPU ms | CPU ratio | instructions M | instructions ratio |",
            "|---|---|---|---|---|",
        ]
        for name, row in files.items():
            lines.append(
                f"| `{name}` | {row['processor_parse_cpu_ms_median']} | {row['processor_parse_cpu_ratio_to_baseline']} "
                f"| {row.get('processor_parse_instructions_millions', '-')} "
                f"| {row.get('processor_parse_instructions_ratio_to_baseline', '-')} |"
            )
    dags = [row for name, row in files.items() if name.startswith("dags/")]
    ratio_key = "instructions_ratio_to_baseline" if counted else "cpu_ratio_to_baseline"
    worst = max(row[ratio_key] for row in dags)
    slowest = max(row["provider_modules_import_ms_median"] for row in dags)
    lines += [
        "",
        "Before `WasbBlobExistsSensor` (issue 12): about 1.3x CPU and +26 MB for the two DAGs that wait for their "
        "data (`bes_retrain`, `retrain_and_promote`), the Azure provider's sensor module importing the storage SDK.",
        "",
        f"Targets: at most 1.1x the baseline's {'instructions' if counted else 'CPU'} in a fresh interpreter: "
        f"{_met(worst <= 1.1)} (worst {worst}x); the provider's own modules under 50 ms: {_met(slowest < 50)} "
        f"(most {slowest} ms, sum of their `-X importtime` self times).",
    ]
    plt = pyplot()
    fig, axis = plt.subplots(figsize=(9, 3.5))
    names = [Path(n).stem.replace("amlretrain_", "") for n in files]
    axis.barh(names, [row[ratio_key] for row in files.values()])
    axis.axvline(1.1, color="red", linestyle="--", label="target 1.1x")
    axis.set_xlabel(f"{'Instructions' if counted else 'CPU'} of parsing, ratio to the airflow.sdk-only DAG")
    axis.legend()
    fig.tight_layout()
    fig.savefig(PLOTS_DIR / "parse_cost.png", dpi=90)
    plt.close(fig)
    return [*lines, "", "![parse cost](plots/parse_cost.png)", ""]


def _fan_out_plot(data: dict[str, Any]) -> None:
    """A timeline of the fan-out: task instances per state and the emulator's running jobs, against time."""
    from fan_out_measures import covering  # benchmarks/, beside this script

    plt = pyplot()
    samples = data["timeline"]
    moments = [sample["t"] for sample in samples]
    fig, (tasks, cores) = plt.subplots(2, 1, figsize=(11, 6), sharex=True, height_ratios=[3, 1])
    for state, style in (("running", "-"), ("deferred", "--"), ("queued", ":"), ("scheduled", "-.")):
        tasks.plot(
            moments,
            [s["task_instances"].get(state, 0) for s in samples],
            style,
            label=f"TIs {state} (sampled)",
        )
    jobs = [tuple(pair) for pair in data["job_intervals"]]
    end = max([*moments, *data["promote_ends"], *(stop for _, stop in jobs)])
    grid = [step / 4 for step in range(int(end * 4) + 2)]
    tasks.step(
        grid, covering(jobs, grid), where="post", color="black", linewidth=2, label="emulator jobs running"
    )
    ends = data["promote_ends"]
    tasks.step([0.0, *ends], range(len(ends) + 1), where="post", color="green", label="endpoints promoted")
    tasks.set_ylabel("count")
    tasks.legend(loc="upper left", fontsize=8)
    tasks.set_title(
        f"{data['settings']['endpoints']} endpoints in one run: task instances against BES jobs "
        f"(emulator: {data['settings']['emulator_job_concurrency']} at once)"
    )
    cores.plot(moments, [s["busy_cores"] for s in samples], label="busy cores (machine)")
    cores.axhline(data["cpus"], color="red", linestyle="--", linewidth=0.8, label=f"{data['cpus']} cores")
    cores.set_xlabel("seconds since the trigger")
    cores.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(PLOTS_DIR / "fan_out.png", dpi=90)
    plt.close(fig)


def _pair(median: float | None, most: float | None) -> str:
    return "n/a (resumed)" if median is None else f"{median} / {most}"


def _lag(data: dict[str, Any]) -> str:
    lag = data.get("detection_lag_seconds") or {}
    if not lag.get("count"):
        return "not measured"
    return f"{lag['median']} / {lag['p95']} / {lag['max']} s ({lag['count']} jobs)"


def _retrain_end(settings: dict[str, Any]) -> str:
    if settings.get("retrain_ends_in_the_triggerer"):
        ending = "a finished job ends its `retrain` in the triggerer (`end_from_trigger`)"
    else:
        ending = "`retrain` resumes on a worker after its wait"
    if settings.get("worker_preload"):
        return f"{ending}; the LocalExecutor's workers come from a forkserver that preloaded `worker_preload`"
    return f"{ending}; the LocalExecutor's workers are forked from the scheduler"


def _fan_out_limits(data: dict[str, Any]) -> str:
    """What limits the fan-out, in words, with the run's numbers."""
    settings, cpu, samples = data["settings"], data["cpu_seconds"], data["timeline"]
    used = cpu["airflow"]
    tasks_cpu = used.get("scheduler", 0.0) - used.get("scheduler-own", 0.0)
    wall = data["dag_run"]["wall_seconds"]
    gaps = [later["t"] - earlier["t"] for earlier, later in itertools.pairwise(samples)]
    most = {
        state: max((sample["task_instances"].get(state, 0) for sample in samples), default=0)
        for state in ("running", "queued", "deferred")
    }
    return (
        f"**What limits it.** {settings['endpoints']} endpoints meant {data['task_executions']} task executions "
        f"(tries, and resumptions after a deferral). The LocalExecutor's workers and the task processes they ran used "
        f"{tasks_cpu:.0f} CPU s ({cpu['tasks_per_execution']:.2f} s per execution), the API server "
        f"{used.get('api-server', 0.0):.0f} s (every task process talks to its execution API), the scheduler itself "
        f"{used.get('scheduler-own', 0.0):.0f} s, the triggerer {used.get('triggerer', 0.0):.0f} s: "
        f"{cpu['airflow_total']:.0f} CPU s of Airflow in a {wall:.0f} s run, the machine {cpu['machine_busy_cores']:.2f} "
        f"of {data['cpus']} cores busy on average (the emulator {cpu['emulator']:.0f} CPU s). At that cost the task "
        f"processes alone need {tasks_cpu / data['cpus']:.0f} s of {data['cpus']} cores. Slots: "
        f"`AIRFLOW__CORE__PARALLELISM` {settings['AIRFLOW__CORE__PARALLELISM']} and `max_active_tasks` "
        f"{settings['AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG']}; at most {most['running']} task instances ran, "
        f"{most['queued']} were queued and {most['deferred']} deferred at once (samples every "
        f"{statistics.median(gaps) if gaps else 0:.0f} s). The emulator ran at most "
        f"{data['jobs']['most_running_at_once']} jobs at once of the {settings['emulator_job_concurrency']} it allows. "
        f"Beyond the jobs Airflow adds a head of {data['head_seconds']:.0f} s (the run's start, `plan`, the first "
        f"`retrain` processes) and a tail of {data['tail_seconds']:.0f} s (the last job's detection, "
        f"{'' if settings.get('retrain_ends_in_the_triggerer') else 'its resumption, '}"
        f"`evaluate` and `promote`); a job's end is seen {_lag(data)} later (median / p95 / max): the operator polls "
        f"a queued job less often as it waits, up to every {settings['max_poll_interval_seconds']:g} s."
    )


def _fan_out_side_by_side(data: dict[str, Any], earlier: dict[str, Any]) -> list[str]:
    """
    This run beside an earlier one of the same size whose ``retrain`` resumed on a worker.

    :param data: ``fan_out.json``.
    :param earlier: ``fan_out_resumed_on_worker.json``.
    """

    def how(run: dict[str, Any]) -> str:
        settings = run["settings"]
        ending = (
            "ends in the triggerer"
            if settings.get("retrain_ends_in_the_triggerer")
            else "resumes on a worker"
        )
        workers = "preloading forkserver" if settings.get("worker_preload") else "forked from the scheduler"
        return f"`retrain` {ending}; workers {workers}"

    rows = [
        ("DAG run wall time, s", lambda r: f"{r['dag_run']['wall_seconds']:.1f}"),
        ("emulator job span, s", lambda r: f"{r['jobs']['span_seconds']:.1f}"),
        ("head / tail, s", lambda r: f"{r['head_seconds']:.0f} / {r['tail_seconds']:.0f}"),
        ("task executions", lambda r: str(r["task_executions"])),
        ("CPU s, Airflow", lambda r: f"{r['cpu_seconds']['airflow_total']:.0f}"),
        ("CPU s per task execution", lambda r: f"{r['cpu_seconds']['tasks_per_execution']:.2f}"),
        ("overhead against the job span", lambda r: f"{r['overhead']:.0%}"),
        ("overhead against the least span", lambda r: f"{r['overhead_against_least']:.0%}"),
        ("endpoints promoted", lambda r: f"{r['promotion']['promoted']} of {r['promotion']['endpoints']}"),
    ]
    lines = [
        f"Side by side with an earlier run of the same size ({earlier.get('when', 'undated')}, load average before "
        f"{earlier['load_average_before']}):",
        "",
        "| measure | this run | earlier run |",
        "|---|---|---|",
        f"| how | {how(data)} | {how(earlier)} |",
    ]
    lines += [f"| {name} | {value(data)} | {value(earlier)} |" for name, value in rows]
    return [*lines, ""]


def task_cost_lines(preloaded: dict[str, Any] | None, bare: dict[str, Any] | None) -> list[str]:
    """
    The provider's own share of each fan-out task execution, with and without the workers' preload.

    :param preloaded: ``fan_out_task_cost.json`` (children that imported ``worker_preload`` first).
    :param bare: ``fan_out_task_cost_no_preload.json`` (``--no-preload``).
    """
    if not preloaded or not bare:
        return []
    lines = [
        "**The provider's own share** of each task execution (`python benchmarks/fan_out_task_cost.py`, "
        f"{preloaded['endpoints']} endpoints; each execution in a fresh interpreter that holds what a task process "
        "holds; Airflow's own per-task work left out), CPU s median:",
        "",
        "| task execution | with the workers' preload | without (`--no-preload`) | modules it loaded, with / without |",
        "|---|---|---|---|",
    ]
    for kind, mine in preloaded["per_kind"].items():
        theirs = bare["per_kind"][kind]
        lines.append(
            f"| {kind} | {mine['cpu_seconds_median']} | {theirs['cpu_seconds_median']} | "
            f"{mine['modules_loaded_median']} / {theirs['modules_loaded_median']} |"
        )
    lines += [
        f"| per endpoint | {preloaded['cpu_seconds_per_endpoint_median']} | "
        f"{bare['cpu_seconds_per_endpoint_median']} | |",
        "",
    ]
    return lines


def fan_out_section(data: dict[str, Any] | None, earlier: dict[str, Any] | None = None) -> list[str]:
    """
    The tables and timeline of the fan-out benchmark.

    :param data: ``fan_out.json``.
    :param earlier: An earlier run of the same size to set beside it (``fan_out_resumed_on_worker.json``).
    """
    lines = ["### 4. Fan-out", ""]
    if not data:
        return [*lines, "Not run (`python benchmarks/fan_out.py`).", ""]
    settings, run, jobs, cpu = data["settings"], data["dag_run"], data["jobs"], data["cpu_seconds"]
    promotion, phases = data["promotion"], data["phases"]
    lines += [
        f"{settings['endpoints']} endpoints retrained (deferrable BES waits), gated and promoted in one run of "
        "`benchmarks/fan_out_dag.py` (the many-endpoints DAG's mapped task group, `wait_after_update` 0) on "
        f"{settings['executor']}, `AIRFLOW__CORE__PARALLELISM` "
        f"{settings['AIRFLOW__CORE__PARALLELISM']}, `AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG` "
        f"{settings['AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG']}; the emulator runs "
        f"{settings['emulator_job_concurrency']} BES jobs at once, each at least "
        f"{settings['emulator_min_job_seconds']:g} s; the operator polls after {settings['poll_interval_seconds']:g} s, "
        f"then at most every {settings['max_poll_interval_seconds']:g} s; "
        f"{_retrain_end(settings)}. Airflow took "
        f"{data['airflow_start_seconds']:.0f} s to start (not counted).",
        "",
        "| measure | value |",
        "|---|---|",
        f"| DAG run wall time, queued to end | {run['wall_seconds']:.1f} s ({run['state']}) |",
        f"| emulator job span, first job start to last job end | {jobs['span_seconds']:.1f} s |",
        f"| least span at that concurrency (waves x job time) | {data['least_job_seconds']:.1f} s |",
        f"| sum of job durations | {jobs['sum_of_durations_seconds']:.1f} s ({jobs['jobs']} jobs, median "
        f"{jobs['duration_median_seconds']:.1f} s) |",
        f"| most jobs running at once | {jobs['most_running_at_once']} (allowed "
        f"{settings['emulator_job_concurrency']}) |",
        f"| jobs queued in the emulator, median / max | {jobs['queued_median_seconds']} / "
        f"{jobs['queued_max_seconds']} s |",
        f"| jobs submitted over | {jobs['submitted_over_seconds']} s |",
        f"| head: run queued to first job start | {data['head_seconds']:.1f} s |",
        f"| tail: last job end to run end | {data['tail_seconds']:.1f} s |",
        f"| detection lag, job end to its trigger firing, median / p95 / max | {_lag(data)} |",
        f"| **overhead** (DAG wall - job span) / job span | **{data['overhead']:.0%}** |",
        f"| overhead against the least span | {data['overhead_against_least']:.0%} |",
        f"| endpoints serving a model of this run (emulator's records) | {promotion['promoted']} of "
        f"{promotion['endpoints']}, {promotion['distinct_models_served']} distinct models |",
        f"| task executions (worker starts: tries, and resumptions after a deferral) | {data['task_executions']} |",
        f"| CPU s, Airflow (all parts, with task processes) | {cpu['airflow_total']:.0f} "
        f"({', '.join(f'{k} {v:.0f}' for k, v in cpu['airflow'].items())}) |",
        f"| CPU s per task execution (executor workers and task processes) | {cpu['tasks_per_execution']:.2f} |",
        f"| CPU s, emulator / Azurite | {cpu['emulator']:.0f} / {cpu['azurite']:.0f} |",
        f"| machine busy, mean over the run | {cpu['machine_busy_cores']:.2f} of {data['cpus']} cores |",
        f"| load average before / after | {data['load_average_before']} / {data['load_average_after']} |",
        "",
        "| task | instances | states | tries | retried | deferrals | worker starts | queued to start, median / max s | "
        "last try (first start to end), median / max s | last queued to end, median s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for task in ("plan", "retrain", "evaluate", "promote"):
        row = phases.get(task)
        if row is None:
            continue
        states = ", ".join(f"{state} {count}" for state, count in sorted(row["states"].items()))
        lines.append(
            f"| {task} | {row['task_instances']} | {states} | {row['tries']} | {row['retried']} | "
            f"{row['deferrals']} | {row.get('worker_starts', 'n/a')} | {_pair(row['queued_to_start_median_seconds'], row['queued_to_start_max_seconds'])} | "
            f"{row['last_try_median_seconds']} / {row['last_try_max_seconds']} | "
            f"{row.get('last_queued_to_end_median_seconds')} |"
        )
    all_promoted = promotion["promoted"] == promotion["endpoints"] == promotion["distinct_models_served"]
    lines += [
        "",
        f"Targets: overhead under 50 %: {_met(data['overhead'] < 0.5)} ({data['overhead']:.0%}); every endpoint "
        f"promoted, each with its own model: {_met(all_promoted)}.",
        "",
    ]
    if earlier and earlier["settings"]["endpoints"] == settings["endpoints"]:
        lines += _fan_out_side_by_side(data, earlier)
    lines += [_fan_out_limits(data), ""]
    _fan_out_plot(data)
    return [*lines, "![fan-out](plots/fan_out.png)", ""]


def tls_section(data: dict[str, Any] | None) -> list[str]:
    """
    The table of the TLS status-poll benchmark.

    :param data: ``tls_polls.json``.
    """
    lines = ["### 5. Status polls over TLS", ""]
    if not data:
        return [*lines, "Not run (`python benchmarks/tls_polls.py`).", ""]
    lines += [
        f"{data['callers']} concurrent callers, {data['rounds']} polls each, of one finished job; the emulator "
        f"over HTTP and over HTTPS (self-signed certificate); load average {data['load_average']}.",
        "",
        "| client | HTTP CPU ms/poll | HTTP connections | HTTPS CPU ms/poll | HTTPS connections |",
        "|---|---|---|---|---|",
    ]
    for client in ("provider", "aiohttp_shared", "aiohttp_new_session"):
        http, https = data["http"][client], data["https"][client]
        lines.append(
            f"| {client} | {http['client_cpu_ms_per_poll']} | {http['tcp_connections_opened']} | "
            f"{https['client_cpu_ms_per_poll']} | {https['tcp_connections_opened']} |"
        )
    return [*lines, ""]


def performance_lines() -> list[str]:
    """The lines of the "Performance" part, between its markers."""
    PLOTS_DIR.mkdir(exist_ok=True)
    return [
        "## Performance",
        "",
        "Written by `benchmarks/report.py` from `benchmarks/results/*.json` (`make bench`). Numbers are from one run "
        "on a shared 2-core machine (load averages beside them); ratios between approaches of the same run "
        "matter more than absolute times.",
        "",
        *many_waits_section(_load("many_waits.json")),
        *many_waits_same_pace_section(_load("many_waits_30s.json")),
        *poll_policy_section(_load("poll_policy.json")),
        *parse_cost_section(_load("parse_cost.json")),
        *fan_out_section(_load("fan_out.json"), _load("fan_out_resumed_on_worker.json")),
        *task_cost_lines(_load("fan_out_task_cost.json"), _load("fan_out_task_cost_no_preload.json")),
        *tls_section(_load("tls_polls.json")),
    ]


def write_results_md() -> None:
    """Replace the "Performance" part of ``RESULTS.md`` (or add it), keeping the rest."""
    lines = performance_lines()
    text = RESULTS_MD.read_text() if RESULTS_MD.exists() else "# Benchmark results\n\n"
    replaced = replace_block(text, START, END, lines)
    if replaced is None:
        replaced = text.rstrip("\n") + "\n\n" + "\n".join([START, *lines, END]) + "\n"
    RESULTS_MD.write_text(replaced)


if __name__ == "__main__":
    from soak_report import write_soak_summary  # benchmarks/, beside this script

    write_results_md()
    write_soak_summary()
    print(f"wrote {RESULTS_MD}")
