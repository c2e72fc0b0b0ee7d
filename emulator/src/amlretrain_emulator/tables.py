"""CSV tables in and out (``csv`` + ``numpy``; no pandas)."""

from __future__ import annotations

import csv
import io
import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy as np


class DataError(ValueError):
    """Input data that cannot be used; the message names the problem and is shown in ``Details``."""


def _is_number(text: str) -> bool:
    try:
        value = float(text)
    except ValueError:
        return False
    return not math.isnan(value) or text.strip().lower() == "nan"


def parse_csv(data: bytes, what: str) -> tuple[list[str], list[list[str]]]:
    """Parse CSV bytes that must start with a header row.

    :param data: the file content (UTF-8, optional BOM).
    :param what: safe name of the source for messages.
    :return: header and data rows (as text).
    :raises DataError: empty file, no header row, ragged rows.
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DataError(
            f"Input '{what}' is not UTF-8 text (expected a CSV file with a header row)."
        ) from None
    rows = [row for row in csv.reader(io.StringIO(text)) if row and any(cell.strip() for cell in row)]
    if not rows:
        raise DataError(f"Input '{what}' is empty (expected a CSV file with a header row).")
    header = [name.strip() for name in rows[0]]
    if all(_is_number(name) for name in header):
        raise DataError(
            f"Input '{what}' has no header row: its first line holds only numbers. Add a header with column names."
        )
    if len(set(header)) != len(header) or any(not name for name in header):
        raise DataError(f"Input '{what}' has empty or duplicate column names in its header row.")
    body = rows[1:]
    for number, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise DataError(
                f"Input '{what}' line {number} has {len(row)} fields but the header has {len(header)} columns."
            )
    return header, body


def numeric_matrix(header: Sequence[str], rows: Sequence[Sequence[str]], what: str) -> np.ndarray:
    """Convert text rows to a float matrix.

    :param header: column names (for messages).
    :param rows: text rows.
    :param what: safe name of the source for messages.
    :raises DataError: naming the first non-numeric cell.
    """
    import numpy as np

    matrix = np.empty((len(rows), len(header)), dtype=float)
    for i, row in enumerate(rows):
        for j, cell in enumerate(row):
            try:
                matrix[i, j] = float(cell)
            except ValueError:
                raise DataError(
                    f"Input '{what}' column '{header[j]}' has a non-numeric value {cell[:40]!r} "
                    f"on data row {i + 1}; the emulated experiment needs numeric features and label."
                ) from None
    if not np.all(np.isfinite(matrix)):
        raise DataError(f"Input '{what}' has missing (NaN) or infinite values.")
    return matrix


def format_value(value: Any) -> str:
    """Format one cell the way Studio's CSV and RRS answers do (text; full float precision).

    :param value: a number or text.
    """
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        value = float(value)  # numpy.float64 is a float subclass with its own repr
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return repr(value)
    try:  # numpy scalars
        return format_value(value.item())
    except AttributeError:
        return str(value)


def to_csv(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> bytes:
    """Render a CSV file (header + rows, ``\\r\\n`` line ends as Studio writes them).

    :param header: column names.
    :param rows: data rows.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    for row in rows:
        writer.writerow([format_value(v) for v in row])
    return buffer.getvalue().encode("utf-8")
