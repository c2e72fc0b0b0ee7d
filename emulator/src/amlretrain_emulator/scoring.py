"""The emulator's ``.ilearner`` format (JSON, never pickle) and scoring with numpy.

A model file is a JSON object::

    {"format": "amlretrain-emulator-ilearner", "format_version": 1,
     "task": "binary" | "regression", "algorithm": "LogisticRegression" | "Ridge",
     "feature_names": [...], "label": "label",
     "scaler": {"mean": [...], "scale": [...]}, "coef": [...], "intercept": 0.1,
     "classes": [0, 1] (binary only, else null), "training_rows": 298, "trained_at": "...Z"}

Scoring standardises the features, then applies the linear model (a sigmoid for binary).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from amlretrain_emulator.tables import DataError, format_value

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy as np

MODEL_FORMAT = "amlretrain-emulator-ilearner"
MODEL_FORMAT_VERSION = 1
SCORED_LABELS = "Scored Labels"
SCORED_PROBABILITIES = "Scored Probabilities"


class ModelError(ValueError):
    """A model file that is not a valid emulator ``.ilearner``."""


def dump_model(model: dict[str, Any]) -> bytes:
    """Serialise a model (validating it first).

    :param model: the model document.
    """
    validate_model(model)
    return json.dumps(model, indent=1, sort_keys=True).encode("utf-8")


def load_model(data: bytes) -> dict[str, Any]:
    """Parse and validate a ``.ilearner`` file.

    :param data: the file content.
    :raises ModelError: if it is not a valid emulator model.
    """
    try:
        model = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ModelError("the file is not an emulator .ilearner (expected a JSON model document)") from None
    validate_model(model)
    return model


def validate_model(model: Any) -> None:
    """Check the structure of a model document.

    :param model: the parsed document.
    :raises ModelError: naming the problem.
    """
    if not isinstance(model, dict) or model.get("format") != MODEL_FORMAT:
        raise ModelError(f"the file is not an emulator .ilearner (format must be {MODEL_FORMAT!r})")
    if model.get("format_version") != MODEL_FORMAT_VERSION:
        raise ModelError(f"unsupported .ilearner format_version {model.get('format_version')!r}")
    task = model.get("task")
    if task not in ("binary", "regression"):
        raise ModelError(f"unknown model task {task!r}")
    names = model.get("feature_names")
    scaler = model.get("scaler") or {}
    width = len(names) if isinstance(names, list) else -1
    for what, values in (
        ("scaler.mean", scaler.get("mean")),
        ("scaler.scale", scaler.get("scale")),
        ("coef", model.get("coef")),
    ):
        if (
            not isinstance(values, list)
            or len(values) != width
            or not all(isinstance(v, int | float) for v in values)
        ):
            raise ModelError(f"model {what} must be a list of {width} numbers")
    if not isinstance(model.get("intercept"), int | float):
        raise ModelError("model intercept must be a number")
    if task == "binary":
        classes = model.get("classes")
        if not isinstance(classes, list) or len(classes) != 2:
            raise ModelError("a binary model needs two classes")


def predict(model: dict[str, Any], features: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Predict labels (and positive-class probabilities for binary models).

    :param model: a validated model document.
    :param features: matrix whose columns follow ``model["feature_names"]``.
    :return: ``(labels, probabilities)``; probabilities is ``None`` for regression.
    """
    import numpy as np

    mean = np.asarray(model["scaler"]["mean"], dtype=float)
    scale = np.asarray(model["scaler"]["scale"], dtype=float)
    scale = np.where(scale == 0, 1.0, scale)
    z = (np.asarray(features, dtype=float) - mean) / scale
    raw = z @ np.asarray(model["coef"], dtype=float) + float(model["intercept"])
    if model["task"] == "regression":
        return raw, None
    probabilities = 1.0 / (1.0 + np.exp(-np.clip(raw, -500, 500)))
    negative, positive = model["classes"]
    labels = np.where(probabilities >= 0.5, positive, negative)
    return labels, probabilities


def score_table(
    model: dict[str, Any], column_names: Sequence[str], values: Sequence[Sequence[Any]]
) -> tuple[list[str], list[str], list[list[str]]]:
    """Score a table given as column names and rows (RRS style): input columns plus scored columns.

    :param model: a validated model document.
    :param column_names: the input column names (must include every model feature).
    :param values: rows of values (strings or numbers).
    :return: output column names, column types and rows of strings.
    :raises DataError: missing feature columns or non-numeric feature values.
    """
    import numpy as np

    names = list(column_names)
    missing = [name for name in model["feature_names"] if name not in names]
    if missing:
        raise DataError(
            f"the input is missing feature columns {missing[:5]}{'...' if len(missing) > 5 else ''}"
        )
    positions = [names.index(name) for name in model["feature_names"]]
    matrix = np.empty((len(values), len(positions)), dtype=float)
    for i, row in enumerate(values):
        if len(row) != len(names):
            raise DataError(f"row {i + 1} has {len(row)} values but there are {len(names)} column names")
        for j, position in enumerate(positions):
            try:
                matrix[i, j] = float(row[position])
            except (TypeError, ValueError):
                raise DataError(
                    f"column '{names[position]}' row {i + 1} is not numeric: {str(row[position])[:40]!r}"
                ) from None
    labels, probabilities = predict(model, matrix)
    out_names = [*names, SCORED_LABELS]
    out_types = [_column_type(values, k) for k in range(len(names))]
    out_types.append(
        "Int32"
        if model["task"] == "binary" and all(isinstance(c, int) for c in model["classes"])
        else "Double"
    )
    if probabilities is not None:
        out_names.append(SCORED_PROBABILITIES)
        out_types.append("Double")
    rows: list[list[str]] = []
    for i, row in enumerate(values):
        scored = [format_value(labels[i])]
        if probabilities is not None:
            scored.append(format_value(float(probabilities[i])))
        rows.append([format_value(v) for v in row] + scored)
    return out_names, out_types, rows


def _column_type(values: Sequence[Sequence[Any]], column: int) -> str:
    for row in values:
        try:
            float(row[column])
        except (TypeError, ValueError, IndexError):
            return "String"
    return "Double"
