"""The Batch Execution Service API: request building and answer parsing, for both transports."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import quote

from airflow_provider_amlretrain.api.http import ApiRequest, ApiResponse
from airflow_provider_amlretrain.api.references import BlobLocation, BlobReference
from airflow_provider_amlretrain.api.retry import parse_retry_after
from airflow_provider_amlretrain.api.states import BatchJobStatus
from airflow_provider_amlretrain.exceptions import AzureMLConfigError, AzureMLResponseError
from airflow_provider_amlretrain.redaction import redact

BES_API_VERSION = "2.0"
#: ``error.code`` of the 400 answer to starting a job that is not ``NotStarted`` (or already queued).
CANNOT_START_JOB = "CannotStartJob"
_JOB_ID = re.compile(r"^[0-9A-Za-z-]{8,64}$")


@dataclass(frozen=True)
class BatchJobState:
    """
    What the service says about a job.

    :param job_id: The job id.
    :param status: Its status.
    :param results: Output locations by port name (only once Finished).
    :param details: The service's ``Details`` text (redacted), set when the job failed.
    :param retry_after: Seconds the service asked to wait before the next read (its ``Retry-After``), if any.
    """

    job_id: str
    status: BatchJobStatus
    results: dict[str, BlobLocation] = field(default_factory=dict)
    details: str | None = None
    retry_after: float | None = None

    def to_summary(self) -> dict[str, Any]:
        """A secret-free dict for XCom, logs and trigger events."""
        return {
            "job_id": self.job_id,
            "status": self.status.value,
            "outputs": {port: loc.to_summary() for port, loc in sorted(self.results.items())},
            "details": self.details,
        }

    def to_result(self, started_at: float | None, now: float | None = None) -> dict[str, Any]:
        """
        What the BES operator returns (its XCom ``return_value``) for this finished job, on either path.

        :param started_at: UNIX time the job started, if known (``duration_seconds`` is then ``None``).
        :param now: Current ``time.time()``, for tests.
        """
        end = time.time() if now is None else now
        return self.to_summary() | {
            "duration_seconds": round(end - started_at, 3) if started_at else None,
        }

    def output_lines(self) -> list[str]:
        """One secret-free log line per output the job wrote (its URI without SAS)."""
        return [
            f"BES job {self.job_id} wrote {port}: {location['uri']}"
            for port, location in self.to_summary()["outputs"].items()
        ]


def build_batch_request(
    *,
    inputs: Mapping[str, BlobReference] | None,
    outputs: Mapping[str, BlobReference],
    global_parameters: Mapping[str, Any] | None = None,
    azure_batch_pool_id: str | None = None,
) -> dict[str, Any]:
    """
    Build the body of a BES job submission.

    :param inputs: Input port name to blob; ``None`` or empty when the experiment reads its data
        from a global parameter (``Inputs`` is then left out).
    :param outputs: Output port name to blob: at least one.
    :param global_parameters: Web service parameters; names are case-sensitive.
    :param azure_batch_pool_id: Route the job to a dedicated batch pool.
    """
    if not outputs:
        raise AzureMLConfigError(
            "A BES job needs at least one output (e.g. {'output1': ...model.ilearner}); none was given."
        )
    if global_parameters is not None and not isinstance(global_parameters, Mapping):
        raise AzureMLConfigError(
            f"global_parameters must map parameter names to values, not {type(global_parameters).__name__}: "
            "a templated dict renders as text unless the DAG sets render_template_as_native_obj=True."
        )
    body: dict[str, Any] = {}
    if inputs:
        body["Inputs"] = {name: ref.to_api() for name, ref in inputs.items()}
    body["Outputs"] = {name: ref.to_api() for name, ref in outputs.items()}
    body["GlobalParameters"] = {str(k): _parameter_value(k, v) for k, v in (global_parameters or {}).items()}
    if azure_batch_pool_id:
        body["AzureBatchPoolId"] = azure_batch_pool_id
    return body


def _parameter_value(name: str, value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    raise AzureMLConfigError(
        f"Global parameter {name!r} must be a string, number or boolean, not {type(value).__name__}."
    )


class BesApi:
    """
    Builds requests for one web service's BES API and parses its answers.

    :param api_location: The service base URL, ``https://{region}.services.azureml.net/workspaces/{ws}/services/{id}``.
    """

    def __init__(self, api_location: str) -> None:
        self.api_location = normalize_api_location(api_location)

    def _url(self, path: str) -> str:
        return f"{self.api_location}{path}?api-version={BES_API_VERSION}"

    def submit(self, body: Mapping[str, Any]) -> ApiRequest:
        """Request that creates a job (does not start it)."""
        return ApiRequest(
            "POST",
            self._url("/jobs"),
            json_body=dict(body),
            expected=(200, 201),
            operation="submit BES job",
            idempotent=False,  # each submit creates a job
        )

    def start(self, job_id: str) -> ApiRequest:
        """Request that starts a created job."""
        return ApiRequest(
            "POST",
            self._url(f"/jobs/{_job_path(job_id)}/start"),
            expected=(200, 202, 204),
            operation=f"start BES job {job_id}",
            # Safe to repeat: a second start is refused with 400 CannotStartJob, which the BES operator
            # takes as "already started" for the job it submitted (a lost answer is sent again).
            idempotent=True,
        )

    def get(self, job_id: str) -> ApiRequest:
        """Request that reads a job's status."""
        return ApiRequest(
            "GET", self._url(f"/jobs/{_job_path(job_id)}"), expected=(200,), operation=f"get BES job {job_id}"
        )

    def cancel(self, job_id: str) -> ApiRequest:
        """Request that cancels (deletes) a job."""
        return ApiRequest(
            "DELETE",
            self._url(f"/jobs/{_job_path(job_id)}"),
            expected=(200, 202, 204),
            operation=f"cancel BES job {job_id}",
        )

    def job_url(self, job_id: str) -> str:
        """The job's status URL (no secret in it), for links and logs."""
        return self._url(f"/jobs/{_job_path(job_id)}")

    @staticmethod
    def parse_job_id(body: Any, *secrets: str | None) -> str:
        """
        Parse the submit answer: a JSON string holding the job id.

        :param body: The decoded JSON body.
        :param secrets: Literal secrets (the API key) to scrub from an error message.
        """
        if isinstance(body, str) and _JOB_ID.match(body.strip()):
            return body.strip()
        raise AzureMLResponseError(
            f"BES answered the job submission with {redact(repr(body), *secrets)[:120]} instead of a job id string."
        )

    @classmethod
    def parse_job_answer(
        cls, job_id: str, request: ApiRequest, answer: ApiResponse, *secrets: str | None
    ) -> BatchJobState:
        """
        Parse a job status answer, with the ``Retry-After`` it may carry.

        :param job_id: The job asked for.
        :param request: The status request (for the message if the body is not JSON).
        :param answer: The successful answer.
        :param secrets: Literal secrets (the API key) to scrub from ``Details`` and error messages.
        """
        state = cls.parse_job_state(job_id, answer.json(request, *secrets), *secrets)
        retry_after = parse_retry_after(answer.headers.get("retry-after"))
        return state if retry_after is None else replace(state, retry_after=retry_after)

    @staticmethod
    def parse_job_state(job_id: str, body: Any, *secrets: str | None) -> BatchJobState:
        """
        Parse a job status answer.

        :param job_id: The job asked for.
        :param body: The decoded JSON body.
        :param secrets: Literal secrets (the API key) to scrub from ``Details`` and error messages.
        """
        if not isinstance(body, dict) or "StatusCode" not in body:
            raise AzureMLResponseError(
                f"BES answered the status of job {job_id} without a StatusCode: {redact(repr(body), *secrets)[:200]}."
            )
        status = BatchJobStatus.parse(body["StatusCode"])
        raw_results = body.get("Results") or {}
        if not isinstance(raw_results, dict):
            raise AzureMLResponseError(f"BES answered job {job_id} with Results that is not an object.")
        results = {}
        if status.is_success:
            results = {
                port: BlobLocation.from_api(port, value) for port, value in raw_results.items() if value
            }
        details = body.get("Details")
        return BatchJobState(
            job_id=job_id,
            status=status,
            results=results,
            details=redact(str(details), *secrets) if details else None,
        )


def _job_path(job_id: str) -> str:
    if not isinstance(job_id, str) or not _JOB_ID.match(job_id):
        raise AzureMLConfigError(f"{job_id!r} is not a BES job id (32 hex characters).")
    return quote(job_id, safe="")


def normalize_api_location(value: str) -> str:
    """
    Accept the forms users copy from Studio or Data Factory and return the service base URL.

    ``.../services/{id}``, ``.../services/{id}/jobs``, ``.../jobs?api-version=2.0`` and
    ``.../execute?api-version=2.0`` all give ``.../services/{id}``.

    :param value: What the user configured.
    """
    if not value or not value.strip():
        raise AzureMLConfigError(
            "The web service API location is empty: set the connection's host to "
            "https://{region}.services.azureml.net/workspaces/{workspace}/services/{service}."
        )
    url = value.strip().split("?", 1)[0].rstrip("/")
    for suffix in ("/jobs", "/execute"):
        if url.endswith(suffix):
            url = url[: -len(suffix)]
    if "://" not in url:
        url = "https://" + url
    if "/services/" not in url:
        raise AzureMLConfigError(
            f"The web service API location {url!r} does not look like .../workspaces/{{ws}}/services/{{id}} "
            "(copy the 'Request URI' of the BES help page, or the endpoint's ApiLocation)."
        )
    return url
