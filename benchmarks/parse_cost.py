"""
Benchmark: the cost of parsing each example DAG in a fresh interpreter, against a DAG importing only ``airflow.sdk``.

Each file of ``dags/`` and ``benchmarks/baseline_dag.py`` is run, with bytecode cached as installed code has it, (``runpy``, as the DAG processor executes a
file) in its own interpreter, round after round, the files taking turns so a slow moment of the machine hits
all alike. Per file: the process's CPU seconds (user + system, interpreter start included), its peak RSS,
and the import time of this provider's own modules (``-X importtime`` self times of ``airflow_provider_amlretrain.*``).
Nothing here asserts a timing.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from results_file import ResultsFile, benchmark_parser, load_average  # benchmarks/, beside this script

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
BASELINE = BENCH_DIR / "baseline_dag.py"
PARSE = (
    "import resource, runpy, sys; runpy.run_path(sys.argv[1]); r = resource.getrusage(resource.RUSAGE_SELF); "
    "print('PARSED', r.ru_utime + r.ru_stime, r.ru_maxrss)"
)
_IMPORT_LINE = re.compile(r"^import time:\s+(\d+) \|\s+\d+ \|\s+(\S.*)$")


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


def bench_parse_cost(repeats: int) -> dict[str, Any]:
    """
    Median CPU, peak RSS and provider import time per DAG file, and their ratio to the baseline.

    :param repeats: Rounds (after one discarded warm-up round).
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
    for _ in range(repeats):
        for path in files:
            samples[path].append(_parse_once(path, env))
    results: dict[str, Any] = {"repeats": repeats, "load_average": load_average()}
    base_cpu = statistics.median(s[0] for s in samples[BASELINE])
    base_rss = statistics.median(s[1] for s in samples[BASELINE])
    for path in files:
        cpu = statistics.median(s[0] for s in samples[path])
        rss = statistics.median(s[1] for s in samples[path])
        results[str(path.relative_to(REPO_ROOT))] = {
            "cpu_seconds_median": round(cpu, 3),
            "cpu_ratio_to_baseline": round(cpu / base_cpu, 3),
            "peak_rss_mb_median": round(rss, 1),
            "rss_over_baseline_mb": round(rss - base_rss, 1),
            "provider_modules_import_ms_median": round(statistics.median(s[2] for s in samples[path]), 1),
        }
    return results


def main() -> None:
    """Run the benchmark and write its results file."""
    parser = benchmark_parser(__doc__, "parse_cost")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    results_file = ResultsFile(args.output)
    results_file.write(bench_parse_cost(args.repeats))


if __name__ == "__main__":
    main()
