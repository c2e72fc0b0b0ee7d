"""Reading small text blobs: location parsing and the errors users see."""

from __future__ import annotations

import pytest

from airflow_provider_amlretrain.blob_text import split_blob_location
from airflow_provider_amlretrain.exceptions import AzureMLConfigError


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("training-data/binary/dt=2026-11-20/train.csv", ("training-data", "binary/dt=2026-11-20/train.csv")),
        ("/models/x.csv/", ("models", "x.csv")),
        (" samples/a.csv\n", ("samples", "a.csv")),
    ],
)
def test_split_blob_location(location, expected):
    assert split_blob_location(location, "The sample") == expected


@pytest.mark.parametrize("location", ["", "models", "models/", "ab/x.csv", "/x.csv"])
def test_split_blob_location_refuses_what_is_no_blob(location):
    with pytest.raises(
        AzureMLConfigError,
        match=r"The sample .* is not a blob location: write it as 'container/path/to/blob'",
    ):
        split_blob_location(location, "The sample")
