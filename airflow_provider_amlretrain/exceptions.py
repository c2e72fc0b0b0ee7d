"""
Every exception the provider raises, in one module: small classes that carry data.

Each class says whether a retry of the task can help:

* :class:`AzureMLPermanentError` and its subclasses are :class:`~airflow.sdk.exceptions.AirflowFailException`
  subclasses: the task fails at once, without spending its retries (a wrong connection, a rejected request,
  a malformed evaluation CSV, a gate that rejects with ``on_reject="fail"``, a failed rollback).
* Everything else stays retryable: the service unreachable or overloaded after every HTTP retry, a BES job
  that failed (a retry submits a new one), a lost race for the deployment record, an update that was not
  confirmed and was rolled back.
"""

from __future__ import annotations

from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException

__all__ = [
    "AzureMLApiError",
    "AzureMLAuthError",
    "AzureMLConfigError",
    "AzureMLError",
    "AzureMLNotFoundError",
    "AzureMLPermanentError",
    "AzureMLRequestRejectedError",
    "AzureMLResponseError",
    "AzureMLTransportError",
    "BatchJobError",
    "BatchJobFailedError",
    "BatchJobTimeoutError",
    "DeploymentConflictError",
    "DeploymentRecordError",
    "EvaluationError",
    "EvaluationGateRejectedError",
    "RollbackError",
    "SmokeTestError",
    "SmokeTestUnavailableError",
    "UnconfirmedDeploymentError",
    "WebServicePatchError",
    "is_retryable",
]


class AzureMLError(AirflowException):
    """Base class for every error this provider raises; retryable unless it is an :class:`AzureMLPermanentError`."""


class AzureMLPermanentError(AzureMLError, AirflowFailException):
    """An error a retry cannot help: the task fails without using its remaining retries."""


def is_retryable(err: BaseException) -> bool:
    """
    Whether trying again may succeed: a provider error that is not permanent.

    Errors from outside the provider (a bug, a library's own exception) count as not retryable here, so a
    caller that chooses between a retryable and a permanent error of its own picks the permanent one.

    :param err: The exception.
    """
    return isinstance(err, AzureMLError) and not isinstance(err, AirflowFailException)


# -- configuration ---------------------------------------------------------------------------------


class AzureMLConfigError(AzureMLPermanentError):
    """A connection, a blob reference or an operator argument is wrong; the message says what to fix."""


class WebServicePatchError(AzureMLConfigError):
    """The definition has no (or more than one) trained-model asset matching what was asked."""


# -- answers of the Azure ML APIs ------------------------------------------------------------------


class AzureMLApiError(AzureMLError):
    """
    The Azure ML service answered with an error (retryable: 5xx, 408, 409 and 429 after every HTTP retry).

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


class AzureMLRequestRejectedError(AzureMLApiError, AzureMLPermanentError):
    """The service refused the request itself (a 4xx other than 401/403/404/408/409/429): sending it again cannot help."""


class AzureMLAuthError(AzureMLApiError, AzureMLPermanentError):
    """The service refused the credentials (401/403)."""


class AzureMLNotFoundError(AzureMLApiError, AzureMLPermanentError):
    """The workspace, service, job or endpoint does not exist (404)."""


class AzureMLTransportError(AzureMLApiError):
    """The service could not be reached, or kept failing, after every retry."""


class AzureMLResponseError(AzureMLApiError):
    """The service answered 2xx with a body this provider cannot understand."""


# -- BES jobs --------------------------------------------------------------------------------------


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
    """The job ended ``Failed`` or ``Cancelled`` (retryable: a retry submits a new job)."""


class BatchJobTimeoutError(BatchJobError):
    """The job did not end within the operator's ``job_timeout``; it has been cancelled (retryable)."""


# -- evaluation and gating -------------------------------------------------------------------------


class EvaluationError(AzureMLPermanentError):
    """The evaluation CSV is empty, malformed, or lacks a metric a rule needs."""


class EvaluationGateRejectedError(AzureMLPermanentError):
    """The retrained model did not meet the promotion rules (with ``on_reject="fail"``)."""


# -- promotion -------------------------------------------------------------------------------------


class DeploymentConflictError(AzureMLError):
    """Another run changed the deployment record since this run read it; this run lost the race (retryable)."""


class DeploymentRecordError(AzureMLPermanentError):
    """The deployment record blob is not a record this provider wrote."""


class UnconfirmedDeploymentError(AzureMLError):
    """The update was sent but not confirmed (refused, lost, timed out or not reported back); it was rolled back."""


class SmokeTestError(AzureMLPermanentError):
    """The promoted model did not answer a scoring call correctly (after a promotion: it was rolled back)."""


class SmokeTestUnavailableError(AzureMLError):
    """The smoke test could not run (the scoring service failed transiently); the update was rolled back."""


class RollbackError(AzureMLPermanentError):
    """The new model failed its smoke test (or was not confirmed) and putting the previous one back failed too."""
