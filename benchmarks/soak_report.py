"""
Write the fault soak's summary table and plot from ``benchmarks/results/soak.json`` (``make soak``).

``benchmarks/report.py`` calls :func:`write_soak_summary`: it replaces the text between ``<!-- soak -->`` and
``<!-- /soak -->`` in ``RESULTS.md`` (inside the hand-written "Reliability" part) and draws
``benchmarks/plots/soak.png``: each run's duration, marked by how it ran and whether a task needed a retry,
beside the faults the emulator applied by kind.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from results_md import RESULTS_MD, pyplot, replace_block  # benchmarks/, beside this script

BENCH_DIR = Path(__file__).resolve().parent
SOAK_RESULTS = BENCH_DIR / "results/soak.json"
SOAK_PLOT = BENCH_DIR / "plots/soak.png"
START, END = "<!-- soak -->", "<!-- /soak -->"

#: The emulator's fault counters (``/_emulator/fault-stats``) in words.
FAULT_NAMES = {
    "status-429": "429 (Retry-After: 1)",
    "status-503": "503 RequestThrottled",
    "drop-before": "reset before the service saw it",
    "delay": "outlasted the client's timeout",
    "drop-after": "answer lost after the service acted",
}


def soak_table(data: dict[str, Any]) -> list[str]:
    """
    The summary table of one soak, every number read from its results.

    :param data: ``soak.json``.
    """
    details = data["details"]
    seconds = [run["seconds"] for run in details]
    faults = data["faults_applied"]
    fault_words = ", ".join(
        f"{count} x {FAULT_NAMES.get(kind, kind)}" for kind, count in sorted(faults.items())
    )
    stopped = (
        ""
        if data["runs"] == data["planned_runs"]
        else f" (stopped by its time budget; {data['planned_runs']} planned)"
    )
    rows = [
        ("runs that succeeded", f"{data['succeeded']} of {data['runs']}{stopped}"),
        (
            "deferrable runs / backfills of older days",
            f"{sum(r['deferrable'] for r in details)} / {sum(r['backfill'] for r in details)}",
        ),
        (
            "run time median / max",
            f"{statistics.median(seconds):.1f} s / {max(seconds):.1f} s (whole soak {data['seconds']:.0f} s)",
        ),
        (
            "Azure ML requests / faults applied",
            f"{data['requests']:,} / {sum(faults.values()):,} ({100 * data['faults_applied_share']:.1f} %): {fault_words}",
        ),
        (
            "BES jobs started",
            f"{data['jobs_started']} (one per run, each the job its run returned)"
            if data["jobs_started"] == data["runs"] and not data["problems"]
            else str(data["jobs_started"]),
        ),
        (
            "BES jobs created, never started",
            f"{data['jobs_created'] - data['jobs_started']} (submissions whose answer was lost; nobody starts them)",
        ),
        ("runs with a task that needed a second try", str(data["runs_with_a_retried_task"])),
        (
            "endpoint model changes / deployments",
            f"{data['endpoint_changes']} / {data['deployed']} (a PATCH whose answer was lost is sent again: the same model twice)",
        ),
        (
            "not promoted: older data / gate rejections",
            f"{data['not_promoted_older_data']} / {data['gate_rejected']}",
        ),
        (
            "secret scan hits",
            f"{len(data['secret_scan']['hits'])} ({len(data['secret_scan']['secrets_searched'])} secrets and {len(data['secret_scan']['shapes_searched'])} shapes, {data['secret_scan']['files_searched']} files, {data['secret_scan']['db_rows_searched']:,} DB rows)",
        ),
        (
            "broken invariants",
            "**none**"
            if not data["problems"]
            else f"**{len(data['problems'])}**: " + "; ".join(map(str, data["problems"][:5])),
        ),
    ]
    lines = [
        f"Written by `benchmarks/report.py` from `benchmarks/results/soak.json` (seed {data['random_seed']}, "
        f"{100 * data['failure_rate']:.0f} % of Azure ML requests faulted, client timeout {data['request_timeout_seconds']} s).",
        "",
        "| | |",
        "|---|---|",
        *(f"| {name} | {value} |" for name, value in rows),
        "",
        f"![soak]({SOAK_PLOT.relative_to(BENCH_DIR).as_posix()})",
    ]
    return lines


def draw_soak_plot(data: dict[str, Any]) -> None:
    """
    Run durations (by kind of run, retried tries marked) and the faults applied by kind.

    :param data: ``soak.json``.
    """
    plt = pyplot()
    details = data["details"]
    figure, (runs_axis, faults_axis) = plt.subplots(
        1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [3, 2]}
    )
    kinds = {
        "sync": lambda r: not r["deferrable"],
        "deferrable": lambda r: r["deferrable"],
    }
    for (label, chosen), marker in zip(kinds.items(), ("o", "s"), strict=True):
        picked = [r for r in details if chosen(r)]
        runs_axis.scatter(
            [r["index"] for r in picked], [r["seconds"] for r in picked], marker=marker, label=label, s=18
        )
    retried = [r for r in details if r["retried_tasks"]]
    runs_axis.scatter(
        [r["index"] for r in retried],
        [r["seconds"] for r in retried],
        facecolors="none",
        edgecolors="red",
        s=80,
        label="a task retried",
    )
    runs_axis.set_xlabel("run")
    runs_axis.set_ylabel("seconds")
    runs_axis.set_title(f"{data['succeeded']} of {data['runs']} runs succeeded")
    runs_axis.legend(fontsize=8)
    faults = dict(sorted(data["faults_applied"].items()))
    faults_axis.barh([FAULT_NAMES.get(kind, kind) for kind in faults], list(faults.values()))
    faults_axis.set_title(f"faults applied ({sum(faults.values())} of {data['requests']} requests)")
    faults_axis.tick_params(axis="y", labelsize=8)
    figure.tight_layout()
    SOAK_PLOT.parent.mkdir(exist_ok=True)
    figure.savefig(SOAK_PLOT, dpi=100)
    plt.close(figure)


def write_soak_summary() -> bool:
    """Replace the soak block of ``RESULTS.md`` and draw its plot; False if there is no soak result or block."""
    if not SOAK_RESULTS.exists():
        return False
    data = json.loads(SOAK_RESULTS.read_text())
    text = replace_block(RESULTS_MD.read_text(), START, END, soak_table(data))
    if text is None:
        return False
    draw_soak_plot(data)
    RESULTS_MD.write_text(text)
    return True


if __name__ == "__main__":
    print("wrote the soak summary" if write_soak_summary() else "no soak results or no soak block")
