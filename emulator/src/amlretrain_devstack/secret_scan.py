"""Search what an Airflow installation kept (logs, metadata DB, raised messages) for the stack's secrets.

The secrets in play are those the stack handed out (service API keys, the workspace token, the storage
account key, the managed-identity header) plus any shape of secret whatever its value: a SAS signature
(``sig=`` followed by anything but ``***``), a bearer token, an ``AccountKey=``. A hit is reported by
where it was found and which secret it was, never by the secret itself.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from pathlib import Path

#: Keys of the stack and seed documents whose values are secrets.
SECRET_KEYS = frozenset(
    {"api_key", "primary_key", "secondary_key", "key", "token", "secondary_token", "workspace_token"}
)
#: Secret shapes, whatever their value (the redacted forms ``sig=***``, ``Bearer ***`` do not match).
SECRET_SHAPES: dict[str, re.Pattern[str]] = {
    "SAS signature": re.compile(r"(?i)[?&]sig=(?!\*\*\*)[A-Za-z0-9%+/=]{8,}"),
    "bearer token": re.compile(r"(?i)\bbearer\s+(?!\*\*\*)[A-Za-z0-9._~+/=-]{12,}"),
    "account key": re.compile(r"(?i)AccountKey=(?!\*\*\*)[A-Za-z0-9+/=]{12,}"),
}
_ACCOUNT_KEY = re.compile(r"(?i)AccountKey=([^;]+)")


@dataclass(frozen=True)
class SecretHit:
    """
    One secret found where it must not be.

    :param where: The file, or ``db:<table>`` for the metadata DB.
    :param secret: Which secret (its name, never its value).
    :param context: The text around it, with the secret itself replaced by ``<secret>``.
    """

    where: str
    secret: str
    context: str


def stack_secrets(stack: Mapping[str, Any]) -> dict[str, str]:
    """
    Every secret value a stack document holds, named by where it is (``seed.services[0].api_key``...).

    :param stack: The ``stack.json`` document (see :func:`~amlretrain_devstack.state.load_stack`).
    """
    found: dict[str, str] = {}

    def walk(value: Any, path: str) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                where = f"{path}.{key}" if path else str(key)
                if key in SECRET_KEYS and isinstance(item, str) and len(item) >= 8:
                    found[where] = item
                elif key in ("connection_string", "identity_header") and isinstance(item, str):
                    account_key = _ACCOUNT_KEY.search(item)
                    found[where] = account_key.group(1) if account_key else item
                else:
                    walk(item, where)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                walk(item, f"{path}[{index}]")

    walk(dict(stack), "")
    return found


def find_secrets(text: str, where: str, secrets: Mapping[str, str]) -> list[SecretHit]:
    """
    The secrets (literal values and secret shapes) in one text.

    :param text: What to search.
    :param where: Where the text comes from, for the report.
    :param secrets: Literal secrets by name (see :func:`stack_secrets`).
    """
    hits = []
    for name, value in secrets.items():
        start = text.find(value)
        if start >= 0:
            hits.append(SecretHit(where, name, _context(text, start, start + len(value), secrets)))
    for name, pattern in SECRET_SHAPES.items():
        for match in pattern.finditer(text):
            hits.append(SecretHit(where, name, _context(text, match.start(), match.end(), secrets)))
    return hits


def _context(text: str, start: int, end: int, secrets: Mapping[str, str]) -> str:
    """Up to 60 characters each side of a hit; the hit and every other secret near it read ``<secret>``."""
    reach = 60 + max((len(value) for value in secrets.values()), default=0) + 200
    before, after = text[max(0, start - reach) : start], text[end : end + reach]
    for value in secrets.values():
        before, after = before.replace(value, "<secret>"), after.replace(value, "<secret>")
    for pattern in SECRET_SHAPES.values():
        before, after = pattern.sub("<secret>", before), pattern.sub("<secret>", after)
    return (before[-60:] + "<secret>" + after[:60]).replace("\n", " ")


def scan_files(paths: Iterable[Path], secrets: Mapping[str, str]) -> tuple[int, list[SecretHit]]:
    """
    Search files (directories: every file under them) for secrets.

    :param paths: Files or directories.
    :param secrets: Literal secrets by name.
    :return: How many files were searched, and the hits.
    """
    searched, hits = 0, []
    for path in paths:
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            if file.suffix in (".db", ".sqlite") or not file.exists():
                continue  # databases are dumped table by table (scan_sqlite)
            searched += 1
            hits.extend(find_secrets(file.read_text(encoding="utf-8", errors="replace"), str(file), secrets))
    return searched, hits


def scan_sqlite(db_path: Path, secrets: Mapping[str, str]) -> tuple[int, list[SecretHit]]:
    """
    Search a full dump of an SQLite metadata DB (XCom, rendered fields, task instances, DAG runs...).

    :param db_path: The database file.
    :param secrets: Literal secrets by name.
    :return: How many rows the dump has, and the hits (``where`` is ``db:<table>``).
    """
    connection = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        tables = [row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        rows, hits = 0, []
        for table in tables:
            for row in connection.execute(f'SELECT * FROM "{table}"'):
                rows += 1
                text = " ".join(_cell_text(cell) for cell in row)
                hits.extend(find_secrets(text, f"db:{table}", secrets))
        return rows, hits
    finally:
        connection.close()


def _cell_text(cell: Any) -> str:
    if isinstance(cell, bytes):
        return cell.decode("utf-8", errors="replace")
    return "" if cell is None else str(cell)
