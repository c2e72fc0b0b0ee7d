"""Parsing the Evaluate Model CSV, and the direction each metric name implies."""

from __future__ import annotations

import pytest

from airflow_provider_amlretrain.exceptions import EvaluationError
from airflow_provider_amlretrain.promotion.evaluation import (
    MetricDirection,
    default_direction,
    normalize_metric_name,
    parse_evaluation_csv,
)

REGRESSION = (
    "Negative Log Likelihood,Mean Absolute Error,Root Mean Squared Error,Relative Absolute Error,"
    "Relative Squared Error,Coefficient of Determination\n"
    "-1234.5,3.25,4.5,0.41,0.22,0.78\n"
)
BINARY = (
    "True Positive,False Negative,False Positive,True Negative,Positive Label,Negative Label,Accuracy,"
    "Precision,Recall,F-Score,AUC,Average Log Loss,Training Log Loss\n"
    "120,30,20,330,>50K,<=50K,0.9,0.857,0.8,0.827,0.91,0.31,0.55\n"
    "110,40,25,325,>50K,<=50K,0.87,0.81,0.73,0.77,0.88,0.36,0.55\n"
)


def test_regression_row_is_parsed_with_every_column():
    result = parse_evaluation_csv(REGRESSION)
    assert result.get("Root Mean Squared Error") == 4.5
    assert result.get("Negative Log Likelihood") == -1234.5
    assert len(result.columns) == 6
    assert result.labels == {}


def test_label_columns_are_kept_apart_from_metrics():
    result = parse_evaluation_csv(BINARY)
    assert result.labels == {"Positive Label": ">50K", "Negative Label": "<=50K"}
    assert "Positive Label" not in result.metrics
    assert result.columns[4] == "Positive Label"
    assert result.get("AUC") == 0.91


def test_second_row_when_two_scored_sets_are_compared():
    assert parse_evaluation_csv(BINARY, row=1).get("AUC") == 0.88


def test_row_beyond_the_data_is_refused():
    with pytest.raises(EvaluationError, match=r"has 2 row\(s\) of metrics; row 2 was asked for"):
        parse_evaluation_csv(BINARY, row=2)


def test_bom_and_blank_lines_are_ignored():
    text = "\ufeff\r\nAUC , Accuracy\r\n\r\n   \r\n0.8,0.7\r\n\r\n"
    result = parse_evaluation_csv(text)
    assert result.columns == ("AUC", "Accuracy")
    assert result.get("auc") == 0.8


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("auc", 0.5),
        ("AUC", 0.5),
        ("  Auc  ", 0.5),
        ("root mean squared error", 1.5),
        ("ROOT  MEAN\tSQUARED ERROR", 1.5),
    ],
)
def test_metric_names_match_ignoring_case_and_whitespace(name, expected):
    text = "AUC,Root Mean Squared Error\n0.5,1.5\n"
    result = parse_evaluation_csv(text)
    assert result.get(name) == expected


def test_normalize_metric_name_collapses_blanks():
    assert normalize_metric_name("  Root   Mean\tSquared  Error ") == "root mean squared error"


@pytest.mark.parametrize("text", ["", "   \n\n", "\ufeff", "\ufeff\n \n"])
def test_empty_csv_is_refused(text):
    with pytest.raises(EvaluationError, match="is empty"):
        parse_evaluation_csv(text, source="models/x/evaluation.csv")


def test_header_only_is_refused_naming_the_header():
    with pytest.raises(EvaluationError, match=r"header \(AUC, Accuracy\) but no row of metrics"):
        parse_evaluation_csv("AUC,Accuracy\n\n")


@pytest.mark.parametrize("row", ["0.9\n", "0.9,0.8,0.7\n"])
def test_ragged_row_is_refused(row):
    with pytest.raises(EvaluationError, match=r"row 0 has \d values for 2 columns \(AUC, Accuracy\)"):
        parse_evaluation_csv("AUC,Accuracy\n" + row)


def test_nan_is_not_a_metric():
    result = parse_evaluation_csv("AUC,Accuracy\nNaN,0.7\n")
    assert "AUC" not in result.metrics
    assert result.labels["AUC"] == "NaN"
    with pytest.raises(EvaluationError, match="AUC"):
        result.get("AUC")


def test_no_numeric_metric_is_refused_listing_columns():
    with pytest.raises(
        EvaluationError, match=r"no numeric metric; its columns are: Positive Label, Negative Label"
    ):
        parse_evaluation_csv("Positive Label,Negative Label\nyes,no\n")


def test_missing_metric_lists_the_columns_found():
    result = parse_evaluation_csv(REGRESSION)
    with pytest.raises(EvaluationError) as info:
        result.get("AUC")
    message = str(info.value)
    assert "'AUC'" in message
    assert "Root Mean Squared Error" in message and "Coefficient of Determination" in message


def test_values_with_blanks_are_numbers():
    assert parse_evaluation_csv("AUC, Accuracy\n 0.8 , 0.7 \n").get("accuracy") == 0.7


@pytest.mark.parametrize(
    ("metric", "direction"),
    [
        ("AUC", MetricDirection.HIGHER_IS_BETTER),
        ("accuracy", MetricDirection.HIGHER_IS_BETTER),
        ("F-Score", MetricDirection.HIGHER_IS_BETTER),
        ("Coefficient of Determination", MetricDirection.HIGHER_IS_BETTER),
        ("Root Mean Squared Error", MetricDirection.LOWER_IS_BETTER),
        ("  mean absolute   error", MetricDirection.LOWER_IS_BETTER),
        ("Average Log Loss", MetricDirection.LOWER_IS_BETTER),
        ("Negative Log Likelihood", MetricDirection.LOWER_IS_BETTER),
        ("RMSE", None),
        ("My Business KPI", None),
    ],
)
def test_default_direction(metric, direction):
    assert default_direction(metric) is direction
