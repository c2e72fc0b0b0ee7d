"""The Request-Response Service (RRS): scoring requests and answers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_amlretrain.api.http import ApiRequest, answer_shape
from airflow_provider_amlretrain.exceptions import AzureMLResponseError

if TYPE_CHECKING:
    from collections.abc import Sequence

RRS_API_VERSION = "2.0"


@dataclass(frozen=True)
class ScoringTable:
    """
    A table as RRS speaks it (values are strings).

    :param columns: Column names.
    :param values: Rows.
    """

    columns: list[str]
    values: list[list[str]]

    def column(self, name: str) -> list[str]:
        """
        The values of one column.

        :param name: Column name (case-insensitive).
        """
        lowered = [c.lower() for c in self.columns]
        if name.lower() not in lowered:
            raise AzureMLResponseError(
                f"The scoring answer has no column {name!r}; its columns are {self.columns}."
            )
        index = lowered.index(name.lower())
        return [row[index] for row in self.values]


def execute_request(
    api_location: str,
    *,
    input_name: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    global_parameters: dict[str, Any] | None = None,
) -> ApiRequest:
    """
    Build a scoring call: ``POST {api_location}/execute?api-version=2.0&details=true``.

    :param api_location: The endpoint's (or web service's) execution base URL.
    :param input_name: The web service input port, e.g. ``input1``.
    :param columns: Column names of the rows.
    :param rows: Rows to score.
    :param global_parameters: Web service parameters.
    """
    body = {
        "Inputs": {
            input_name: {"ColumnNames": list(columns), "Values": [[str(v) for v in row] for row in rows]}
        },
        "GlobalParameters": dict(global_parameters or {}),
    }
    url = f"{api_location.rstrip('/')}/execute?api-version={RRS_API_VERSION}&details=true"
    # Scoring changes nothing on the service: repeating it is safe.
    return ApiRequest(
        "POST", url, json_body=body, expected=(200,), operation="score through RRS", idempotent=True
    )


def parse_execute_answer(body: Any, output_name: str | None = None) -> ScoringTable:
    """
    Parse an RRS answer ``{"Results": {"output1": {"type": "table", "value": {...}}}}``.

    :param body: The decoded answer.
    :param output_name: The output port to read (default: the only / first one).
    """
    results = body.get("Results") if isinstance(body, dict) else None
    if not isinstance(results, dict) or not results:
        raise AzureMLResponseError(f"The scoring answer has no Results: it is {answer_shape(body)}.")
    name = output_name or next(iter(results))
    if name not in results:
        raise AzureMLResponseError(f"The scoring answer has no output {name!r}; it has {sorted(results)}.")
    output = results[name]
    value = output.get("value") if isinstance(output, dict) else None
    if not isinstance(value, dict) or not isinstance(value.get("Values"), list):
        raise AzureMLResponseError(f"The scoring output {name!r} is not a table with Values.")
    columns = [str(c) for c in value.get("ColumnNames") or []]
    if not all(isinstance(row, list) for row in value["Values"]):
        raise AzureMLResponseError(
            f"The scoring output {name!r} has Values that are not a list of rows (lists)."
        )
    rows = [[("" if v is None else str(v)) for v in row] for row in value["Values"]]
    return ScoringTable(columns=columns, values=rows)
