"""
Parse DAG files as Airflow's DAG processor does, each in a child forked from one parent (run by ``parse_cost.py``).

The DAG processor's manager imports the ``airflow.*`` modules each file names (``parsing_pre_import_modules``,
on by default) and forks a child per parse; the child runs ``_parse_file``: a ``BundleDagBag`` of the file, then
``DagSerialization.to_dict`` of each DAG (what is sent to the manager). So a file's recurring cost is that child's:
whatever its imports add beyond the pre-imported ``airflow.*`` modules (this provider's modules, for one), building
its DAG, validating and serialising it. The parent here pre-imports for every file, as a long-running manager has.

``python processor_parse.py ROUNDS FILE...`` prints one JSON line per parse: the file, the child's pid and its
CPU seconds (user + system). With ``--noop`` a child that exits at once is forked before each parse: under
``valgrind --tool=cachegrind`` its instruction count is what every child inherits from the parent, to subtract.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def _parse_in_child(path: str) -> None:
    """Parse and serialise ``path`` with the DAG processor's own function; fail loudly on an import error."""
    import structlog
    from airflow.dag_processing.processor import DagFileParseRequest, _parse_file

    result = _parse_file(
        DagFileParseRequest(
            file=path, bundle_path=Path(path).parent, bundle_name="parse-cost", callback_requests=[]
        ),
        structlog.get_logger(),
    )
    if result is None or not result.serialized_dags or result.import_errors:
        raise SystemExit(
            f"{path} did not parse into a DAG: {result.import_errors if result else 'no result'}"
        )


def _fork(path: str, parse: bool) -> tuple[int, float]:
    """Fork a child that parses ``path`` (or, if not ``parse``, exits at once); its pid and CPU seconds."""
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            if parse:
                _parse_in_child(path)
        except BaseException as error:  # the child reports and exits: it never returns into the loop
            print(f"parse of {path} failed: {error!r}", file=sys.stderr)
            code = 1
        finally:
            os._exit(code)
    _, status, usage = os.wait4(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"the parse of {path} failed (see above)")
    return pid, usage.ru_utime + usage.ru_stime


def main(argv: list[str]) -> None:
    """
    Pre-import as the DAG processor does, then parse each file in its own forked child, round after round.

    :param argv: ``[--noop] ROUNDS FILE...``.
    """
    import structlog
    from airflow.dag_processing.processor import _pre_import_airflow_modules

    noop = argv[:1] == ["--noop"]
    rounds, files = int(argv[noop]), [os.path.abspath(f) for f in argv[noop + 1 :]]
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))  # the DagBag's info lines
    for path in files:
        _pre_import_airflow_modules(path, structlog.get_logger())
    for round_number in range(rounds):
        shift = round_number % len(files)
        for path in files[shift:] + files[:shift]:
            noop_pid = _fork(path, parse=False)[0] if noop else None
            pid, cpu = _fork(path, parse=True)
            print(
                json.dumps({"file": path, "pid": pid, "noop_pid": noop_pid, "cpu_seconds": cpu}), flush=True
            )


if __name__ == "__main__":
    main(sys.argv[1:])
