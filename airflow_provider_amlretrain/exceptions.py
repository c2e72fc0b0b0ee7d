"""Exceptions raised by the provider: one module, small classes that carry data."""

from __future__ import annotations

from airflow.providers.common.compat.sdk import AirflowException


class AzureMLError(AirflowException):
    """Base class for every error this provider raises."""


class AzureMLConfigError(AzureMLError):
    """A connection, a blob reference or an operator argument is wrong; the message says what to fix."""


class AzureMLApiError(AzureMLError):
    """
    The Azure ML service answered with an error.

    :param message: What went wrong and what to do, already free of secrets.
    :param status_code: The HTTP status code of the answer.
    :param method: The HTTP method of the request.
    :param url: The request URL, without its query string.
    :param error_code: The ``error.code`` of the service's error body, if any.
    :param service_message: The ``error.message`` of the service's error body, redacted.
    :param request_id: The ``x-ms-request-id`` header, which Azure support asks for.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        method: str | None = None,
        url: str | None = None,
        error_code: str | None = None,
        service_message: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        # AirflowException types a class-level HTTPStatus for the API server; here it is the answer's status.
        self.status_code = status_code  # type: ignore[assignment]
        self.method = method
        self.url = url
        self.error_code = error_code
        self.service_message = service_message
        self.request_id = request_id


class AzureMLAuthError(AzureMLApiError):
    """The service refused the credentials (401/403)."""


class AzureMLNotFoundError(AzureMLApiError):
    """The workspace, service, job or endpoint does not exist (404)."""


class AzureMLTransportError(AzureMLApiError):
    """The service could not be reached, or kept failing, after every retry."""


class AzureMLResponseError(AzureMLApiError):
    """The service answered 2xx with a body this provider cannot understand."""


class BatchJobError(AzureMLError):
    """
    A Batch Execution Service job did not finish successfully.

    :param message: What happened, already free of secrets.
    :param job_id: The BES job id.
    :param status: The job's last known status value.
    :param details: The service's ``Details`` text, redacted.
    """

    def __init__(self, message: str, *, job_id: str, status: str | None = None, details: str | None = None):
        super().__init__(message)
        self.job_id = job_id
        self.status = status
        self.details = details


class BatchJobFailedError(BatchJobError):
    """The job ended ``Failed`` or ``Cancelled``."""


class BatchJobTimeoutError(BatchJobError):
    """The job did not end within the operator's ``job_timeout``; it has been cancelled."""
