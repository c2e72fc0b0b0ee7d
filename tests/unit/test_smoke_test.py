"""Smoke-test samples, scoring answers (RRS) and their checks."""

from __future__ import annotations

import pytest

from airflow_provider_amlretrain.api.rrs import ScoringTable, execute_request, parse_execute_answer
from airflow_provider_amlretrain.exceptions import AzureMLConfigError, AzureMLResponseError, SmokeTestError
from airflow_provider_amlretrain.promotion.smoke_test import SmokeSample, check_scoring, sample_from_csv

CSV = "\ufeffage, income ,Label\n39,52000,1\n\n50,83000,0\n28,31000,0\n"


def test_sample_drops_the_label_case_insensitively_and_keeps_the_first_rows():
    sample = sample_from_csv(CSV, max_rows=2, drop_columns=("label",))
    assert sample == SmokeSample(columns=["age", "income"], rows=[["39", "52000"], ["50", "83000"]])


def test_sample_keeps_every_row_up_to_max():
    assert len(sample_from_csv(CSV, max_rows=10).rows) == 3


@pytest.mark.parametrize("text", ["", "age,income\n", "\ufeffage,income\n\n"])
def test_sample_needs_a_header_and_a_row(text):
    with pytest.raises(AzureMLConfigError, match="samples/x.csv needs a header and at least one row"):
        sample_from_csv(text, source="samples/x.csv")


def test_execute_request_shape():
    request = execute_request(
        "https://r.services.azureml.net/workspaces/w/services/s/",
        input_name="input1",
        columns=["a", "b"],
        rows=[[1, "x"]],
        global_parameters={"p": 1},
    )
    assert request.method == "POST"
    assert (
        request.url
        == "https://r.services.azureml.net/workspaces/w/services/s/execute?api-version=2.0&details=true"
    )
    assert request.json_body == {
        "Inputs": {"input1": {"ColumnNames": ["a", "b"], "Values": [["1", "x"]]}},
        "GlobalParameters": {"p": 1},
    }


def _answer(values, columns=("age", "Scored Labels", "Scored Probabilities")):
    return {
        "Results": {
            "output1": {
                "type": "table",
                "value": {
                    "ColumnNames": list(columns),
                    "ColumnTypes": ["String"] * len(columns),
                    "Values": values,
                },
            }
        }
    }


def test_parse_execute_answer():
    table = parse_execute_answer(_answer([["39", "1", "0.8"], ["50", None, "0.1"]]))
    assert table.columns == ["age", "Scored Labels", "Scored Probabilities"]
    assert table.values == [["39", "1", "0.8"], ["50", "", "0.1"]]
    assert table.column("scored labels") == ["1", ""]


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (None, "no Results"),
        ({"Results": {}}, "no Results"),
        ("oops", "no Results"),
        ({"Results": {"output1": {"type": "table"}}}, "not a table with Values"),
        ({"Results": {"output1": {"value": {"Values": "x"}}}}, "not a table with Values"),
        ({"Results": {"output1": {"value": {"Values": ["1,0.8"]}}}}, "not a list of rows"),
    ],
)
def test_parse_execute_answer_refuses_odd_answers(body, match):
    with pytest.raises(AzureMLResponseError, match=match):
        parse_execute_answer(body)


def test_parse_execute_answer_named_output():
    body = {
        "Results": {
            "output1": _answer([["1"]], ["x"])["Results"]["output1"],
            "output2": _answer([["2"]], ["y"])["Results"]["output1"],
        }
    }
    assert parse_execute_answer(body, "output2").values == [["2"]]
    with pytest.raises(AzureMLResponseError, match=r"no output 'output3'; it has \['output1', 'output2'\]"):
        parse_execute_answer(body, "output3")


def test_missing_column_lists_the_columns():
    with pytest.raises(AzureMLResponseError, match=r"no column 'Scored Labels'; its columns are \['a'\]"):
        ScoringTable(columns=["a"], values=[["1"]]).column("Scored Labels")


SAMPLE = SmokeSample(columns=["age"], rows=[["39"], ["50"]])


def test_check_scoring_passes_with_a_label_per_row():
    result = check_scoring(SAMPLE, parse_execute_answer(_answer([["39", "1", "0.8"], ["50", "0", "0.1"]])))
    assert result.predictions == ["1", "0"]
    assert result.to_summary() == {
        "predictions": ["1", "0"],
        "columns": ["age", "Scored Labels", "Scored Probabilities"],
    }


@pytest.mark.parametrize(
    ("table", "match"),
    [
        (ScoringTable(["Scored Labels"], [["1"]]), "Scoring 2 rows returned 1 rows"),
        (ScoringTable(["age"], [["1"], ["2"]]), "no column 'Scored Labels'"),
        (ScoringTable(["Scored Labels"], [["1"], [" "]]), r"no 'Scored Labels' for sample row\(s\) \[1\]"),
        (ScoringTable(["Scored Labels"], [["NaN"], ["1"]]), r"sample row\(s\) \[0\]"),
    ],
)
def test_check_scoring_failures(table, match):
    with pytest.raises(SmokeTestError, match=match):
        check_scoring(SAMPLE, table)


def test_check_scoring_other_label_column():
    table = ScoringTable(["Prediction"], [["a"], ["b"]])
    assert check_scoring(SAMPLE, table, label_column="prediction").predictions == ["a", "b"]


@pytest.mark.parametrize("row", ["39", "39,52000,1,extra"])
def test_ragged_sample_row_is_a_config_error(row):
    with pytest.raises(AzureMLConfigError, match=r"samples/x.csv row 2 has \d values for 3 columns"):
        sample_from_csv(f"age,income,label\n1,2,3\n{row}\n", source="samples/x.csv")


def test_rows_beyond_max_rows_are_not_checked():
    assert sample_from_csv("a,b\n1,2\n3\n", max_rows=1).rows == [["1", "2"]]
