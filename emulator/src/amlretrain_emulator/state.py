"""Persistent state: one JSON file per record in the state directory, written atomically.

Layout under the state directory::

    workspace.json               the workspace (id, tokens)
    webservices/<wsId>.json      classic web services (training and predictive) with their
                                 endpoints; each endpoint has its own execution id (the
                                 ``serviceId`` of BES/RRS URLs), keys and trained model
    jobs/<jobId>.json          BES jobs (status, request, results, timestamps)
    arm/<name>.json            new-style (ARM) web services
    operations/<id>.json       ARM long-running operations

Records are read from disk on each access (they are small), so a ``seed`` run against the state
directory of a running emulator is seen at once. Every write goes through a temp file and
``os.replace`` under one process-wide lock.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

KINDS = ("webservices", "jobs", "arm", "operations")
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def atomic_write_json(path: Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` through a temp file and ``os.replace``.

    :param path: destination file.
    :param data: JSON-serialisable data.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=1, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


class StateStore:
    """JSON-file store for the emulator's records.

    :param root: the state directory (created if missing, mode 0700: it holds keys).
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            os.chmod(self.root, 0o700)
        except OSError:
            pass
        for kind in KINDS:
            (self.root / kind).mkdir(exist_ok=True)
        self.lock = threading.RLock()

    @staticmethod
    def valid_id(record_id: str) -> bool:
        """Whether a record id is safe as a file name.

        :param record_id: the id.
        """
        return bool(_SAFE_ID.match(record_id))

    def _path(self, kind: str, record_id: str) -> Path:
        if kind not in KINDS:
            raise ValueError(f"unknown record kind {kind!r}")
        if not _SAFE_ID.match(record_id):
            raise KeyError(record_id)
        return self.root / kind / f"{record_id}.json"

    @staticmethod
    def _read_file(path: Path) -> dict[str, Any] | None:
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None

    def get(self, kind: str, record_id: str) -> dict[str, Any] | None:
        """Read one record, or ``None``.

        :param kind: one of :data:`KINDS`.
        :param record_id: the record id (unsafe ids are simply not found).
        """
        try:
            path = self._path(kind, record_id)
        except KeyError:
            return None
        with self.lock:
            return self._read_file(path)

    def put(self, kind: str, record_id: str, data: dict[str, Any]) -> None:
        """Write one record atomically.

        :param kind: one of :data:`KINDS`.
        :param record_id: the record id.
        :param data: the record.
        """
        with self.lock:
            atomic_write_json(self._path(kind, record_id), data)

    def delete(self, kind: str, record_id: str) -> None:
        """Remove one record (no error if absent).

        :param kind: one of :data:`KINDS`.
        :param record_id: the record id.
        """
        with self.lock:
            try:
                self._path(kind, record_id).unlink()
            except (FileNotFoundError, KeyError):
                pass

    def update(
        self, kind: str, record_id: str, change: Callable[[dict[str, Any]], None]
    ) -> dict[str, Any] | None:
        """Read, change in place and write one record under the lock.

        :param kind: one of :data:`KINDS`.
        :param record_id: the record id.
        :param change: mutates the record; raise to abort without writing.
        :return: the updated record, or ``None`` if it does not exist.
        """
        with self.lock:
            record = self.get(kind, record_id)
            if record is None:
                return None
            change(record)
            self.put(kind, record_id, record)
            return record

    def list(self, kind: str) -> list[dict[str, Any]]:
        """All records of a kind, in file-name order.

        :param kind: one of :data:`KINDS`.
        """
        with self.lock:
            records = []
            for path in sorted((self.root / kind).glob("*.json")):
                record = self._read_file(path)
                if record is not None:
                    records.append(record)
            return records

    # -- workspace -------------------------------------------------------------------------
    def workspace(self) -> dict[str, Any] | None:
        """The workspace record, or ``None`` before seeding."""
        with self.lock:
            return self._read_file(self.root / "workspace.json")

    def put_workspace(self, data: dict[str, Any]) -> None:
        """Write the workspace record.

        :param data: the workspace record.
        """
        with self.lock:
            atomic_write_json(self.root / "workspace.json", data)

    def find_endpoint(self, workspace_id: str, execution_id: str) -> tuple[dict[str, Any], str] | None:
        """The web service and endpoint name whose execution id (BES/RRS ``serviceId``) is given.

        :param workspace_id: the workspace id from the URL.
        :param execution_id: the ``serviceId`` from the URL.
        """
        workspace = self.workspace()
        if workspace is None or workspace.get("id") != workspace_id:
            return None
        for webservice in self.list("webservices"):
            for name, endpoint in webservice.get("endpoints", {}).items():
                if endpoint.get("execution_id") == execution_id:
                    return webservice, name
        return None
