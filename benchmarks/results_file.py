"""
What every benchmark's command line and results file share.

Each benchmark takes ``--output`` (default ``benchmarks/results/<name>.json``, the file ``report.py`` reads) and
writes one JSON object there: ``when`` first (the UTC time the benchmark started), then its own keys, indented
by two, ending in a new line; it prints the same (or a summary of it). The load average and percentiles the
results carry are computed here too, so every file says them alike.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def benchmark_parser(description: str | None, name: str) -> argparse.ArgumentParser:
    """
    A benchmark's command line: its description as written, and ``--output``.

    :param description: The benchmark module's docstring.
    :param name: The results file's name without ``.json`` (``many_waits``: ``results/many_waits.json``).
    """
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--output", type=Path, default=RESULTS_DIR / f"{name}.json", help="the JSON results file to write"
    )
    return parser


def load_average() -> list[float]:
    """The machine's 1, 5 and 15 minute load averages, rounded to two places."""
    return [round(value, 2) for value in os.getloadavg()]


def percentile(values: list[float], fraction: float) -> float:
    """
    The nearest-rank percentile of ``values``: the value ``fraction`` of the way up the sorted list.

    :param values: At least one number.
    :param fraction: From 0 to 1 (``0.95``: the 95th percentile).
    """
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


class ResultsFile:
    """
    One benchmark's results file: stamped when the benchmark starts, written once when it ends.

    :param path: Where to write it (its folder is created).
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

    def write(self, results: dict[str, Any], *, shown: Any = None) -> dict[str, Any]:
        """
        Write ``results`` after the ``when`` stamp, print them (or ``shown``), and return what was written.

        :param results: The benchmark's results (plain JSON data; anything else is written as its ``str``).
        :param shown: What to print instead of the whole file, e.g. a summary of a long one.
        """
        stamped = {"when": self.when, **results}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(stamped, indent=2, default=str) + "\n", encoding="utf-8")
        print(json.dumps(stamped if shown is None else shown, indent=2, default=str))
        return stamped
