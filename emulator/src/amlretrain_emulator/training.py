"""Really training a small scikit-learn model and evaluating it like Studio's Evaluate Model.

binary: StandardScaler + LogisticRegression; regression: StandardScaler + Ridge. The data is
split 75/25 (stratified for binary, fixed seed); the model document is evaluated through
:func:`.scoring.predict`, so the metrics describe exactly the ``.ilearner`` that is written.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from amlretrain_emulator.scoring import (
    MODEL_FORMAT,
    MODEL_FORMAT_VERSION,
    predict,
    validate_model,
)
from amlretrain_emulator.tables import DataError, numeric_matrix, parse_csv, to_csv

if TYPE_CHECKING:
    import numpy as np

REGRESSION_COLUMNS = (
    "Negative Log Likelihood",
    "Mean Absolute Error",
    "Root Mean Squared Error",
    "Relative Absolute Error",
    "Relative Squared Error",
    "Coefficient of Determination",
)
BINARY_COLUMNS = (
    "True Positive",
    "False Negative",
    "False Positive",
    "True Negative",
    "Positive Label",
    "Negative Label",
    "Accuracy",
    "Precision",
    "Recall",
    "F-Score",
    "AUC",
    "Average Log Loss",
    "Training Log Loss",
)
MIN_ROWS = 20
TEST_FRACTION = 0.25
RANDOM_STATE = 42


@dataclass(frozen=True)
class TrainingResult:
    """What a training run produces.

    :param model: the model document (see :mod:`.scoring`).
    :param metrics: the Evaluate Model row, by column name.
    :param evaluation_csv: the Evaluate Model CSV (header + one row).
    """

    model: dict[str, Any]
    metrics: dict[str, Any]
    evaluation_csv: bytes


def load_training_table(data: bytes, label: str, what: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Parse a training CSV into feature names, features and labels.

    :param data: CSV bytes with a header row.
    :param label: the label column name.
    :param what: safe name of the source for messages.
    :raises DataError: naming the problem.
    """
    header, rows = parse_csv(data, what)
    if label not in header:
        raise DataError(
            f"Input '{what}' has no label column '{label}'. Columns found: {', '.join(header[:12])}"
            f"{'...' if len(header) > 12 else ''}."
        )
    matrix = numeric_matrix(header, rows, what)
    if len(rows) < MIN_ROWS:
        raise DataError(f"Input '{what}' has {len(rows)} data rows; training needs at least {MIN_ROWS}.")
    position = header.index(label)
    features = [name for name in header if name != label]
    if not features:
        raise DataError(f"Input '{what}' has no feature columns besides the label '{label}'.")
    import numpy as np

    return features, np.delete(matrix, position, axis=1), matrix[:, position]


def train(
    task: str, data: bytes, label: str, what: str, extra: dict[str, Any] | None = None
) -> TrainingResult:
    """Train and evaluate a model from CSV bytes.

    :param task: ``binary`` or ``regression``.
    :param data: training CSV (header row, numeric columns).
    :param label: label column name.
    :param what: safe name of the source for messages.
    :param extra: extra fields stored in the model document (e.g. the job id).
    :raises DataError: if the data cannot be trained on.
    """
    import numpy as np
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    features, x, y = load_training_table(data, label, what)
    classes: list[Any] | None = None
    if task == "binary":
        values = sorted(set(y.tolist()))
        if len(values) != 2:
            raise DataError(
                f"Input '{what}' label column '{label}' has {len(values)} distinct values; binary classification needs exactly 2."
            )
        classes = [int(v) if float(v).is_integer() else v for v in values]
        counts = [int((y == v).sum()) for v in values]
        if min(counts) < 2:
            raise DataError(f"Input '{what}' label column '{label}' has fewer than 2 rows of one class.")
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=TEST_FRACTION, random_state=RANDOM_STATE, stratify=y if task == "binary" else None
    )
    scaler = StandardScaler().fit(x_train)
    z_train = scaler.transform(x_train)
    if task == "binary":
        from sklearn.linear_model import LogisticRegression

        assert classes is not None
        estimator = LogisticRegression(max_iter=2000).fit(z_train, (y_train == float(classes[1])).astype(int))
        coef, intercept, algorithm = estimator.coef_[0], float(estimator.intercept_[0]), "LogisticRegression"
    else:
        from sklearn.linear_model import Ridge

        estimator = Ridge(alpha=1.0).fit(z_train, y_train)
        coef, intercept, algorithm = estimator.coef_, float(estimator.intercept_), "Ridge"
    model: dict[str, Any] = {
        "format": MODEL_FORMAT,
        "format_version": MODEL_FORMAT_VERSION,
        "task": task,
        "algorithm": algorithm,
        "feature_names": features,
        "label": label,
        "scaler": {"mean": [float(v) for v in scaler.mean_], "scale": [float(v) for v in scaler.scale_]},
        "coef": [float(v) for v in np.ravel(coef)],
        "intercept": intercept,
        "classes": classes,
        "training_rows": len(y_train),
        "trained_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        **(extra or {}),
    }
    validate_model(model)
    columns: tuple[str, ...]
    if task == "binary":
        metrics = binary_metrics(model, x_train, y_train, x_test, y_test)
        columns = BINARY_COLUMNS
    else:
        metrics = regression_metrics(model, x_train, y_train, x_test, y_test)
        columns = REGRESSION_COLUMNS
    csv_bytes = to_csv(columns, [[metrics[c] for c in columns]])
    return TrainingResult(model=model, metrics=metrics, evaluation_csv=csv_bytes)


def _log_loss(truth: np.ndarray, probability: np.ndarray) -> float:
    import numpy as np

    p = np.clip(probability, 1e-15, 1 - 1e-15)
    return float(-np.mean(truth * np.log(p) + (1 - truth) * np.log(1 - p)))


def binary_metrics(
    model: dict[str, Any], x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray
) -> dict[str, Any]:
    """Evaluate Model's binary classification row on the held-out split.

    :param model: the model document.
    :param x_train: training features (for the training log loss).
    :param y_train: training labels.
    :param x_test: held-out features.
    :param y_test: held-out labels.
    """
    from sklearn.metrics import roc_auc_score

    negative, positive = model["classes"]
    predicted, probability = predict(model, x_test)
    assert probability is not None
    truth = (y_test == float(positive)).astype(int)
    guessed = (predicted == positive).astype(int)
    tp = int(((truth == 1) & (guessed == 1)).sum())
    fn = int(((truth == 1) & (guessed == 0)).sum())
    fp = int(((truth == 0) & (guessed == 1)).sum())
    tn = int(((truth == 0) & (guessed == 0)).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f_score = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    auc = float(roc_auc_score(truth, probability)) if 0 < truth.sum() < len(truth) else 0.5
    _, train_probability = predict(model, x_train)
    assert train_probability is not None
    return {
        "True Positive": tp,
        "False Negative": fn,
        "False Positive": fp,
        "True Negative": tn,
        "Positive Label": positive,
        "Negative Label": negative,
        "Accuracy": (tp + tn) / len(truth),
        "Precision": precision,
        "Recall": recall,
        "F-Score": f_score,
        "AUC": auc,
        "Average Log Loss": _log_loss(truth, probability),
        "Training Log Loss": _log_loss((y_train == float(positive)).astype(int), train_probability),
    }


def regression_metrics(
    model: dict[str, Any], x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray
) -> dict[str, Any]:
    """Evaluate Model's regression row on the held-out split.

    :param model: the model document.
    :param x_train: training features (for the residual variance of the likelihood).
    :param y_train: training labels.
    :param x_test: held-out features.
    :param y_test: held-out labels.
    """
    import numpy as np

    predicted, _ = predict(model, x_test)
    residual = y_test - predicted
    train_residual = y_train - predict(model, x_train)[0]
    variance = max(float(np.mean(train_residual**2)), 1e-12)
    spread_abs = float(np.sum(np.abs(y_test - y_test.mean()))) or 1e-12
    spread_sq = float(np.sum((y_test - y_test.mean()) ** 2)) or 1e-12
    rse = float(np.sum(residual**2)) / spread_sq
    return {
        "Negative Log Likelihood": float(
            np.sum(0.5 * math.log(2 * math.pi * variance) + residual**2 / (2 * variance))
        ),
        "Mean Absolute Error": float(np.mean(np.abs(residual))),
        "Root Mean Squared Error": float(np.sqrt(np.mean(residual**2))),
        "Relative Absolute Error": float(np.sum(np.abs(residual))) / spread_abs,
        "Relative Squared Error": rse,
        "Coefficient of Determination": 1.0 - rse,
    }
