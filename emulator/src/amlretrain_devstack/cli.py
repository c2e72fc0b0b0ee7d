"""Command line: ``python -m amlretrain_devstack up|down|status|env``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from amlretrain_devstack.connections import (
    airflow_connection_env,
    seeded_services,
    service_conn_id,
    shell_exports,
)
from amlretrain_devstack.errors import DevStackError
from amlretrain_devstack.stack import stack_status, start_stack, stop_stack
from amlretrain_devstack.state import DEFAULT_DIR, load_stack, stack_file

if TYPE_CHECKING:
    from collections.abc import Sequence

    from amlretrain_devstack.stack import Stack

PROG = "python -m amlretrain_devstack"


def load_fault_config(path: Path) -> dict[str, Any]:
    """Read a fault config file (a JSON object merged into the emulator config).

    :param path: the JSON file.
    :return: the parsed object.
    :raises DevStackError: if the file is missing or not a JSON object.
    """
    try:
        document = json.loads(Path(path).read_text())
    except OSError as exc:
        raise DevStackError(f"Cannot read fault config {path}: {exc.strerror or exc}") from exc
    except json.JSONDecodeError as exc:
        raise DevStackError(f"Fault config {path} is not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise DevStackError(
            f"Fault config {path} must be a JSON object, e.g. "
            '{"faults": [...], "job_concurrency": 2, "min_job_seconds": 0.5}.'
        )
    return document


def summary(stack: Stack) -> str:
    """Describe a running stack for humans, without any key, token or connection string.

    :param stack: the stack.
    :return: a few lines of text.
    """
    info = stack.info
    state = "started" if stack.started else "already running"
    azurite = info["azurite"]
    lines = [
        f"AML retrain dev stack is up ({state}) in {stack.directory}",
        f"  Azurite {azurite.get('version', '')}: {azurite['blob_endpoint']} (pid {azurite['pid']})",
    ]
    emulator = info.get("emulator")
    if emulator:
        lines.append(f"  AML emulator: {emulator['url']} (pid {emulator['pid']})")
        seed = info.get("seed") or {}
        workspace = seed.get("workspace_id") or (seed.get("workspace") or {}).get("id")
        if workspace:
            lines.append(f"  Workspace: {workspace}")
        for service in seeded_services(seed):
            kind = service.get("kind") or "service"
            lines.append(
                f"  {kind.capitalize()} service {service.get('name')} "
                f"(conn {service_conn_id(service)}): {service.get('api_location') or ''}"
            )
        if seed.get("data_container"):
            dates = seed.get("dates") or []
            span = f", {len(dates)} dates {dates[0]}..{dates[-1]}" if dates else ""
            lines.append(f"  Training data: container {seed['data_container']}{span}")
    else:
        lines.append("  AML emulator: not started (Azurite only)")
    lines += [
        f"  Keys and connection strings: {stack_file(stack.directory)} (mode 0600)",
        f'  Airflow connections: eval "$({PROG} env --dir {stack.directory})"',
        f"  Logs: {stack.directory / 'logs'}",
    ]
    return "\n".join(lines)


def _cmd_up(args: argparse.Namespace) -> int:
    fault_config = load_fault_config(args.fault_config) if args.fault_config else None
    stack = start_stack(args.dir, fault_config, with_emulator=not args.azurite_only, timeout=args.timeout)
    print(summary(stack))
    return 0


def _cmd_down(args: argparse.Namespace) -> int:
    from amlretrain_devstack.deploy_cli import stop_deployments

    # Airflow first: its tasks talk to the stack.
    stopped = stop_deployments(args.dir, grace_seconds=max(args.grace, 20.0))
    stopped += stop_stack(args.dir, grace_seconds=args.grace)
    if stopped:
        print(f"Stopped {', '.join(stopped)} ({args.dir}).")
    else:
        print(f"Nothing was running ({args.dir}).")
    return 0


def _part_line(name: str, part: dict[str, Any] | None) -> str:
    if not part or not part["enabled"]:
        return f"  {name}: not configured"
    if part["healthy"]:
        return f"  {name}: up (pid {part['pid']})"
    if part["alive"]:
        return f"  {name}: NOT ANSWERING (pid {part['pid']} is alive)"
    return f"  {name}: down"


def _cmd_status(args: argparse.Namespace) -> int:
    status = stack_status(args.dir)
    if args.json:
        print(json.dumps(status, indent=2))
    elif not status["exists"]:
        print(f"No stack in {args.dir}: start it with `{PROG} up`.")
    else:
        print(
            f"Stack in {args.dir}: {'up' if status['up'] else 'DOWN'} (recorded status: {status['status']})"
        )
        print(_part_line("Azurite", status["azurite"]))
        print(_part_line("AML emulator", status["emulator"]))
    return 0 if status["up"] else 1


def _cmd_env(args: argparse.Namespace) -> int:
    env = airflow_connection_env(load_stack(stack_file(args.dir)))
    if args.json:
        print(json.dumps(env, indent=2))
    else:
        sys.stdout.write(shell_exports(env))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser.

    :return: the parser with the ``up``, ``down``, ``status`` and ``env`` sub-commands.
    """
    parser = argparse.ArgumentParser(
        prog=PROG, description="Local Azure world for airflow-provider-amlretrain: Azurite + AML emulator."
    )
    common = stack_dir_options()
    commands = parser.add_subparsers(dest="command", required=True)

    up = commands.add_parser("up", parents=[common], help="start the stack in the background (idempotent)")
    up.add_argument("--fault-config", type=Path, help="JSON object merged into the emulator config")
    up.add_argument("--azurite-only", action="store_true", help="start Azurite without the AML emulator")
    up.add_argument("--timeout", type=float, default=60.0, help="seconds to wait per service (default: 60)")
    up.set_defaults(handler=_cmd_up)

    down = commands.add_parser("down", parents=[common], help="stop the stack (idempotent)")
    down.add_argument("--grace", type=float, default=10.0, help="seconds between SIGTERM and SIGKILL")
    down.set_defaults(handler=_cmd_down)

    status = commands.add_parser("status", parents=[common], help="health-check each part; exit 1 if not up")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(handler=_cmd_status)

    env = commands.add_parser("env", parents=[common], help="print AIRFLOW_CONN_* exports (contains secrets)")
    env.add_argument("--json", action="store_true", help="print a JSON object instead of export lines")
    env.set_defaults(handler=_cmd_env)
    return parser


def stack_dir_options() -> argparse.ArgumentParser:
    """The options every dev-stack command has (``--dir``), as a parent parser for its subcommands."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--dir", type=Path, default=DEFAULT_DIR, help="stack directory (default: %(default)s)"
    )
    return common


def run_command(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> int:
    """Parse ``argv`` and run the chosen subcommand's ``handler``; a :class:`DevStackError` is one line.

    :param parser: a parser whose subcommands set ``handler`` (a function of the parsed arguments).
    :param argv: arguments (default: ``sys.argv[1:]``).
    :return: the exit code: the handler's, 1 after a :class:`DevStackError`, 130 when interrupted.
    """
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except DevStackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line.

    :param argv: arguments (default: ``sys.argv[1:]``).
    :return: the exit code.
    """
    return run_command(build_parser(), argv)
