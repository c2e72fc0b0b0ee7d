"""
The local stack a benchmark runs against, and the environment its clients get.

:func:`benchmark_stack` starts Azurite and the emulator in a scratch folder (which is also the Airflow home, with
no example DAGs), puts the stack's ``AIRFLOW_CONN_*`` connections into this process's environment and into the
one handed to the benchmark's client interpreters, and stops the stack and removes the folder at the end.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from amlretrain_devstack import Stack


class BenchmarkStack(NamedTuple):
    """A running stack, the client environment that reaches it, and a scratch folder."""

    stack: Stack
    env: dict[str, str]
    scratch: Path


@contextmanager
def benchmark_stack(
    config: dict[str, Any], base_env: Mapping[str, str] | None = None
) -> Iterator[BenchmarkStack]:
    """
    Run the local stack for one benchmark.

    :param config: The emulator's settings (``min_job_seconds``, ``job_concurrency``, ...).
    :param base_env: What the client environment starts from (default: this process's environment), e.g.
        :func:`parse_cost.bytecode_env` for clients whose imports count.
    """
    from amlretrain_devstack import running_stack

    with tempfile.TemporaryDirectory() as tmp, running_stack(Path(tmp) / "stack", config) as stack:
        env = dict(os.environ if base_env is None else base_env)
        env.update(stack.connection_env())
        env.update({"AIRFLOW_HOME": tmp, "AIRFLOW__CORE__LOAD_EXAMPLES": "False"})
        os.environ.update(env)
        yield BenchmarkStack(stack, env, Path(tmp))
