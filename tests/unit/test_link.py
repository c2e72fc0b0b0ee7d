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


# -- the page behind the link ----------------------------------------------------------------------


def _studio(monkeypatch, **extra):
    from airflow_provider_amlretrain.hooks.studio import AzureMLStudioHook
    from tests.unit.support import API_KEY, BASE, set_connection

    set_connection(
        monkeypatch, "aml_link", conn_type="azureml_studio", host=BASE, password=API_KEY, extra=extra
    )
    return AzureMLStudioHook("aml_link")


def test_without_a_page_template_the_link_opens_the_web_services_portal(monkeypatch):
    from airflow_provider_amlretrain.links.job_page import WEB_SERVICES_PORTAL

    assert _studio(monkeypatch).job_page_url("abc") == WEB_SERVICES_PORTAL == "https://services.azureml.net/"


def test_page_template_is_filled_with_job_workspace_and_service(monkeypatch):
    from tests.unit.support import API_KEY

    hook = _studio(
        monkeypatch, job_page_url=" http://127.0.0.1:8/ui/{workspace_id}/{service_id}/jobs/{job_id} "
    )
    url = hook.job_page_url("0123/x")
    assert url == "http://127.0.0.1:8/ui/ws1/svc1/jobs/0123%2Fx"
    assert API_KEY not in url


@pytest.mark.parametrize(
    ("template", "match"),
    [
        ("http://h/jobs/{job_id}?code=secret", "may not have a query string"),
        ("http://h/jobs/{job_id}#k", "may not have a query string"),
        ("http://h/jobs/{api_key}", r"unknown fields \['api_key'\]"),
        ("ftp://h/jobs/{job_id}", "must be an http\\(s\\) URL"),
        ("/jobs/{job_id}", "must be an http\\(s\\) URL"),
        ("http://h/jobs/{job_id", "no valid template"),
    ],
)
def test_bad_page_templates_are_refused_naming_the_extra(monkeypatch, template, match):
    from airflow_provider_amlretrain.exceptions import AzureMLConfigError

    with pytest.raises(AzureMLConfigError, match=rf"Connection 'aml_link': the job_page_url extra.*{match}"):
        _ = _studio(monkeypatch, job_page_url=template).settings
