"""The ``stack.json`` file: where a running dev stack records its addresses, keys and pids.

The file is written atomically with mode 0600 because it holds credentials
(the Azurite account key, the emulator's API keys and tokens).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from amlretrain_devstack.errors import DevStackError

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

#: Default stack directory, relative to the current directory.
DEFAULT_DIR = Path(".amlretrain")
STACK_FILE = "stack.json"
SCHEMA_VERSION = 1


def stack_file(directory: Path) -> Path:
    """Return the path of ``stack.json`` inside a stack directory.

    :param directory: the stack directory.
    :return: ``directory / "stack.json"``.
    """
    return Path(directory) / STACK_FILE


def now_iso() -> str:
    """Return the current UTC time as an ISO 8601 string."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def write_private_json(path: Path, document: Mapping[str, Any]) -> None:
    """Atomically write ``document`` as JSON to ``path`` with mode 0600.

    :param path: the destination.
    :param document: the JSON object.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(document, handle, indent=2)
        handle.write("\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def load_stack(path: Path | str) -> dict[str, Any]:
    """Read a ``stack.json``.

    :param path: the file, or the stack directory that holds it.
    :return: the parsed document.
    :raises DevStackError: if it is missing or not valid JSON.
    """
    path = Path(path)
    if path.is_dir():
        path = stack_file(path)
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise DevStackError(
            f"{path} not found: start the stack with `python -m amlretrain_devstack up`."
        ) from exc
    except json.JSONDecodeError as exc:
        raise DevStackError(f"{path} is not valid JSON ({exc}); run `down` then `up` to rewrite it.") from exc
    if not isinstance(document, dict):
        raise DevStackError(f"{path} does not hold a JSON object; run `down` then `up` to rewrite it.")
    return document


def load_stack_if_any(directory: Path) -> dict[str, Any] | None:
    """Read ``stack.json`` from ``directory`` if it exists and is readable.

    :param directory: the stack directory.
    :return: the document, or ``None``.
    """
    with contextlib.suppress(DevStackError):
        return load_stack(stack_file(directory))
    return None


def prepare_directory(directory: Path) -> Path:
    """Create the stack directory (mode 0700) and return its absolute path.

    :param directory: the directory.
    :return: the resolved path.
    """
    directory = Path(directory).expanduser().resolve()
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    return directory


@contextlib.contextmanager
def locked(directory: Path) -> Iterator[None]:
    """Hold an exclusive lock on the stack directory (serialises concurrent ``up``/``down``).

    :param directory: the stack directory (must exist).
    """
    fd = os.open(Path(directory) / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
