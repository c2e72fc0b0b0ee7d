"""The extra link reads the job URL the operator pushed to XCom."""

from __future__ import annotations

import pytest

from airflow_provider_amlretrain.links.batch_job import AzureMLBatchJobLink
from airflow_provider_amlretrain.operators.batch_execution import AzureMLBatchExecutionOperator
from airflow_provider_amlretrain.sensors.batch_job import AzureMLBatchJobSensor


@pytest.mark.parametrize(
    ("stored", "expected"),
    [("https://h/jobs/abc?api-version=2.0", "https://h/jobs/abc?api-version=2.0"), (None, "")],
)
def test_get_link(monkeypatch, stored, expected):
    from airflow.providers.common.compat.sdk import XCom

    seen = {}

    def get_value(*, key, ti_key):
        seen["key"] = key
        return stored

    monkeypatch.setattr(XCom, "get_value", staticmethod(get_value))
    link = AzureMLBatchJobLink()

    assert link.get_link(operator=None, ti_key="ti-key") == expected
    assert seen["key"] == link.xcom_key == "azureml_bes_job_url"


def test_operator_and_sensor_carry_the_link():
    for cls in (AzureMLBatchExecutionOperator, AzureMLBatchJobSensor):
        assert any(isinstance(link, AzureMLBatchJobLink) for link in cls.operator_extra_links)
