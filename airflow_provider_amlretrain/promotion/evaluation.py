"""Reading the Evaluate Model CSV a training job writes, and knowing which way each metric points."""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from enum import Enum

from airflow_provider_amlretrain.exceptions import EvaluationError


class MetricDirection(str, Enum):
    """Whether a larger or a smaller value of a metric is better."""

    HIGHER_IS_BETTER = "higher"
    LOWER_IS_BETTER = "lower"


# Studio's Evaluate Model column names, lower-cased.
_HIGHER = {
    "accuracy",
    "precision",
    "recall",
    "f-score",
    "auc",
    "coefficient of determination",
    "true positive",
    "true negative",
}
_LOWER = {
    "negative log likelihood",
    "mean absolute error",
    "root mean squared error",
    "relative absolute error",
    "relative squared error",
    "average log loss",
    "training log loss",
    "false positive",
    "false negative",
}


def default_direction(metric: str) -> MetricDirection | None:
    """
    The direction Studio's metric names imply, or ``None`` for a metric this module does not know.

    :param metric: A metric name, any case.
    """
    name = normalize_metric_name(metric)
    if name in _HIGHER:
        return MetricDirection.HIGHER_IS_BETTER
    if name in _LOWER:
        return MetricDirection.LOWER_IS_BETTER
    return None


def normalize_metric_name(metric: str) -> str:
    """
    Metric names match case-insensitively and ignore surrounding blanks.

    :param metric: A metric name.
    """
    return " ".join(metric.strip().lower().split())


@dataclass(frozen=True)
class EvaluationResult:
    """
    The metrics of one evaluated model (one data row of the Evaluate Model CSV).

    :param metrics: Metric name (as in the CSV header) to value; non-numeric columns are left out.
    :param columns: Every column of the header, in order.
    :param labels: Non-numeric columns (e.g. ``Positive Label``) and their values.
    """

    metrics: dict[str, float]
    columns: tuple[str, ...]
    labels: dict[str, str]

    def get(self, metric: str) -> float:
        """
        The value of ``metric`` (case-insensitive).

        :param metric: Metric name.
        :raises EvaluationError: naming the columns found, when the metric is absent.
        """
        wanted = normalize_metric_name(metric)
        for name, value in self.metrics.items():
            if normalize_metric_name(name) == wanted:
                return value
        for name, text in self.labels.items():
            if normalize_metric_name(name) == wanted:
                raise EvaluationError(
                    f"The evaluation's {name!r} is {text!r}, not a number: the model could not be scored on "
                    "that metric. Check the training data and the Evaluate Model settings."
                )
        raise EvaluationError(
            f"The evaluation has no metric {metric!r}; its columns are: {', '.join(self.columns)}. "
            "Fix the metric name in the rule (names match case-insensitively)."
        )


def parse_evaluation_csv(text: str, *, row: int = 0, source: str = "evaluation CSV") -> EvaluationResult:
    """
    Parse an Evaluate Model CSV: one header line, then one row per evaluated model.

    :param text: The CSV text.
    :param row: Which data row to read (0: the first scored set; 1: the second when two are compared).
    :param source: Where the text came from, for messages (a blob URI without SAS).
    """
    text = text.lstrip("\ufeff")
    if not text.strip():
        raise EvaluationError(f"The {source} is empty; expected a header line and one row of metrics.")
    try:
        rows = [r for r in csv.reader(io.StringIO(text)) if any(cell.strip() for cell in r)]
    except csv.Error as err:
        raise EvaluationError(f"The {source} is not valid CSV: {err}.") from err
    header = tuple(cell.strip() for cell in rows[0])
    if len(rows) < 2:
        raise EvaluationError(f"The {source} has a header ({', '.join(header)}) but no row of metrics.")
    if row >= len(rows) - 1:
        raise EvaluationError(f"The {source} has {len(rows) - 1} row(s) of metrics; row {row} was asked for.")
    values = rows[row + 1]
    if len(values) != len(header):
        raise EvaluationError(
            f"The {source} row {row} has {len(values)} values for {len(header)} columns ({', '.join(header)})."
        )
    metrics: dict[str, float] = {}
    labels: dict[str, str] = {}
    for name, raw in zip(header, values, strict=True):
        try:
            value = float(raw)
        except ValueError:
            labels[name] = raw.strip()
            continue
        if math.isnan(value):
            labels[name] = raw.strip()
            continue
        metrics[name] = value
    if not metrics:
        raise EvaluationError(f"The {source} has no numeric metric; its columns are: {', '.join(header)}.")
    return EvaluationResult(metrics=metrics, columns=header, labels=labels)
