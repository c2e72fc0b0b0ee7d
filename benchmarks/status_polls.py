"""
Benchmark: many concurrent BES status polls through the async hook, as a triggerer full of deferred waits does.

``python benchmarks/status_polls.py`` starts the local stack, creates one BES job, and runs the client in
a fresh interpreter for this checkout and for each ``--compare-with`` checkout (e.g. the code before the
azure-core transport: ``git worktree add /tmp/before-transport 270ce71``), all against the same emulator.
The client runs ``--callers`` concurrent callers, each its own async hook (as each trigger has), each polling
the job ``--rounds`` times; it reports its own CPU seconds per poll and the TCP connections it opened
(an aiohttp ``TraceConfig`` on every session). It also counts the retry loops in the checkout's hooks:
loops that send a request again. Nothing here asserts a timing.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench_stack import benchmark_stack  # benchmarks/, beside this script
from results_file import ResultsFile, benchmark_parser

if TYPE_CHECKING:
    import argparse

REPO_ROOT = Path(__file__).resolve().parents[1]
STUDIO_CONN = "azureml_train_binary"
SEND_CALLS = {"_send", "_asend", "send_request", "request"}


def retry_loops(code_root: Path) -> list[str]:
    """
    The loops in a checkout's hooks that send a request (a hand-written retry loop), as ``file:line``.

    :param code_root: The checkout.
    """
    found = []
    for path in sorted((code_root / "airflow_provider_amlretrain" / "hooks").glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if not isinstance(node, ast.While | ast.For | ast.AsyncFor):
                continue
            calls = {
                sub.func.attr
                for sub in ast.walk(node)
                if isinstance(sub, ast.Call) and isinstance(sub.func, ast.Attribute)
            }
            if calls & SEND_CALLS:
                found.append(f"{path.relative_to(code_root)}:{node.lineno}")
    return found


CLIENT = r"""
import asyncio, json, sys, time
import aiohttp

callers, rounds, job_id, conn_id = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
opened = 0
sessions = 0

async def _on_connection(session, context, params):
    global opened
    opened += 1

_init = aiohttp.ClientSession.__init__

def _traced_init(self, *args, **kwargs):
    global sessions
    sessions += 1
    trace = aiohttp.TraceConfig()
    trace.on_connection_create_end.append(_on_connection)
    kwargs["trace_configs"] = [*(kwargs.get("trace_configs") or []), trace]
    _init(self, *args, **kwargs)

aiohttp.ClientSession.__init__ = _traced_init

from airflow_provider_amlretrain.hooks.studio import AzureMLStudioAsyncHook

errors = []
measured = {}

async def caller(hook):
    shared = getattr(hook, "ashared_client", None)  # absent before the azure-core transport

    async def polls():
        for index in range(rounds):
            try:
                await hook.aget_job(job_id)
            except Exception as err:
                errors.append(type(err).__name__)
            if index < rounds - 1:
                await asyncio.sleep(0.5)

    if shared is None:
        await polls()
    else:
        async with shared():
            await polls()

async def main():
    hooks = [AzureMLStudioAsyncHook(azureml_conn_id=conn_id) for _ in range(callers)]
    # Each trigger reads its connection once: not part of a poll, so outside the measurement.
    await asyncio.gather(*(hook.aget_settings() for hook in hooks))
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(caller(hook) for hook in hooks))
    measured["cpu"] = time.process_time() - cpu
    measured["wall"] = time.perf_counter() - wall

asyncio.run(main())
cpu, wall = measured["cpu"], measured["wall"]
polls = callers * rounds
print(json.dumps({
    "polls": polls,
    "errors": len(errors),
    "error_kinds": sorted(set(errors)),
    "client_cpu_seconds": round(cpu, 3),
    "client_cpu_ms_per_poll": round(1000 * cpu / polls, 3),
    "wall_seconds": round(wall, 3),
    "tcp_connections_opened": opened,
    "aiohttp_sessions_created": sessions,
}))
"""


def client_result(command: list[str], *, cwd: Path, env: dict[str, str], what: str) -> dict[str, Any]:
    """
    Run a benchmark client in a fresh interpreter and return the JSON object its last output line prints.

    :param command: Its command line.
    :param cwd: Where it runs.
    :param env: Its environment.
    :param what: Who it is, for the error (with the tail of its standard error) when it fails.
    """
    out = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{out.stderr[-3000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def run_client(code_root: Path, env: dict[str, str], args: argparse.Namespace, job_id: str) -> dict[str, Any]:
    """
    Run the polling client in a fresh interpreter with ``code_root`` first on the path.

    :param code_root: The checkout whose provider code polls.
    :param env: The environment with the stack's connections.
    :param args: The command line.
    :param job_id: The job to poll.
    """
    child_env = dict(env)
    child_env["PYTHONPATH"] = os.pathsep.join([str(code_root), env.get("PYTHONPATH", "")])
    result = client_result(
        [sys.executable, "-c", CLIENT, str(args.callers), str(args.rounds), job_id, STUDIO_CONN],
        cwd=code_root,
        env=child_env,
        what=f"the client for {code_root}",
    )
    result["retry_loops_in_hooks"] = retry_loops(code_root)
    return result


def bench_status_polls(args: argparse.Namespace) -> dict[str, Any]:
    """
    The status-poll benchmark for this checkout and each ``--compare-with`` checkout.

    :param args: The command line (``callers``, ``rounds``, ``compare_with``).
    """
    with benchmark_stack({"min_job_seconds": 0.0}) as (stack, env, _):
        job_id = finished_job(stack)
        results: dict[str, Any] = {"callers": args.callers, "rounds": args.rounds}
        for label, root in [("this checkout", REPO_ROOT), *((str(p), p) for p in args.compare_with)]:
            results[label] = run_client(Path(root), env, args, job_id)
        return results


def submit_training_job(stack: Any, hook: Any, name: str, *, start: bool = True) -> str:
    """
    Submit (and start) one training job of the stack's binary training service; return its id.

    :param stack: The running stack.
    :param hook: An ``AzureMLStudioHook`` on :data:`STUDIO_CONN`.
    :param name: Where under ``models/bench/`` the job writes its outputs.
    :param start: Start it too.
    """
    from airflow_provider_amlretrain.api.bes import build_batch_request
    from airflow_provider_amlretrain.api.references import BlobReference

    service = next(
        s for s in stack.seed["services"] if s.get("kind") == "training" and s.get("task") == "binary"
    )
    body = build_batch_request(
        inputs={
            service["input_ports"][0]: BlobReference(
                service["blobs"][0]["relative_location"], stack.connection_string
            )
        },
        outputs={
            service["model_output"]: BlobReference(
                f"models/bench/{name}/model.ilearner", stack.connection_string
            ),
            service["evaluation_output"]: BlobReference(
                f"models/bench/{name}/evaluation.csv", stack.connection_string
            ),
        },
    )
    job_id = hook.submit_job(body)
    if start:
        hook.start_job(job_id)
    return str(job_id)


def finished_job(stack: Any) -> str:
    """Create, start and wait for one BES job on the stack (with this checkout's sync hook)."""
    from airflow_provider_amlretrain.api.polling import JobPollingRules
    from airflow_provider_amlretrain.hooks.studio import AzureMLStudioHook

    hook = AzureMLStudioHook(STUDIO_CONN)
    job_id = submit_training_job(stack, hook, "polls")
    hook.wait_for_job(job_id, JobPollingRules(poll_interval=0.05))
    return job_id


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """
    The benchmark's options.

    :param parser: The parser to extend.
    """
    parser.add_argument("--callers", type=int, default=1000, help="concurrent callers (deferred waits)")
    parser.add_argument("--rounds", type=int, default=3, help="status polls per caller")
    parser.add_argument(
        "--compare-with",
        type=Path,
        action="append",
        default=[],
        help="another checkout to run the same client on",
    )


def main() -> None:
    """Run the benchmark and write its results file."""
    parser = benchmark_parser(__doc__, "status_polls")
    add_arguments(parser)
    args = parser.parse_args()
    results_file = ResultsFile(args.output)
    results_file.write(bench_status_polls(args))


if __name__ == "__main__":
    sys.path.insert(0, str(REPO_ROOT))
    main()
