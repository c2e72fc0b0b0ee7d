"""Command line: ``python -m amlretrain_emulator {serve,seed}``.

``serve --host 127.0.0.1 --port 8765 --state-dir D [--config FILE.json]`` runs the emulator
(over HTTPS with ``--ssl-certfile CERT.pem --ssl-keyfile KEY.pem``).
``seed --state-dir D --storage-connection-string CS [--days N] [--start-date YYYY-MM-DD]`` creates
the workspace, services, keys and data, and prints a JSON description on stdout.

The storage connection string may also come from the environment variable
``AMLRETRAIN_EMULATOR_STORAGE_CONNECTION_STRING`` (keeps it out of process listings).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

CONNECTION_STRING_ENV = "AMLRETRAIN_EMULATOR_STORAGE_CONNECTION_STRING"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m amlretrain_emulator", description=__doc__.splitlines()[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the emulator (uvicorn)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8765)
    serve.add_argument("--state-dir", help="state directory (or state_dir in the config file)")
    serve.add_argument("--config", help="JSON config file (see EmulatorConfig)")
    serve.add_argument(
        "--storage-connection-string", help=f"overrides the config file (or set {CONNECTION_STRING_ENV})"
    )
    serve.add_argument("--ssl-certfile", help="serve HTTPS with this PEM certificate (with --ssl-keyfile)")
    serve.add_argument("--ssl-keyfile", help="the PEM private key of --ssl-certfile")
    serve.add_argument("--job-concurrency", type=int)
    serve.add_argument("--min-job-seconds", type=float)
    serve.add_argument("--sas-ttl-seconds", type=int)
    serve.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )

    seed = commands.add_parser("seed", help="create workspace, services, keys and training data")
    seed.add_argument("--state-dir", required=True)
    seed.add_argument("--storage-connection-string", help=f"or set {CONNECTION_STRING_ENV}")
    seed.add_argument("--days", type=int, default=7, help="dated partitions per task (default 7)")
    seed.add_argument(
        "--start-date", type=dt.date.fromisoformat, help="first date, YYYY-MM-DD (default: ending today)"
    )
    seed.add_argument("--container", default="training-data", help="data container (default training-data)")
    return parser


def _serve(args: argparse.Namespace) -> int:
    if bool(args.ssl_certfile) != bool(args.ssl_keyfile):
        print(
            "--ssl-certfile and --ssl-keyfile go together: give both (HTTPS) or neither (HTTP)",
            file=sys.stderr,
        )
        return 2
    import uvicorn

    from amlretrain_emulator.app import create_app
    from amlretrain_emulator.config import EmulatorConfig

    config = EmulatorConfig.load(
        args.config,
        state_dir=args.state_dir,
        storage_connection_string=args.storage_connection_string or os.environ.get(CONNECTION_STRING_ENV),
        job_concurrency=args.job_concurrency,
        min_job_seconds=args.min_job_seconds,
        sas_ttl_seconds=args.sas_ttl_seconds,
    )
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("azure").setLevel(logging.WARNING)  # its HTTP log is noisy
    scheme = "https" if args.ssl_certfile else "http"
    print(
        f"Azure ML classic emulator on {scheme}://{args.host}:{args.port} (state dir {config.state_dir})",
        file=sys.stderr,
    )
    uvicorn.run(
        create_app(config),
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        ssl_certfile=args.ssl_certfile,
        ssl_keyfile=args.ssl_keyfile,
    )
    return 0


def _seed(args: argparse.Namespace) -> int:
    from amlretrain_emulator.seed import seed

    connection_string = args.storage_connection_string or os.environ.get(CONNECTION_STRING_ENV)
    if not connection_string:
        print(f"seed needs --storage-connection-string or {CONNECTION_STRING_ENV}", file=sys.stderr)
        return 2
    result = seed(
        args.state_dir,
        connection_string,
        days=args.days,
        start_date=args.start_date,
        container=args.container,
    )
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``amlretrain-emulator`` script.

    :param argv: arguments (default ``sys.argv[1:]``).
    """
    args = _parser().parse_args(argv)
    return _serve(args) if args.command == "serve" else _seed(args)


if __name__ == "__main__":
    sys.exit(main())
