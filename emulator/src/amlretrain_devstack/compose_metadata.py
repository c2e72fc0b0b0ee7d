"""docker-compose.yaml's ``airflow-init``: write the stack's connections and Variables into the metadata DB.

The emulator container seeds its world and writes the seed (service ids, API keys, workspace token) to
``/state/seed.json``; this turns it into the same connections ``make airflow`` writes, addressed by the
compose service names::

    python -m amlretrain_devstack.compose_metadata --seed /state/seed.json \\
        --emulator-url http://emulator:8080

The storage connection string comes from ``AMLRETRAIN_STORAGE_CONNECTION_STRING`` (not the command line).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from amlretrain_devstack.connections import airflow_connections, airflow_variables
from amlretrain_devstack.errors import DevStackError
from amlretrain_devstack.state import load_stack, write_private_json

if TYPE_CHECKING:
    from collections.abc import Sequence

STORAGE_ENV = "AMLRETRAIN_STORAGE_CONNECTION_STRING"


def compose_stack(seed: dict[str, Any], emulator_url: str, connection_string: str) -> dict[str, Any]:
    """A ``stack.json``-shaped document for the compose world.

    :param seed: the emulator's seed output.
    :param emulator_url: the emulator as the Airflow containers reach it.
    :param connection_string: Azurite's connection string as they reach it.
    """
    return {
        "azurite": {"connection_string": connection_string},
        "emulator": {"url": emulator_url},
        "seed": seed,
    }


def import_documents(stack: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The ``airflow connections import`` and ``airflow variables import`` documents of a stack.

    :param stack: a ``stack.json``-shaped document.
    :return: ``{"connections": {...}, "variables": {...}}``; extras as JSON text, empty fields left out.
    """
    connections = {
        conn_id: {
            name: json.dumps(value) if name == "extra" else value
            for name, value in connection.items()
            if value not in (None, "", {})
        }
        for conn_id, connection in airflow_connections(stack).items()
    }
    return {"connections": connections, "variables": airflow_variables(stack)}


def run_imports(documents: dict[str, dict[str, Any]], env: dict[str, str] | None = None) -> None:
    """Run the two imports against the metadata DB of ``env`` (files mode 0600, removed after).

    :param documents: :func:`import_documents`.
    :param env: the Airflow environment (default: this process's).
    :raises DevStackError: naming the command that failed (its output is withheld: it may show secrets).
    """
    commands = {
        "connections": ["connections", "import", "--overwrite"],
        "variables": ["variables", "import", "-a", "overwrite"],
    }
    with tempfile.TemporaryDirectory(prefix="amlretrain-import-") as work:
        for name, command in commands.items():
            path = Path(work) / f"{name}.json"
            write_private_json(path, documents[name])
            try:
                result = subprocess.run(
                    [sys.executable, "-m", "airflow", *command, str(path)],
                    env=env,
                    capture_output=True,
                    text=True,
                    check=False,
                )
            finally:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
            if result.returncode != 0:
                raise DevStackError(
                    f"`airflow {' '.join(command)}` failed with code {result.returncode}; "
                    "its output is withheld because it may show secrets."
                )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line.

    :param argv: arguments (default: ``sys.argv[1:]``).
    :return: the exit code.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=Path, required=True, help="the emulator's seed output (JSON)")
    parser.add_argument("--emulator-url", required=True, help="the emulator as Airflow reaches it")
    args = parser.parse_args(argv)
    try:
        connection_string = os.environ.get(STORAGE_ENV)
        if not connection_string:
            raise DevStackError(f"{STORAGE_ENV} is not set: docker-compose.yaml sets it for airflow-init.")
        stack = compose_stack(load_stack(args.seed), args.emulator_url, connection_string)
        documents = import_documents(stack)
        run_imports(documents)
    except DevStackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"Wrote connections {', '.join(sorted(documents['connections']))} and {len(documents['variables'])} Variables."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
