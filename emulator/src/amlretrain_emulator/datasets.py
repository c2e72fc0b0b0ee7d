"""Training data: dated partitions drawn from scikit-learn's bundled data sets (no downloads).

Each date gets its own seeded sample with a mild drift (feature shift, label noise), so models
and metrics differ from day to day while staying reproducible: the same task and date always
give the same bytes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from amlretrain_emulator.tables import to_csv

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class TaskSpec:
    """One emulated experiment family.

    :param task: ``binary`` or ``regression``.
    :param dataset: the scikit-learn loader name.
    :param label: label column name in the CSV files.
    :param experiment: experiment title (names the trained-model resource).
    """

    task: str
    dataset: str
    label: str
    experiment: str


TASKS: dict[str, TaskSpec] = {
    "binary": TaskSpec("binary", "load_breast_cancer", "label", "Breast Cancer"),
    "regression": TaskSpec("regression", "load_diabetes", "target", "Diabetes"),
}

SAMPLE_FRACTION = 0.7


def _seed(*parts: str) -> int:
    return int.from_bytes(hashlib.sha256("|".join(parts).encode()).digest()[:8], "big")


def load_task_data(task: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Feature names, feature matrix and label vector of a task's base data set.

    :param task: ``binary`` or ``regression``.
    """
    import numpy as np
    from sklearn import datasets

    spec = TASKS[task]
    bunch = getattr(datasets, spec.dataset)()
    names = [str(name) for name in bunch.feature_names]
    return names, np.asarray(bunch.data, dtype=float), np.asarray(bunch.target, dtype=float)


def partition(task: str, date: dt.date, day_index: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The rows of one dated partition.

    :param task: ``binary`` or ``regression``.
    :param date: the partition date (seeds the sample).
    :param day_index: days since the first partition (drives the drift).
    """
    import numpy as np

    names, features, labels = load_task_data(task)
    rng = np.random.default_rng(_seed(task, date.isoformat()))
    count = int(len(labels) * SAMPLE_FRACTION)
    index = rng.choice(len(labels), size=count, replace=False)
    x, y = features[index].copy(), labels[index].copy()
    # Drift: a slow shift of the features along a fixed direction, and day-dependent noise.
    direction = np.random.default_rng(_seed(task, "direction")).normal(0.0, 1.0, x.shape[1])
    x += 0.03 * day_index * direction * features.std(axis=0)
    x *= 1.0 + rng.normal(0.0, 0.01, x.shape)
    if task == "binary":
        # Up to 1.4% flipped labels: AUC moves between about 0.92 and 1.0 from day to day, so gates see
        # real differences while a fresh model still clears the example DAGs' 0.9 threshold.
        flip = rng.random(len(y)) < 0.002 + 0.004 * (day_index % 4)
        y[flip] = 1.0 - y[flip]
    else:
        y += rng.normal(0.0, 5.0 + 4.0 * (day_index % 5), len(y))
        y = np.round(y, 2)
    return names, x, y


def partition_csv(task: str, date: dt.date, day_index: int) -> bytes:
    """One dated partition as CSV (header row, features then the label column).

    :param task: ``binary`` or ``regression``.
    :param date: the partition date.
    :param day_index: days since the first partition.
    """
    names, x, y = partition(task, date, day_index)
    label = TASKS[task].label
    rows = [
        [float(f"{v:.6g}") for v in features] + [int(t) if task == "binary" else float(t)]
        for features, t in zip(x, y, strict=True)
    ]
    return to_csv([*names, label], rows)


def sample_csv(task: str, rows: int = 5) -> bytes:
    """
    A few feature rows without the label, for scoring smoke tests and before/after comparisons.

    For binary classification these are the rows a reference model is least sure about (probability
    nearest 0.5), so two models visibly disagree on them; for regression, the first rows.

    :param task: ``binary`` or ``regression``.
    :param rows: number of rows.
    """
    import numpy as np

    names, x, y = load_task_data(task)
    index = np.arange(rows)
    if task == "binary":
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        z = StandardScaler().fit_transform(x)
        probability = LogisticRegression(C=0.05, max_iter=2000).fit(z, y).predict_proba(z)[:, 1]
        index = np.sort(np.argsort(np.abs(probability - 0.5), kind="stable")[:rows])
    return to_csv(names, [[float(f"{v:.6g}") for v in x[i]] for i in index])


def date_range(start: dt.date, days: int) -> list[dt.date]:
    """``days`` consecutive dates from ``start``.

    :param start: first date.
    :param days: how many.
    """
    return [start + dt.timedelta(days=i) for i in range(days)]
