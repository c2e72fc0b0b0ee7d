"""Extra link from a task to the BES job it ran or waited for."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.providers.common.compat.sdk import BaseOperatorLink, XCom

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import BaseOperator, TaskInstanceKey


class AzureMLBatchJobLink(BaseOperatorLink):
    """
    Links to a page showing the job, which a person can open without the API key.

    The connection's ``job_page_url`` extra names the page (the local stack: the emulator's job
    page), else the Azure ML Web Services portal; see :mod:`airflow_provider_amlretrain.links.job_page`.
    """

    name = "Azure ML BES job"

    @property
    def xcom_key(self) -> str:
        """XCom key the operator stores the job URL under."""
        return "azureml_bes_job_url"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        """
        Return the stored job URL, or an empty string before the job exists.

        :param operator: The task's operator.
        :param ti_key: The task instance.
        """
        value = XCom.get_value(key=self.xcom_key, ti_key=ti_key)
        return str(value) if value else ""
