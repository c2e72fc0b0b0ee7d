"""Which errors a retry can help: permanent ones are AirflowFailException, so Airflow does not spend retries."""

from __future__ import annotations

import inspect

import pytest
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException

from airflow_provider_amlretrain import exceptions
from airflow_provider_amlretrain.api.http import ApiRequest, ApiResponse, error_for
from airflow_provider_amlretrain.exceptions import (
    AzureMLApiError,
    AzureMLAuthError,
    AzureMLConfigError,
    AzureMLError,
    AzureMLNotFoundError,
    AzureMLRequestRejectedError,
    AzureMLTransportError,
    is_retryable,
)

PERMANENT = {
    "AzureMLPermanentError",
    "AzureMLConfigError",
    "WebServicePatchError",
    "AzureMLRequestRejectedError",
    "AzureMLAuthError",
    "AzureMLNotFoundError",
    "EvaluationError",
    "EvaluationGateRejectedError",
    "DeploymentRecordError",
    "SmokeTestError",
    "RollbackError",
}
RETRYABLE = {
    "AzureMLError",
    "AzureMLApiError",
    "AzureMLTransportError",
    "AzureMLResponseError",
    "BatchJobError",
    "BatchJobFailedError",
    "BatchJobTimeoutError",
    "DeploymentConflictError",
    "UnconfirmedDeploymentError",
    "SmokeTestUnavailableError",
    "ProvisioningDeadlinePassed",
}


def _classes() -> dict[str, type[BaseException]]:
    return {
        name: obj
        for name, obj in vars(exceptions).items()
        if inspect.isclass(obj) and issubclass(obj, BaseException) and obj.__module__ == exceptions.__name__
    }


def test_every_exception_class_is_classified_and_lives_in_this_module():
    assert set(_classes()) == PERMANENT | RETRYABLE
    assert set(exceptions.__all__) >= PERMANENT | RETRYABLE


@pytest.mark.parametrize("name", sorted(PERMANENT))
def test_permanent_errors_fail_without_retries(name):
    cls = _classes()[name]
    assert issubclass(cls, AirflowFailException)
    assert issubclass(cls, AzureMLError)


@pytest.mark.parametrize("name", sorted(RETRYABLE))
def test_transient_errors_stay_retryable(name):
    cls = _classes()[name]
    assert issubclass(cls, AirflowException)
    assert not issubclass(cls, AirflowFailException)


def _celery_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("airflow.providers.celery") is not None


def test_no_other_module_of_the_provider_defines_an_exception():
    import pkgutil

    import airflow_provider_amlretrain

    offenders = []
    for info in pkgutil.walk_packages(airflow_provider_amlretrain.__path__, "airflow_provider_amlretrain."):
        if ".emulator" in info.name or ".devstack" in info.name:
            continue  # the emulator and dev stack are not the provider
        if info.name.endswith(".celery_worker_config") and not _celery_installed():
            continue  # only a Celery deployment imports it (make setup-distributed installs Celery)
        module = __import__(info.name, fromlist=["_"])
        for name, obj in vars(module).items():
            if (
                inspect.isclass(obj)
                and issubclass(obj, BaseException)
                and obj.__module__ == info.name
                and info.name != exceptions.__name__
            ):
                offenders.append(f"{info.name}.{name}")
    assert offenders == []


def _error(status: int) -> AzureMLApiError:
    request = ApiRequest("GET", "https://example.invalid/jobs/1?api-version=2.0", operation="get BES job")
    return error_for(request, ApiResponse(status_code=status, headers={}, text=""))


@pytest.mark.parametrize(
    ("status", "cls", "retryable"),
    [
        (400, AzureMLRequestRejectedError, False),
        (401, AzureMLAuthError, False),
        (403, AzureMLAuthError, False),
        (404, AzureMLNotFoundError, False),
        (405, AzureMLRequestRejectedError, False),
        (408, AzureMLApiError, True),
        (409, AzureMLApiError, True),
        (422, AzureMLRequestRejectedError, False),
        (429, AzureMLApiError, True),
        (500, AzureMLApiError, True),
        (503, AzureMLApiError, True),
    ],
)
def test_error_answers_map_to_a_class_that_says_whether_a_retry_can_help(status, cls, retryable):
    err = _error(status)
    assert type(err) is cls
    assert is_retryable(err) is retryable


def test_is_retryable_treats_foreign_errors_as_not_retryable():
    assert is_retryable(AzureMLTransportError("down")) is True
    assert is_retryable(AzureMLConfigError("wrong")) is False
    assert is_retryable(KeyError("bug")) is False
