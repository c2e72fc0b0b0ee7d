"""Training, scoring, CSV handling, data sets and config: pure functions, no Azurite needed."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json

import pytest

from amlretrain_emulator import datasets, scoring, training
from amlretrain_emulator.config import EmulatorConfig
from amlretrain_emulator.errors import redact
from amlretrain_emulator.tables import DataError, format_value

DAY = dt.date(2026, 11, 1)


@pytest.fixture(scope="module")
def trained() -> dict[str, training.TrainingResult]:
    return {
        task: training.train(task, datasets.partition_csv(task, DAY, 0), datasets.TASKS[task].label, "unit")
        for task in datasets.TASKS
    }


def test_partitions_are_reproducible_and_drift() -> None:
    first = datasets.partition_csv("binary", DAY, 0)
    assert first == datasets.partition_csv("binary", DAY, 0)
    assert first != datasets.partition_csv("binary", DAY + dt.timedelta(days=1), 1)
    header = first.decode().splitlines()[0].split(",")
    assert header[-1] == "label" and len(header) == 31
    regression = datasets.partition_csv("regression", DAY, 0).decode().splitlines()
    assert regression[0].split(",")[-1] == "target"
    sample = datasets.sample_csv("binary").decode().splitlines()
    assert len(sample) == 6 and "label" not in sample[0]


def test_evaluation_csv_columns(trained: dict[str, training.TrainingResult]) -> None:
    for task, columns in (("binary", training.BINARY_COLUMNS), ("regression", training.REGRESSION_COLUMNS)):
        rows = list(csv.reader(io.StringIO(trained[task].evaluation_csv.decode())))
        assert rows[0] == list(columns) and len(rows) == 2 and len(rows[1]) == len(columns)
        for value in rows[1]:
            float(value)
    metrics = trained["binary"].metrics
    assert (
        metrics["True Positive"]
        + metrics["False Negative"]
        + metrics["False Positive"]
        + metrics["True Negative"]
        > 50
    )
    assert metrics["Positive Label"] == 1 and metrics["Negative Label"] == 0
    assert 0 < trained["regression"].metrics["Coefficient of Determination"] < 1


def test_metrics_differ_by_day() -> None:
    def accuracy(day: int) -> float:
        data = datasets.partition_csv("binary", DAY + dt.timedelta(days=day), day)
        return training.train("binary", data, "label", "unit").metrics["Accuracy"]

    assert len({accuracy(0), accuracy(1), accuracy(2)}) > 1


def test_model_is_json_and_scores(trained: dict[str, training.TrainingResult]) -> None:
    for task in ("binary", "regression"):
        blob = scoring.dump_model(trained[task].model)
        model = scoring.load_model(blob)
        assert json.loads(blob)["format"] == scoring.MODEL_FORMAT
        sample = list(csv.reader(io.StringIO(datasets.sample_csv(task).decode())))
        names, types, rows = scoring.score_table(model, sample[0], sample[1:])
        assert names[-1 if task == "regression" else -2] == scoring.SCORED_LABELS
        assert len(types) == len(names) and all(isinstance(v, str) for row in rows for v in row)
        if task == "binary":
            assert names[-1] == scoring.SCORED_PROBABILITIES
            assert all(row[-2] in ("0", "1") and 0 <= float(row[-1]) <= 1 for row in rows)


def test_scoring_matches_sklearn(trained: dict[str, training.TrainingResult]) -> None:
    """Scoring the stored model document reproduces an independently fitted scikit-learn pipeline.

    The reference is fitted on the same rows with the same split, scaler and estimator, so its
    predictions must agree with the emulator's row by row (binary labels and probabilities,
    regression values) up to floating-point noise.
    """
    import numpy as np
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    for task in ("binary", "regression"):
        data = datasets.partition_csv(task, DAY, 0)
        table = list(csv.reader(io.StringIO(data.decode())))
        header, rows = table[0], table[1:]
        label = datasets.TASKS[task].label
        position = header.index(label)
        x = np.array([[float(v) for i, v in enumerate(row) if i != position] for row in rows])
        y = np.array([float(row[position]) for row in rows])
        x_train, _x_test, y_train, _y_test = train_test_split(
            x,
            y,
            test_size=training.TEST_FRACTION,
            random_state=training.RANDOM_STATE,
            stratify=y if task == "binary" else None,
        )
        estimator = LogisticRegression(max_iter=2000) if task == "binary" else Ridge(alpha=1.0)
        reference = make_pipeline(StandardScaler(), estimator).fit(x_train, y_train)

        # Score through the serialised document, the way a job output is used.
        model = scoring.load_model(scoring.dump_model(trained[task].model))
        names, _types, scored = scoring.score_table(model, header, rows)
        assert len(scored) == len(rows) == len(x)
        labels_at = names.index(scoring.SCORED_LABELS)
        if task == "binary":
            expected_probabilities = reference.predict_proba(x)[:, 1]
            expected_labels = reference.predict(x)
            probabilities_at = names.index(scoring.SCORED_PROBABILITIES)
            for i, row in enumerate(scored):
                assert float(row[probabilities_at]) == pytest.approx(expected_probabilities[i], abs=1e-6), i
                assert int(row[labels_at]) == int(expected_labels[i]), i
            # Not a degenerate model: both classes are predicted and probabilities spread out.
            assert len({row[labels_at] for row in scored}) == 2
            assert np.ptp(expected_probabilities) > 0.5
        else:
            expected_values = reference.predict(x)
            for i, row in enumerate(scored):
                assert float(row[labels_at]) == pytest.approx(expected_values[i], rel=1e-6, abs=1e-6), i


@pytest.mark.parametrize(
    "document",
    [
        b"\x80\x04pickle",
        b"{}",
        b'{"format": "amlretrain-emulator-ilearner", "format_version": 9}',
        b"not json",
    ],
)
def test_load_model_rejects_non_models(document: bytes) -> None:
    with pytest.raises(scoring.ModelError):
        scoring.load_model(document)


def test_score_table_errors(trained: dict[str, training.TrainingResult]) -> None:
    model = trained["regression"].model
    with pytest.raises(DataError, match="missing feature columns"):
        scoring.score_table(model, ["age"], [["1"]])
    names = model["feature_names"]
    with pytest.raises(DataError, match="not numeric"):
        scoring.score_table(model, names, [["x"] * len(names)])


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"1,2\n3,4\n", "no header row"),
        (b"a,b\n1,2\n", "no label column"),
        (b"a,label\n1\n", "fields"),
        (b"a,a,label\n1,2,3\n", "duplicate"),
        (b"a,label\n" + b"1,0\n" * 5, "at least"),
        (b"a,label\n" + b"1,0\n2,1\n3,2\n" * 10, "exactly 2"),
    ],
)
def test_training_data_errors(data: bytes, message: str) -> None:
    with pytest.raises(DataError, match=message):
        training.train("binary", data, "label", "unit")


def test_format_value() -> None:
    import numpy as np

    assert format_value(np.float64(0.25)) == "0.25"
    assert format_value(np.int64(3)) == "3"
    assert format_value(2.0) == "2"
    assert format_value("x") == "x"


def test_redact() -> None:
    text = "AccountKey=abc==;BlobEndpoint=x https://h/c/b?sv=1&sig=SECRET%3D Bearer tok.en"
    cleaned = redact(text)
    assert "abc==" not in cleaned and "SECRET" not in cleaned and "tok.en" not in cleaned


def test_config(tmp_path: pytest.TempPathFactory) -> None:
    path = tmp_path / "config.json"
    path.write_text(
        json.dumps({"storage_connection_string": "AccountName=a;AccountKey=SECRET", "job_concurrency": 3})
    )
    config = EmulatorConfig.load(path, state_dir=str(tmp_path), min_job_seconds=None)
    assert config.job_concurrency == 3 and config.min_job_seconds == 0.5 and config.sas_ttl_seconds == 86400
    assert "SECRET" not in repr(config)
    path.write_text(json.dumps({"typo": 1}))
    with pytest.raises(ValueError, match="typo"):
        EmulatorConfig.load(path, state_dir=str(tmp_path))
    with pytest.raises(ValueError, match="state_dir"):
        EmulatorConfig.from_mapping({})
