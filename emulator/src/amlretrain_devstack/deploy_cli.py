"""Command line of the Airflow dev deployments (``make airflow``, ``make distributed``)::

    python -m amlretrain_devstack.deploy_cli local [--dir .amlretrain]
    python -m amlretrain_devstack.deploy_cli distributed [--dir .amlretrain]
    python -m amlretrain_devstack.deploy_cli down [--dir .amlretrain]

The stack must be up first (``python -m amlretrain_devstack up``); ``devstack down``
stops the deployments too.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from amlretrain_devstack.airflow_deployment import (
    KINDS,
    connection_ids,
    running_stack_info,
    stop_deployment,
    summary,
)
from amlretrain_devstack.airflow_settings import SETTINGS_FILE
from amlretrain_devstack.cli import run_command, stack_dir_options

if TYPE_CHECKING:
    from collections.abc import Sequence

PROG = "python -m amlretrain_devstack.deploy_cli"


def stop_deployments(stack_dir: Path, grace_seconds: float = 20.0) -> list[str]:
    """Stop every Airflow deployment recorded in ``stack_dir`` (the distributed one first).

    :param stack_dir: the stack directory.
    :param grace_seconds: how long each part gets after SIGTERM.
    :return: ``<kind> <part>`` for each part that was running.
    """
    stopped = []
    for kind in reversed(KINDS):
        stopped += [f"airflow {kind} {part}" for part in stop_deployment(stack_dir, kind, grace_seconds)]
    return stopped


def _cmd_local(args: argparse.Namespace) -> int:
    from amlretrain_devstack.airflow_local import HOW, start_local_airflow

    deployment = start_local_airflow(args.dir, settings_file=args.settings, timeout=args.timeout)
    print(summary(deployment, connection_ids(running_stack_info(args.dir)), HOW))
    return 0


def _cmd_distributed(args: argparse.Namespace) -> int:
    from amlretrain_devstack.distributed import HOW, start_distributed_airflow

    deployment = start_distributed_airflow(args.dir, settings_file=args.settings, timeout=args.timeout)
    print(summary(deployment, connection_ids(running_stack_info(args.dir)), HOW))
    return 0


def _cmd_down(args: argparse.Namespace) -> int:
    stopped = stop_deployments(args.dir)
    print(f"Stopped {', '.join(stopped)}." if stopped else f"No Airflow was running ({args.dir}).")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser (``local``, ``distributed``, ``down``).

    :return: the parser.
    """
    parser = argparse.ArgumentParser(prog=PROG, description="Airflow on the local AML retrain stack.")
    common = stack_dir_options()
    common.add_argument(
        "--settings", type=Path, default=SETTINGS_FILE, help="shared Airflow settings (default: %(default)s)"
    )
    common.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for Airflow")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "local", parents=[common], help="airflow standalone, LocalExecutor, SQLite"
    ).set_defaults(handler=_cmd_local)
    commands.add_parser(
        "distributed", parents=[common], help="PostgreSQL, Redis, CeleryExecutor, two workers"
    ).set_defaults(handler=_cmd_distributed)
    commands.add_parser("down", parents=[common], help="stop the Airflow deployments").set_defaults(
        handler=_cmd_down
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line.

    :param argv: arguments (default: ``sys.argv[1:]``).
    :return: the exit code.
    """
    return run_command(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
