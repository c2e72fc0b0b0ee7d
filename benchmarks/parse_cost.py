"""
Benchmark: the cost of parsing each example DAG, against a DAG importing only ``airflow.sdk``.

**Fresh interpreter** (as the issue defines it): each file of ``dags/`` and ``benchmarks/baseline_dag.py`` is
run, with bytecode cached as installed code has it, (``runpy``, as the DAG processor executes a file) in its own
interpreter, round after round, the files taking turns (each round starting one file later) so a slow moment of
the machine hits all alike. Per file: the process's CPU seconds (user + system, interpreter start included), its
peak RSS, and the import time of this provider's own modules (``-X importtime`` self times of
``airflow_provider_amlretrain.*``).

**In the DAG processor** (``processor_parse.py``): what a file costs on every re-parse, in a child forked from a
parent that pre-imported the ``airflow.*`` modules the files name, as the processor's manager does: the child's
CPU seconds for Airflow's own ``_parse_file`` (a ``DagBag`` of the file, then the serialisation of its DAGs).

**Instructions** (if ``valgrind`` is installed; ``--no-instructions`` skips them): both measures again as
instructions executed (``valgrind --tool=cachegrind``, ``PYTHONHASHSEED=0``), the same from run to run to 0.1 %
whatever else the machine is doing, where CPU seconds on a shared 2-core machine vary by 20 % from one run to
the next. Nothing here asserts a timing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from results_file import ResultsFile, benchmark_parser, load_average  # benchmarks/, beside this script

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
BASELINE = BENCH_DIR / "baseline_dag.py"
PROCESSOR_PARSE = BENCH_DIR / "processor_parse.py"
PARSE = (
    "import resource, runpy, sys; runpy.run_path(sys.argv[1]); r = resource.getrusage(resource.RUSAGE_SELF); "
    "print('PARSED', r.ru_utime + r.ru_stime, r.ru_maxrss)"
)
RUN_FILE = "import runpy, sys; runpy.run_path(sys.argv[1])"
_IMPORT_LINE = re.compile(r"^import time:\s+(\d+) \|\s+\d+ \|\s+(\S.*)$")
_CACHEGRIND = ["valgrind", "--tool=cachegrind", "--cache-sim=no"]
_TOTAL_INSTRUCTIONS = re.compile(r"I\s+refs:\s+([\d,]+)")


def bytecode_env() -> dict[str, str]:
    """
    This environment with compiled bytecode cached (in a scratch folder), as an installed provider has it.

    ``PYTHONDONTWRITEBYTECODE`` (set in some shells and CI images) would make every fresh interpreter compile
    the provider's modules from source: about half their import time here, which no real deployment pays.
    """
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = tempfile.mkdtemp(prefix="amlretrain-pycache-")
    return env


def _parse_once(path: Path, env: dict[str, str]) -> tuple[float, float, float]:
    """CPU seconds, peak RSS (MB) and provider-module import ms of parsing ``path`` in a fresh interpreter."""
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", PARSE, str(path)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    _, cpu, rss = next(line for line in out.stdout.splitlines() if line.startswith("PARSED")).split()
    provider_us = sum(
        int(match[1])
        for line in out.stderr.splitlines()
        if (match := _IMPORT_LINE.match(line)) and match[2].strip().startswith("airflow_provider_amlretrain")
    )
    return float(cpu), int(rss) / 1024, provider_us / 1000


def _fresh_instructions(path: Path, env: dict[str, str]) -> int:
    """Instructions executed by a fresh interpreter running ``path`` (no ``-X importtime``), under cachegrind."""
    out = subprocess.run(
        [*_CACHEGRIND, "--cachegrind-out-file=/dev/null", sys.executable, "-c", RUN_FILE, str(path)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    match = _TOTAL_INSTRUCTIONS.search(out.stderr)
    if not match:
        raise RuntimeError(f"cachegrind reported no instruction count for {path}: {out.stderr[-2000:]}")
    return int(match[1].replace(",", ""))


def _processor_parses(
    files: list[Path], rounds: int, env: dict[str, str], *, noop: bool = False
) -> list[Any]:
    """The JSON lines of ``processor_parse.py``: one per parse, each with the child's pid and CPU seconds."""
    out = subprocess.run(
        [sys.executable, str(PROCESSOR_PARSE), *(["--noop"] if noop else []), str(rounds), *map(str, files)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def _processor_instructions(files: list[Path], env: dict[str, str]) -> dict[str, int]:
    """
    Instructions of each file's parse in a forked child, under cachegrind: the child's less a do-nothing child's.

    A forked child inherits the parent's count so far, so a child that exits at once, forked just before, says what
    to subtract.
    """
    out_dir = Path(tempfile.mkdtemp(prefix="amlretrain-cachegrind-"))
    try:
        command = [*_CACHEGRIND, f"--cachegrind-out-file={out_dir}/%p", sys.executable, str(PROCESSOR_PARSE)]
        out = subprocess.run(
            [*command, "--noop", "1", *map(str, files)],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )

        def total(pid: int) -> int:
            summary = next(
                line for line in (out_dir / str(pid)).read_text().splitlines() if line.startswith("summary:")
            )
            return int(summary.split()[1])

        parses = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
        return {row["file"]: total(row["pid"]) - total(row["noop_pid"]) for row in parses}
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)


def bench_parse_cost(repeats: int, processor_rounds: int, instructions: bool) -> dict[str, Any]:
    """
    Per DAG file: median CPU, peak RSS and provider import time in a fresh interpreter, median CPU of a parse in
    the DAG processor, instructions of both (if asked and ``valgrind`` is installed), and their ratios to the
    baseline.

    :param repeats: Fresh-interpreter rounds (after one discarded warm-up round).
    :param processor_rounds: Parses of each file in the DAG processor's way.
    :param instructions: Also count instructions under cachegrind (about a minute of CPU per file).
    """
    env = bytecode_env()
    env.update(
        {
            "AIRFLOW_HOME": tempfile.mkdtemp(prefix="amlretrain-parse-"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        }
    )
    files = [BASELINE, *sorted((REPO_ROOT / "dags").glob("*.py"))]
    samples: dict[Path, list[tuple[float, float, float]]] = {path: [] for path in files}
    for path in files:
        _parse_once(path, env)
    for round_number in range(repeats):
        shift = round_number % len(files)
        for path in files[shift:] + files[:shift]:
            samples[path].append(_parse_once(path, env))
    _processor_parses(files, 1, env)  # warm-up: the children write the bytecode of what only they import
    processor_cpu: dict[str, list[float]] = {str(path): [] for path in files}
    for row in _processor_parses(files, processor_rounds, env):
        processor_cpu[row["file"]].append(row["cpu_seconds"])
    counted = instructions and shutil.which("valgrind") is not None
    fresh_instructions: dict[Path, int] = {}
    in_processor_instructions: dict[str, int] = {}
    if counted:
        # Instruction counts do not depend on what runs beside them: two at a time, on the machine's two cores.
        deterministic = {**env, "PYTHONHASHSEED": "0"}
        with ThreadPoolExecutor(max_workers=2) as pool:
            in_processor = pool.submit(_processor_instructions, files, deterministic)
            fresh = {path: pool.submit(_fresh_instructions, path, deterministic) for path in files}
            fresh_instructions = {path: future.result() for path, future in fresh.items()}
            in_processor_instructions = in_processor.result()
    results: dict[str, Any] = {
        "repeats": repeats,
        "processor_rounds": processor_rounds,
        "instructions": (
            "valgrind --tool=cachegrind --cache-sim=no, PYTHONHASHSEED=0"
            if counted
            else "not counted ("
            + ("--no-instructions" if not instructions else "valgrind not installed")
            + ")"
        ),
        "load_average": load_average(),
    }
    base_cpu = statistics.median(s[0] for s in samples[BASELINE])
    base_rss = statistics.median(s[1] for s in samples[BASELINE])
    base_processor = statistics.median(processor_cpu[str(BASELINE)])
    for path in files:
        cpu = statistics.median(s[0] for s in samples[path])
        rss = statistics.median(s[1] for s in samples[path])
        processor = statistics.median(processor_cpu[str(path)])
        row: dict[str, Any] = {
            "cpu_seconds_median": round(cpu, 3),
            "cpu_ratio_to_baseline": round(cpu / base_cpu, 3),
            "peak_rss_mb_median": round(rss, 1),
            "rss_over_baseline_mb": round(rss - base_rss, 1),
            "provider_modules_import_ms_median": round(statistics.median(s[2] for s in samples[path]), 1),
            "processor_parse_cpu_ms_median": round(processor * 1000, 1),
            "processor_parse_cpu_ratio_to_baseline": round(processor / base_processor, 3),
        }
        if counted:
            fresh, in_processor = fresh_instructions[path], in_processor_instructions[str(path)]
            row |= {
                "instructions_millions": round(fresh / 1e6, 1),
                "instructions_ratio_to_baseline": round(fresh / fresh_instructions[BASELINE], 3),
                "processor_parse_instructions_millions": round(in_processor / 1e6, 1),
                "processor_parse_instructions_ratio_to_baseline": round(
                    in_processor / in_processor_instructions[str(BASELINE)], 3
                ),
            }
        results[str(path.relative_to(REPO_ROOT))] = row
    return results


def main() -> None:
    """Run the benchmark and write its results file."""
    parser = benchmark_parser(__doc__, "parse_cost")
    parser.add_argument("--repeats", type=int, default=5, help="fresh-interpreter rounds")
    parser.add_argument(
        "--processor-rounds", type=int, default=15, help="parses of each file in the DAG processor's way"
    )
    parser.add_argument(
        "--no-instructions",
        dest="instructions",
        action="store_false",
        help="skip the cachegrind instruction counts",
    )
    args = parser.parse_args()
    results_file = ResultsFile(args.output)
    results_file.write(bench_parse_cost(args.repeats, args.processor_rounds, args.instructions))


if __name__ == "__main__":
    main()
