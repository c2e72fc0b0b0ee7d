"""Smoke tests after a promotion: score a few rows of real data and check the answer makes sense."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_amlretrain.exceptions import AzureMLConfigError, AzureMLError, SmokeTestError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow_provider_amlretrain.api.rrs import ScoringTable


@dataclass(frozen=True)
class SmokeSample:
    """
    Rows to score.

    :param columns: Column names.
    :param rows: Rows (strings, as in the CSV).
    """

    columns: list[str]
    rows: list[list[str]]


def sample_from_csv(
    text: str, *, max_rows: int = 5, drop_columns: Sequence[str] = (), source: str = "sample CSV"
) -> SmokeSample:
    """
    The first rows of a CSV with a header, without the label column(s).

    :param text: The CSV text.
    :param max_rows: How many rows to keep.
    :param drop_columns: Columns to leave out (e.g. the label), case-insensitive.
    :param source: Where the text came from, for messages.
    """
    rows = [r for r in csv.reader(io.StringIO(text.lstrip("\ufeff"))) if r]
    if len(rows) < 2:
        raise AzureMLConfigError(f"The smoke-test sample {source} needs a header and at least one row.")
    header = [c.strip() for c in rows[0]]
    for number, row in enumerate(rows[1 : max_rows + 1], start=1):
        if len(row) != len(header):
            raise AzureMLConfigError(
                f"The smoke-test sample {source} row {number} has {len(row)} values for {len(header)} columns."
            )
    drop = {c.lower() for c in drop_columns}
    keep = [i for i, name in enumerate(header) if name.lower() not in drop]
    return SmokeSample(
        columns=[header[i] for i in keep], rows=[[row[i] for i in keep] for row in rows[1 : max_rows + 1]]
    )


def load_sample(wasb_conn_id: str, relative_location: str, **kwargs: Any) -> SmokeSample:
    """
    Read a sample CSV through ``WasbHook``.

    :param wasb_conn_id: The ``wasb`` connection.
    :param relative_location: ``container/path.csv``.
    :param kwargs: Passed to :func:`sample_from_csv`.
    :raises AzureMLConfigError: when the sample does not exist or is not a usable CSV.
    """
    from airflow_provider_amlretrain.blob_text import read_text_blob

    text = read_text_blob(
        wasb_conn_id,
        relative_location,
        "The smoke-test sample",
        "Point smoke_test_sample at a CSV with a header and rows shaped like the training data.",
    )
    return sample_from_csv(text, source=relative_location, **kwargs)


@dataclass(frozen=True)
class SmokeTestResult:
    """
    :param predictions: The scored label of each sample row.
    :param columns: The answer's columns.
    """

    predictions: list[str]
    columns: list[str]

    def to_summary(self) -> dict[str, Any]:
        """Plain data for XCom."""
        return {"predictions": self.predictions, "columns": self.columns}


def check_scoring(
    sample: SmokeSample, table: ScoringTable, *, label_column: str = "Scored Labels"
) -> SmokeTestResult:
    """
    Check a scoring answer: one row per sample row, and a non-empty scored label on each.

    :param sample: What was scored.
    :param table: The answer.
    :param label_column: The column holding predictions.
    :raises SmokeTestError: saying what was wrong.
    """
    if len(table.values) != len(sample.rows):
        raise SmokeTestError(f"Scoring {len(sample.rows)} rows returned {len(table.values)} rows.")
    try:
        predictions = table.column(label_column)
    except AzureMLError as err:
        raise SmokeTestError(str(err)) from err
    empty = [i for i, p in enumerate(predictions) if p.strip() == "" or p.lower() == "nan"]
    if empty:
        raise SmokeTestError(f"The model returned no {label_column!r} for sample row(s) {empty}.")
    return SmokeTestResult(predictions=predictions, columns=table.columns)
