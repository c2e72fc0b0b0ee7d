"""
The promotion operators on the real hooks, HTTP mocked by ``responses`` and the record store faked:
classic endpoint PATCH and ARM JSON Patch, confirmation, smoke test, rollback, record outcomes, secrets.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException, AirflowSkipException

from airflow_provider_amlretrain.exceptions import (
    AzureMLApiError,
    AzureMLConfigError,
    AzureMLError,
    DeploymentConflictError,
    RollbackError,
    SmokeTestError,
    SmokeTestUnavailableError,
    UnconfirmedDeploymentError,
)
from airflow_provider_amlretrain.operators.update_endpoint_model import AzureMLUpdateEndpointModelOperator
from airflow_provider_amlretrain.operators.update_web_service_model import (
    AzureMLUpdateWebServiceModelOperator,
)
from airflow_provider_amlretrain.promotion import record
from airflow_provider_amlretrain.promotion.record import DeploymentRecord
from tests.unit.promotion_support import (
    ARM_CONN,
    ARM_TOKEN,
    ARM_URL,
    ENDPOINT_KEY,
    MGMT_CONN,
    MGMT_URL,
    SECONDARY_KEY,
    SERVICE_KEY,
    WS_TOKEN,
    FakeCredential,
    FakeRecordStore,
    assert_no_secrets,
    endpoint_body,
)
from tests.unit.support import (
    API_KEY,
    JOB_ID,
    FakeBlobService,
    finished_results,
    job_url,
    serve_blobs,
    set_connection,
    status_body,
)
from tests.unit.test_operator import Journal, TiStub

RESULT_SIG = "RESULTsig987secret"
OLD_SIG = "OLDsig555secret"
SECRETS = (API_KEY, RESULT_SIG, OLD_SIG, WS_TOKEN, ENDPOINT_KEY, SECONDARY_KEY, SERVICE_KEY, ARM_TOKEN)
BASE_LOCATION = "https://acct.blob.core.windows.net/"
NEW_REL = "models/runs/x/model.ilearner"
OLD_REL = "models/runs/v1/model.ilearner"
NEW_URI = BASE_LOCATION + NEW_REL
OLD_URI = BASE_LOCATION + OLD_REL
RESOURCE = "Census Model [trained model]"
WS = f"{MGMT_URL}/workspaces/ws1/webservices/pred1"
API_LOCATION = "https://ussouthcentral.services.azureml.net/workspaces/ws1/services/ep1svc"
SCORE_URL = f"{API_LOCATION}/execute?api-version=2.0&details=true"
SAMPLE_CSV = "age,income,label\n39,52000,1\n50,83000,0\n"
TRAINING = {
    "job_id": JOB_ID,
    "status": "Finished",
    "outputs": {
        "output1": {"relative_location": NEW_REL, "uri": NEW_URI},
        "output2": {"relative_location": "models/runs/x/evaluation.csv"},
    },
}
GATE = {"promote": True, "metrics": {"AUC": 0.9}}


def scored(rows: int = 2, label: str = "1") -> dict[str, Any]:
    return {
        "Results": {
            "output1": {
                "type": "table",
                "value": {
                    "ColumnNames": ["age", "income", "Scored Labels"],
                    "Values": [["1", "2", label]] * rows,
                },
            }
        }
    }


# -- shared fixtures -------------------------------------------------------------------------------


@pytest.fixture
def store(monkeypatch) -> FakeRecordStore:
    fake = FakeRecordStore()
    monkeypatch.setattr(
        record, "DeploymentRecordStore", lambda *args, **kwargs: fake
    )  # read when a task runs
    return fake


@pytest.fixture
def sample(monkeypatch):
    """The smoke-test sample blob (a fake storage client); set ``.error`` to make the read fail."""
    state = SimpleNamespace(text=SAMPLE_CSV, error=None, reads=[])

    def read_file(container_name, blob_name):
        state.reads.append((container_name, blob_name))
        if state.error is not None:
            raise state.error
        return state.text

    state.service = serve_blobs(monkeypatch, FakeBlobService(read=read_file))
    return state


MODEL_ETAG = "0x8DC0FFEE"


@pytest.fixture
def training_job(azureml_conn, rsps):
    rsps.add("GET", job_url(), json=status_body("Finished", results=finished_results(RESULT_SIG)))
    # The model blob's properties (its ETag names this content of the job's output).
    rsps.add(
        "HEAD",
        NEW_URI,
        headers={
            "ETag": f'"{MODEL_ETAG}"',
            "Last-Modified": "Sat, 01 Jun 2024 00:00:00 GMT",
            "x-ms-blob-type": "BlockBlob",
            "Content-Length": "10",
        },
    )
    return azureml_conn


@pytest.fixture
def context():
    return {
        "ti": TiStub(Journal()),
        "dag": SimpleNamespace(dag_id="retrain"),
        "run_id": "run-2",
        "data_interval_start": datetime(2024, 6, 1, tzinfo=UTC),
        "data_interval_end": datetime(2024, 6, 2, tzinfo=UTC),
    }


def _body(request) -> Any:
    return json.loads(request.body) if request.body else None


# -- the classic management service ----------------------------------------------------------------


class ClassicService:
    """A stateful classic management API + RRS on ``responses`` callbacks."""

    def __init__(self, rsps) -> None:
        self.rsps = rsps
        self.endpoints: dict[str, dict[str, Any]] = {
            "default": endpoint_body(Name="default"),
            "ep1": endpoint_body(
                ApiLocation=API_LOCATION,
                Resources=[
                    {
                        "Name": RESOURCE,
                        "Kind": "TrainedModel",
                        "Location": {
                            "BaseLocation": BASE_LOCATION,
                            "RelativeLocation": OLD_REL,
                            "SasBlobToken": f"?sv=1&sig={OLD_SIG}",
                        },
                    }
                ],
            ),
        }
        self.patches: list[dict[str, Any]] = []
        self.patch_statuses: list[int] = []
        self.ignore_patches = False
        self.apply_failed_patches = False  # a PATCH processed, then its answer is an error (or lost)
        self.score_answers: list[dict[str, Any]] = [scored()]
        self.score_status = 200  # e.g. 503: the scoring service is down
        self.requests: list[tuple[str, str]] = []
        endpoint_url = re.compile(re.escape(WS) + r"/endpoints/([^/?]+)$")
        rsps.add_callback("GET", WS, callback=self._service)
        for method in ("GET", "PUT", "PATCH"):
            rsps.add_callback(method, endpoint_url, callback=self._endpoint)
        rsps.add_callback("POST", SCORE_URL, callback=self._score)

    def _service(self, request):
        self.requests.append(("GET", "service"))
        return (
            200,
            {},
            json.dumps({"Id": "pred1", "Name": "Census [predictive]", "DefaultEndpointName": "default"}),
        )

    def _endpoint(self, request):
        name = request.url.rsplit("/", 1)[1]
        self.requests.append((request.method, name))
        if request.method == "PUT":
            created = endpoint_body(
                Name=name,
                ApiLocation=API_LOCATION,
                Resources=json.loads(json.dumps(self.endpoints["default"]["Resources"])),
            )
            self.endpoints[name] = created
            return 201, {}, ""
        if name not in self.endpoints:
            return (
                404,
                {"x-ms-request-id": "r404"},
                json.dumps({"error": {"code": "EndpointNotFound", "message": f"No endpoint {name}."}}),
            )
        if request.method == "PATCH":
            self.patches.append(_body(request))
            status = self.patch_statuses.pop(0) if self.patch_statuses else 200
            if status >= 300 and not self.apply_failed_patches:
                return (
                    status,
                    {},
                    json.dumps(
                        {"error": {"code": "BadRequest", "message": f"cannot read model (token {WS_TOKEN})"}}
                    ),
                )
            if not self.ignore_patches:
                for patched in _body(request)["Resources"]:
                    for resource in self.endpoints[name]["Resources"]:
                        if resource["Name"] == patched["Name"]:
                            resource["Location"] = patched["Location"]
            if status >= 300:
                return status, {}, json.dumps({"error": {"code": "InternalError", "message": "try again"}})
            return status, {}, ""
        return 200, {}, json.dumps(self.endpoints[name])

    def _score(self, request):
        self.requests.append(("POST", "score"))
        assert request.headers["Authorization"] == f"Bearer {ENDPOINT_KEY}"
        if self.score_status != 200:
            return (
                self.score_status,
                {},
                json.dumps({"error": {"code": "ServiceUnavailable", "message": "busy"}}),
            )
        answer = self.score_answers.pop(0) if len(self.score_answers) > 1 else self.score_answers[0]
        return 200, {}, json.dumps(answer)

    def location(self, name: str = "ep1") -> dict[str, Any]:
        return self.endpoints[name]["Resources"][0]["Location"]

    def methods(self) -> list[str]:
        return [m for m, _ in self.requests]


@pytest.fixture
def classic(rsps, monkeypatch, training_job):
    set_connection(
        monkeypatch,
        MGMT_CONN,
        conn_type="azureml_classic_management",
        host=MGMT_URL,
        password=WS_TOKEN,
        extra={"workspace_id": "ws1", "retry_backoff": 0, "max_retries": 0},
    )
    return ClassicService(rsps)


@pytest.fixture
def endpoint_operator(classic, store, sample, sleeps):
    def make(**kwargs: Any) -> AzureMLUpdateEndpointModelOperator:
        params: dict[str, Any] = {
            "task_id": "promote",
            "deployment_target": "census-ep1",
            "training_result": TRAINING,
            "training_conn_id": "azureml_test",
            "wasb_conn_id": "blob_test",
            "gate_result": GATE,
            "smoke_test_sample": "samples/census.csv",
            "azureml_management_conn_id": MGMT_CONN,
            "web_service_id": "pred1",
            "endpoint_name": "ep1",
            "wait_after_update": 0,
        }
        params.update(kwargs)
        op = AzureMLUpdateEndpointModelOperator(**params)
        op.hook._sleep = sleeps
        return op

    return make


def _everything(err: BaseException) -> list[str]:
    return [str(err), repr(err), str(err.__cause__ or ""), str(err.__context__ or "")]


# -- classic endpoint: success ---------------------------------------------------------------------


def test_classic_promotion_patches_confirms_smoke_tests_and_commits(
    endpoint_operator, classic, store, sample, context, log_text
):
    result = endpoint_operator().execute(context)

    assert classic.patches == [
        {
            "Resources": [
                {
                    "Name": RESOURCE,
                    "Location": {
                        "BaseLocation": BASE_LOCATION,
                        "RelativeLocation": NEW_REL,
                        "SasBlobToken": f"?sv=2020-08-04&sr=b&sig={RESULT_SIG}&se=2030-01-01&sp=r",
                    },
                }
            ]
        }
    ]
    assert set(classic.patches[0]["Resources"][0]) == {"Name", "Location"}
    assert classic.location()["RelativeLocation"] == NEW_REL
    assert ("PUT", "ep1") not in classic.requests
    assert ("POST", "score") in classic.requests
    assert sample.reads == [("samples", "census.csv")]

    assert result["outcome"] == "deployed"
    assert result["model_uri"] == NEW_URI and result["previous_model_uri"] == OLD_URI
    assert result["details"] == {"web_service_id": "pred1", "endpoint": "ep1", "resource_name": RESOURCE}
    assert result["smoke_test"]["predictions"] == ["1", "1"]

    record = store.record("census-ep1")
    assert record.pending is None
    assert record.current["model_uri"] == NEW_URI and record.current["metrics"] == {"AUC": 0.9}
    assert record.current["data_interval_end"] == "2024-06-02T00:00:00+00:00"
    assert record.current["previous_model_uri"] == OLD_URI

    assert_no_secrets(json.dumps(result), log_text(), store.blobs, secrets=SECRETS)


def test_missing_endpoint_is_created(endpoint_operator, classic, store, context):
    result = endpoint_operator(endpoint_name="ep-new", smoke_test_sample=None).execute(context)
    assert ("PUT", "ep-new") in classic.requests
    assert classic.methods().index("PUT") < classic.methods().index("PATCH")
    assert classic.location("ep-new")["RelativeLocation"] == NEW_REL
    assert result["outcome"] == "deployed" and result["smoke_test"] is None


def test_missing_endpoint_is_refused_without_create(endpoint_operator, classic, store, context):
    with pytest.raises(
        AzureMLConfigError, match=r"no endpoint 'ep-new'; create it or set create_endpoint=True"
    ):
        endpoint_operator(endpoint_name="ep-new", create_endpoint=False).execute(context)
    assert "PUT" not in classic.methods() and "PATCH" not in classic.methods()
    record = store.record("census-ep1")
    assert record.pending is None and record.history[-1]["outcome"] == "failed"


def test_default_endpoint_is_refused(endpoint_operator, classic, store, context):
    with pytest.raises(
        AzureMLConfigError, match=r"'default' is the default endpoint.*non-default endpoint_name"
    ):
        endpoint_operator(endpoint_name="default").execute(context)
    assert "PATCH" not in classic.methods()
    assert store.record("census-ep1").history[-1]["outcome"] == "failed"


def test_invalid_endpoint_name_is_refused(endpoint_operator, classic, context):
    with pytest.raises(AzureMLConfigError, match="is not valid"):
        endpoint_operator(endpoint_name="EP_1").execute(context)
    assert "PATCH" not in classic.methods()


def test_update_that_never_took_effect_fails_and_leaves_the_endpoint_alone(
    endpoint_operator, classic, store, context
):
    classic.ignore_patches = True
    with pytest.raises(
        AzureMLApiError, match=rf"accepted the update but still reports {re.escape(OLD_URI)}"
    ) as info:
        endpoint_operator().execute(context)
    assert len(classic.patches) == 1, "nothing to roll back: the endpoint never served the new model"
    assert classic.location()["RelativeLocation"] == OLD_REL
    record = store.record("census-ep1")
    assert record.pending is None and record.current is None
    assert record.history[-1]["outcome"] == "failed"
    assert_no_secrets(*_everything(info.value), secrets=SECRETS)


def test_update_applied_but_answered_with_an_error_is_rolled_back(endpoint_operator, classic, store, context):
    classic.apply_failed_patches = True
    classic.patch_statuses = [500]  # the endpoint took the new model, then the answer was an error
    with pytest.raises(
        UnconfirmedDeploymentError,
        match=rf"not confirmed \(AzureMLApiError: .*500.*rolled back to {re.escape(OLD_URI)}",
    ) as info:
        endpoint_operator().execute(context)
    assert len(classic.patches) == 2, "the update, then the previous location again"
    assert classic.location()["RelativeLocation"] == OLD_REL
    record = store.record("census-ep1")
    assert record.pending is None and record.current is None
    assert record.history[-1]["outcome"] == "rolled_back"
    assert_no_secrets(*_everything(info.value), secrets=SECRETS)


@pytest.mark.parametrize("wait", ["soon", -1, float("nan"), None])
def test_bad_wait_after_update_is_refused_before_anything_is_claimed(
    endpoint_operator, classic, store, context, wait
):
    with pytest.raises(AzureMLConfigError, match=r"wait_after_update must be a number of seconds >= 0"):
        endpoint_operator(wait_after_update=wait).execute(context)
    assert classic.requests == [] and store.blobs == {}, "no call and no claim"


def test_patch_error_is_redacted_and_recorded(endpoint_operator, classic, store, context, log_text):
    classic.patch_statuses = [400]
    with pytest.raises(AzureMLApiError, match="answered 400 BadRequest") as info:
        endpoint_operator().execute(context)
    assert store.record("census-ep1").history[-1]["outcome"] == "failed"
    assert_no_secrets(*_everything(info.value), log_text(), store.blobs, secrets=SECRETS)


# -- classic endpoint: smoke test and rollback ---------------------------------------------------------


def test_smoke_test_failure_rolls_back(endpoint_operator, classic, store, context, log_text):
    classic.score_answers = [scored(rows=1)]
    with pytest.raises(
        SmokeTestError, match=rf"Scoring 2 rows returned 1 rows.*rolled back to {re.escape(OLD_URI)}"
    ) as info:
        endpoint_operator().execute(context)

    assert len(classic.patches) == 2
    assert classic.patches[1] == {
        "Resources": [
            {
                "Name": RESOURCE,
                "Location": {
                    "BaseLocation": BASE_LOCATION,
                    "RelativeLocation": OLD_REL,
                    "SasBlobToken": f"?sv=1&sig={OLD_SIG}",
                },
            }
        ]
    }
    assert classic.location()["RelativeLocation"] == OLD_REL
    record = store.record("census-ep1")
    assert record.pending is None and record.current is None
    assert record.history[-1]["outcome"] == "rolled_back"
    assert "Scoring 2 rows returned 1 rows" in record.history[-1]["reason"]
    assert_no_secrets(*_everything(info.value), log_text(), store.blobs, secrets=SECRETS)


def test_wrong_answers_fail_for_good_but_a_scoring_outage_leaves_retries(
    endpoint_operator, classic, store, context
):
    classic.score_answers = [scored(rows=1)]
    with pytest.raises(SmokeTestError) as wrong:
        endpoint_operator().execute(context)
    assert isinstance(wrong.value, AirflowFailException), "the same model would answer wrongly again"

    classic.score_status = 503
    with pytest.raises(SmokeTestUnavailableError, match=r"answered 503.*rolled back to") as outage:
        endpoint_operator().execute(context)
    assert not isinstance(outage.value, AirflowFailException), "a retry may find the service up"
    assert classic.location()["RelativeLocation"] == OLD_REL
    assert store.record("census-ep1").history[-1]["outcome"] == "rolled_back"


def test_empty_predictions_roll_back(endpoint_operator, classic, store, context):
    classic.score_answers = [scored(label="")]
    with pytest.raises(SmokeTestError, match="no 'Scored Labels'"):
        endpoint_operator().execute(context)
    assert store.record("census-ep1").history[-1]["outcome"] == "rolled_back"


def test_missing_smoke_sample_fails_before_the_endpoint_changes(
    endpoint_operator, classic, store, sample, context
):
    from azure.core.exceptions import ResourceNotFoundError

    sample.error = ResourceNotFoundError("The specified blob does not exist.")
    with pytest.raises(
        AzureMLConfigError, match=r"smoke-test sample samples/census.csv does not exist .*'blob_test'"
    ):
        endpoint_operator().execute(context)
    assert classic.patches == [] and classic.location()["RelativeLocation"] == OLD_REL
    assert store.blobs == {}, "nothing claimed, nothing recorded"


def test_smoke_sample_that_is_no_csv_fails_before_the_endpoint_changes(
    endpoint_operator, classic, store, sample, context
):
    sample.text = "just a header\n"
    with pytest.raises(AzureMLConfigError, match="needs a header and at least one row"):
        endpoint_operator().execute(context)
    assert classic.patches == [] and store.blobs == {}


def test_smoke_sample_unreadable_for_other_reasons_is_redacted(
    endpoint_operator, classic, store, sample, context
):
    from azure.core.exceptions import HttpResponseError

    url = f"https://acct.blob.core.windows.net/samples/census.csv?sv=2024-08-04&sp=r&sig={RESULT_SIG}"
    sample.error = HttpResponseError(f"Server failed to authenticate the request: {url}\n<xml/>")
    with pytest.raises(AzureMLError, match="Could not read the smoke-test sample samples/census.csv") as info:
        endpoint_operator().execute(context)
    assert RESULT_SIG not in str(info.value) and classic.patches == []


def test_failed_rollback_names_the_previous_model(endpoint_operator, classic, store, context, log_text):
    classic.score_answers = [scored(rows=1)]
    classic.patch_statuses = [200, 400]
    with pytest.raises(
        RollbackError, match=rf"rollback failed .*Point census-ep1 back to {re.escape(OLD_URI)} by hand"
    ) as info:
        endpoint_operator().execute(context)
    record = store.record("census-ep1")
    assert record.pending is None and record.history[-1]["outcome"] == "rollback_failed"
    assert record.attention["may_serve"] == NEW_URI and record.attention["run_id"] == context["run_id"]
    assert_no_secrets(*_everything(info.value), log_text(), store.blobs, secrets=SECRETS)

    # The next run is warned, and its successful promotion clears the warning.
    classic.score_answers = [scored()]
    classic.patch_statuses = []
    endpoint_operator().execute({**context, "run_id": "run-next"})
    assert "census-ep1 needs attention" in log_text() and f"it may serve {NEW_URI}" in log_text()
    record = store.record("census-ep1")
    assert record.attention is None and record.current["run_id"] == "run-next"


def test_rollback_without_previous_location_fails_loudly(endpoint_operator, classic, store, context):
    classic.endpoints["ep1"]["Resources"][0]["Location"] = None
    classic.score_answers = [scored(rows=1)]
    with pytest.raises(RollbackError, match="no previous model location"):
        endpoint_operator().execute(context)


# -- classic endpoint: the guard ---------------------------------------------------------------------


def test_stale_claim_skips_without_touching_the_endpoint(endpoint_operator, classic, store, context):
    store.seed(
        DeploymentRecord(
            "census-ep1",
            current={
                "model_uri": OLD_URI,
                "run_id": "run-9",
                "data_interval_end": "2024-07-01T00:00:00+00:00",
            },
        )
    )
    with pytest.raises(AirflowSkipException, match="older, so it is not deployed"):
        endpoint_operator().execute(context)
    assert classic.requests == []


def test_force_deploys_over_newer_data(endpoint_operator, classic, store, context):
    store.seed(
        DeploymentRecord(
            "census-ep1",
            current={
                "model_uri": OLD_URI,
                "run_id": "run-9",
                "data_interval_end": "2024-07-01T00:00:00+00:00",
            },
        )
    )
    assert endpoint_operator(force=True, smoke_test_sample=None).execute(context)["outcome"] == "deployed"


@pytest.mark.parametrize("rendered", ["False", "false", " FALSE ", "0", "no", "", None, False])
def test_force_rendered_false_does_not_force(endpoint_operator, classic, store, context, rendered):
    store.seed(
        DeploymentRecord(
            "census-ep1",
            current={
                "model_uri": OLD_URI,
                "run_id": "run-9",
                "data_interval_end": "2024-07-01T00:00:00+00:00",
            },
        )
    )
    with pytest.raises(AirflowSkipException, match="older, so it is not deployed"):
        endpoint_operator(force=rendered).execute(context)
    assert classic.requests == []
    assert store.record("census-ep1").current["run_id"] == "run-9"


@pytest.mark.parametrize("rendered", ["True", "true", "1", "yes", " Yes "])
def test_force_rendered_true_forces(endpoint_operator, classic, store, context, rendered):
    store.seed(
        DeploymentRecord(
            "census-ep1",
            current={
                "model_uri": OLD_URI,
                "run_id": "run-9",
                "data_interval_end": "2024-07-01T00:00:00+00:00",
            },
        )
    )
    result = endpoint_operator(force=rendered, smoke_test_sample=None).execute(context)
    assert result["outcome"] == "deployed"


@pytest.mark.parametrize("field", ["force", "skip_promotion"])
def test_unclear_flag_is_refused_naming_task_field_and_value(
    endpoint_operator, classic, store, context, field
):
    with pytest.raises(
        AzureMLConfigError,
        match=rf"Task 'promote' \(AzureMLUpdateEndpointModelOperator\): {field} must be true or false.*'maybe'",
    ):
        endpoint_operator(**{field: "maybe"}).execute(context)
    assert classic.requests == []
    assert store.writes == []


@pytest.mark.parametrize("rendered", [True, "True", "yes"])
def test_skip_promotion_skips_without_claiming_or_deploying(
    endpoint_operator, classic, store, context, log_text, rendered
):
    with pytest.raises(AirflowSkipException, match="skip_promotion is set for this run: census-ep1 is left"):
        endpoint_operator(skip_promotion=rendered).execute(context)
    assert classic.requests == []
    assert store.writes == []
    assert "skip_promotion is set for this run" in log_text()


def test_skip_promotion_rendered_false_promotes(endpoint_operator, classic, store, context):
    result = endpoint_operator(skip_promotion="False", smoke_test_sample=None).execute(context)
    assert result["outcome"] == "deployed"


def test_already_deployed_is_a_no_op(endpoint_operator, classic, store, context):
    current = {"model_uri": NEW_URI, "run_id": "run-2", "job_id": JOB_ID, "model_etag": MODEL_ETAG}
    store.seed(DeploymentRecord("census-ep1", current=current))
    result = endpoint_operator().execute(context)
    assert result == {
        "deployment_target": "census-ep1",
        "model_uri": NEW_URI,
        "outcome": "already_deployed",
        "job_id": JOB_ID,
        "data_version": "2024-06-02T00:00:00+00:00",
        "reason": f"census-ep1 already serves the model of BES job {JOB_ID} ({NEW_URI}, version {MODEL_ETAG}).",
    }
    assert classic.requests == []


def test_a_new_job_that_wrote_the_deployed_uri_is_deployed(endpoint_operator, classic, store, context):
    # Issue 8, case 2: the blob the endpoint was given was written again by another job.
    current = {"model_uri": NEW_URI, "run_id": "run-2", "job_id": "an-earlier-job", "model_etag": "0x1"}
    store.seed(DeploymentRecord("census-ep1", current=current))
    result = endpoint_operator(smoke_test_sample=None).execute(context)
    assert result["outcome"] == "deployed" and result["model_etag"] == MODEL_ETAG
    entry = store.record("census-ep1").current
    assert entry["job_id"] == JOB_ID and entry["model_etag"] == MODEL_ETAG
    assert store.record("census-ep1").history[-1]["job_id"] == "an-earlier-job"


def test_a_run_without_data_version_is_not_deployed_and_says_why(endpoint_operator, classic, store, context):
    manual = {**context, "data_interval_start": None, "data_interval_end": None}
    with pytest.raises(AirflowSkipException, match="no data version") as info:
        endpoint_operator().execute(manual)
    assert "not started by a blob arrival" in str(info.value)
    assert manual["ti"].xcom["promotion"]["outcome"] == "no_data_version"
    assert "not started by a blob arrival" in manual["ti"].xcom["promotion"]["reason"]
    assert classic.requests == [] and store.writes == []
    assert endpoint_operator(force=True, smoke_test_sample=None).execute(manual)["outcome"] == "deployed"
    assert store.record("census-ep1").current["data_interval_end"] is None


def test_an_asset_run_takes_its_data_version_from_the_blob_that_landed(
    endpoint_operator, classic, store, context
):
    store.seed(
        DeploymentRecord(
            "census-ep1", current={"model_uri": OLD_URI, "data_interval_end": "2030-01-02T00:00:00+00:00"}
        )
    )
    event = SimpleNamespace(
        extra={"payload": {"container": "data", "blob": "binary/dt=2030-01-01/train.csv"}}
    )
    asset_run = {
        **context,
        "data_interval_start": None,
        "data_interval_end": None,
        "triggering_asset_events": {"a": [event]},
    }
    with pytest.raises(AirflowSkipException, match="older"):
        endpoint_operator().execute(asset_run)  # issue 8, case 4: older data landing late
    assert asset_run["ti"].xcom["promotion"]["data_version"] == "2030-01-01T00:00:00+00:00"
    assert classic.requests == []


def test_data_version_blob_names_the_data_whatever_started_the_run(
    endpoint_operator, classic, store, context
):
    manual = {**context, "data_interval_start": None, "data_interval_end": None}
    result = endpoint_operator(
        smoke_test_sample=None, data_version_blob="data/binary/dt=2030-01-03/train.csv"
    ).execute(manual)
    assert result["data_version"] == "2030-01-03T00:00:00+00:00"
    assert (
        store.record("census-ep1").current["data_version_source"]
        == "the date in blob path data/binary/dt=2030-01-03/train.csv"
    )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"data_version_blob": "no-container-part"}, "must be 'container/path/to/blob'"),
        ({"data_version_pattern": "(unclosed"}, "not a regular expression"),
    ],
)
def test_bad_data_version_arguments_are_refused_before_anything_changes(
    endpoint_operator, classic, store, context, kwargs, match
):
    with pytest.raises(AzureMLConfigError, match=match):
        endpoint_operator(**kwargs).execute(context)
    assert classic.requests == [] and store.writes == []


def test_live_claim_of_another_run_conflicts(endpoint_operator, classic, store, context):
    claimed = datetime.now(UTC).isoformat()
    store.seed(
        DeploymentRecord(
            "census-ep1", pending={"run_id": "run-7", "claimed_at": claimed, "lease_seconds": 600}
        )
    )
    with pytest.raises(DeploymentConflictError, match="Run run-7 is promoting"):
        endpoint_operator().execute(context)
    assert classic.requests == []


def test_unfinished_training_job_has_nothing_to_promote(endpoint_operator, classic, rsps, context):
    rsps.replace("GET", job_url(), json=status_body("Running"))
    with pytest.raises(AzureMLConfigError, match="is Running, not Finished"):
        endpoint_operator().execute(context)


def test_training_result_must_match_the_job(endpoint_operator, classic, context):
    other = {**TRAINING, "outputs": {"output1": {"relative_location": "models/other/model.ilearner"}}}
    with pytest.raises(AzureMLConfigError, match="wrong training_result"):
        endpoint_operator(training_result=other).execute(context)


# -- ARM web service -------------------------------------------------------------------------------

SVC = f"{ARM_URL}/subscriptions/sub1/resourceGroups/rg1/providers/Microsoft.MachineLearning/webServices/svc1"
SVC_URL = f"{SVC}?api-version=2017-01-01"
KEYS_URL = f"{SVC}/listKeys?api-version=2017-01-01"
OP_URL = f"{ARM_URL}/subscriptions/sub1/providers/Microsoft.MachineLearning/operationsStatus/op{{n}}"
EXEC = "https://ussouthcentral.services.azureml.net"
ARM_SCORE_URL = f"{EXEC}/subscriptions/sub1/services/svc1/execute?api-version=2.0&details=true"


class ArmService:
    """A stateful ARM web service on ``responses`` callbacks: PATCH, async-operation polling, keys, RRS."""

    def __init__(self, rsps) -> None:
        self.definition: dict[str, Any] = {
            "id": "/subscriptions/sub1/resourceGroups/rg1/providers/Microsoft.MachineLearning/webServices/svc1",
            "name": "svc1",
            "location": "South Central US",
            "type": "Microsoft.MachineLearning/webServices",
            "properties": {
                "title": "svc1",
                "provisioningState": "Succeeded",
                "assets": {
                    "asset1": {"name": "Input", "type": "Module", "locationInfo": {"uri": "aml://module/1"}},
                    "asset3": {
                        "name": "Retrain Sample [trained model]",
                        "type": "Resource",
                        "locationInfo": {"uri": OLD_URI},
                    },
                },
            },
        }
        self.patches: list[dict[str, Any]] = []
        self.statuses: list[list[dict[str, Any]]] = []  # per PATCH: the poll answers
        self.pending: list[dict[str, Any]] = []
        self.polls = 0
        self.gets = 0
        self.on_get: Any = None
        self.apply_on_patch = False  # the new definition is live before provisioning reports an end
        self.ignored: set[int] = set()  # PATCH numbers that report Succeeded but change nothing
        self.score_answers = [scored()]
        rsps.add_callback("GET", SVC_URL, callback=self._get)
        rsps.add_callback("PATCH", SVC_URL, callback=self._patch)
        rsps.add_callback("GET", re.compile(re.escape(OP_URL.format(n="")) + r"\d+$"), callback=self._poll)
        rsps.add_callback(
            "GET",
            KEYS_URL,
            callback=lambda r: (200, {}, json.dumps({"primary": SERVICE_KEY, "secondary": SECONDARY_KEY})),
        )
        rsps.add_callback("POST", ARM_SCORE_URL, callback=self._score)

    def _get(self, request):
        self.gets += 1
        if self.on_get is not None:
            self.on_get()
        assert request.headers["Authorization"] == f"Bearer {ARM_TOKEN}"
        return 200, {}, json.dumps(self.definition)

    def _patch(self, request):
        body = _body(request)
        self.patches.append(body)
        n = len(self.patches)
        self.pending.append(body)
        if self.apply_on_patch:
            self.definition["properties"] = {**body["properties"], "provisioningState": "Provisioning"}
        return (
            202,
            {"Azure-AsyncOperation": OP_URL.format(n=n)},
            json.dumps(
                {**self.definition, "properties": {**body["properties"], "provisioningState": "Provisioning"}}
            ),
        )

    def _poll(self, request):
        self.polls += 1
        n = int(request.url.rsplit("op", 1)[1])
        answers = self.statuses[n - 1] if n - 1 < len(self.statuses) else [{"status": "Succeeded"}]
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        if answer["status"] == "Succeeded" and n not in self.ignored:
            self.definition["properties"] = {
                **self.pending[n - 1]["properties"],
                "provisioningState": "Succeeded",
            }
        return 200, {}, json.dumps(answer)

    def _score(self, request):
        assert request.headers["Authorization"] == f"Bearer {SERVICE_KEY}"
        answer = self.score_answers.pop(0) if len(self.score_answers) > 1 else self.score_answers[0]
        return 200, {}, json.dumps(answer)

    def uri(self, definition: dict[str, Any] | None = None) -> str:
        return (definition or self.definition)["properties"]["assets"]["asset3"]["locationInfo"]["uri"]


@pytest.fixture
def arm(rsps, monkeypatch, training_job):
    set_connection(
        monkeypatch,
        ARM_CONN,
        conn_type="azureml_web_services",
        host=ARM_URL,
        extra={
            "subscription_id": "sub1",
            "resource_group": "rg1",
            "execution_url": EXEC,
            "retry_backoff": 0,
            "max_retries": 0,
        },
    )
    return ArmService(rsps)


@pytest.fixture
def web_service_operator(arm, store, sample, sleeps):
    def make(**kwargs: Any) -> AzureMLUpdateWebServiceModelOperator:
        params: dict[str, Any] = {
            "task_id": "promote",
            "deployment_target": "svc1",
            "training_result": TRAINING,
            "training_conn_id": "azureml_test",
            "wasb_conn_id": "blob_test",
            "gate_result": GATE,
            "smoke_test_sample": "samples/census.csv",
            "azureml_arm_conn_id": ARM_CONN,
            "web_service_name": "svc1",
            "poll_interval": 4,
        }
        params.update(kwargs)
        op = AzureMLUpdateWebServiceModelOperator(**params)
        op.hook.credential = FakeCredential()
        op.hook._sleep = sleeps
        return op

    return make


EXPECTED_PATCH = [
    {"op": "test", "path": "/properties/assets/asset3/locationInfo/uri", "value": OLD_URI},
    {"op": "replace", "path": "/properties/assets/asset3/locationInfo/uri", "value": NEW_URI},
]


def test_arm_promotion_patches_the_asset_and_waits_for_provisioning(
    web_service_operator, arm, store, sleeps, context, log_text
):
    arm.statuses = [[{"status": "InProgress", "percentComplete": 40}, {"status": "Succeeded"}]]
    result = web_service_operator().execute(context)

    assert len(arm.patches) == 1
    sent = arm.patches[0]
    assert arm.uri(sent) == NEW_URI
    assert sent["properties"]["assets"]["asset1"] == arm.definition["properties"]["assets"]["asset1"]
    assert set(sent) == {"location", "properties"}
    assert arm.polls == 2 and sleeps.delays == [4]
    assert arm.uri() == NEW_URI

    assert result["outcome"] == "deployed" and result["previous_model_uri"] == OLD_URI
    assert result["details"]["json_patch"] == EXPECTED_PATCH
    assert result["details"]["asset_key"] == "asset3"
    assert result["smoke_test"]["predictions"] == ["1", "1"]
    assert store.record("svc1").current["json_patch"] == EXPECTED_PATCH
    assert "Applying JSON Patch (promote)" in log_text()
    assert_no_secrets(json.dumps(result), log_text(), store.blobs, secrets=SECRETS)


def test_arm_failed_provisioning_raises_and_records(web_service_operator, arm, store, context):
    arm.statuses = [
        [
            {"status": "InProgress"},
            {"status": "Failed", "errorInfo": {"code": "ModelInvalid", "message": "cannot load the model"}},
        ]
    ]
    with pytest.raises(AzureMLApiError, match="ended Failed: cannot load the model") as info:
        web_service_operator().execute(context)
    assert len(arm.patches) == 1 and arm.uri() == OLD_URI
    record = store.record("svc1")
    assert record.pending is None and record.history[-1]["outcome"] == "failed"
    assert_no_secrets(*_everything(info.value), secrets=SECRETS)


def test_arm_provisioning_timeout_never_applied_fails_without_a_rollback(
    web_service_operator, arm, store, context
):
    arm.statuses = [[{"status": "InProgress"}]]
    with pytest.raises(AzureMLApiError, match=r"did not finish within 0 s"):
        web_service_operator(provisioning_timeout=0).execute(context)
    assert len(arm.patches) == 1 and arm.uri() == OLD_URI
    record = store.record("svc1")
    assert record.pending is None and record.history[-1]["outcome"] == "failed"


def test_arm_provisioning_timeout_with_the_new_model_live_is_rolled_back(
    web_service_operator, arm, store, context
):
    arm.apply_on_patch = True
    arm.statuses = [[{"status": "InProgress"}]]  # the promotion never reports an end; the rollback does
    with pytest.raises(
        UnconfirmedDeploymentError, match=rf"did not finish within 0 s.*rolled back to {re.escape(OLD_URI)}"
    ):
        web_service_operator(provisioning_timeout=0).execute(context)
    assert [arm.uri(p) for p in arm.patches] == [NEW_URI, OLD_URI]
    assert arm.uri() == OLD_URI
    record = store.record("svc1")
    assert record.pending is None and record.current is None
    assert record.history[-1]["outcome"] == "rolled_back"


def test_arm_previous_uri_with_a_sas_is_restored_but_never_shown(
    web_service_operator, arm, store, context, log_text
):
    signed = f"{OLD_URI}?sv=2020-08-04&sr=b&sig={OLD_SIG}&sp=r"
    arm.definition["properties"]["assets"]["asset3"]["locationInfo"]["uri"] = signed
    arm.score_answers = [scored(rows=3)]
    with pytest.raises(SmokeTestError, match=rf"rolled back to {re.escape(OLD_URI)}\.$") as info:
        web_service_operator().execute(context)
    assert arm.uri() == signed, "the service gets back exactly what it had, SAS included"
    history = store.record("svc1").history[-1]
    assert history["outcome"] == "rolled_back"
    assert history["json_patch"][0]["value"] == f"{OLD_URI}?sv=2020-08-04&sr=b&sig=***&sp=r"
    assert_no_secrets(*_everything(info.value), log_text(), store.blobs, secrets=SECRETS)


def test_arm_promotion_over_a_signed_uri_returns_it_without_the_sas(
    web_service_operator, arm, store, context, log_text
):
    arm.definition["properties"]["assets"]["asset3"]["locationInfo"]["uri"] = f"{OLD_URI}?sv=1&sig={OLD_SIG}"
    result = web_service_operator().execute(context)
    assert result["outcome"] == "deployed" and result["previous_model_uri"] == OLD_URI
    assert store.record("svc1").current["previous_model_uri"] == OLD_URI
    assert_no_secrets(repr(result), log_text(), store.blobs, secrets=SECRETS)


def test_arm_smoke_failure_applies_the_inverse_patch(web_service_operator, arm, store, context, log_text):
    arm.score_answers = [scored(rows=3)]
    with pytest.raises(SmokeTestError, match=rf"rolled back to {re.escape(OLD_URI)}") as info:
        web_service_operator().execute(context)
    assert [arm.uri(p) for p in arm.patches] == [NEW_URI, OLD_URI]
    assert arm.uri() == OLD_URI
    assert "Applying JSON Patch (rollback)" in log_text()
    record = store.record("svc1")
    assert record.current is None and record.history[-1]["outcome"] == "rolled_back"
    assert record.history[-1]["json_patch"] == EXPECTED_PATCH
    assert_no_secrets(*_everything(info.value), log_text(), store.blobs, secrets=SECRETS)


def test_arm_failed_rollback_raises_rollback_error(web_service_operator, arm, store, context):
    arm.score_answers = [scored(rows=3)]
    arm.statuses = [[{"status": "Succeeded"}], [{"status": "Failed", "errorInfo": {"message": "busy"}}]]
    with pytest.raises(RollbackError, match=rf"busy.*back to {re.escape(OLD_URI)} by hand"):
        web_service_operator().execute(context)
    assert store.record("svc1").history[-1]["outcome"] == "rollback_failed"


def test_arm_update_that_provisions_but_serves_the_old_model_is_not_deployed(
    web_service_operator, arm, store, context
):
    arm.ignored = {1}
    with pytest.raises(AzureMLApiError, match=rf"provisioned but serves {re.escape(OLD_URI)}, not"):
        web_service_operator().execute(context)
    assert len(arm.patches) == 1 and arm.uri() == OLD_URI, "nothing to roll back"
    record = store.record("svc1")
    assert record.current is None and record.history[-1]["outcome"] == "failed"


def test_arm_rollback_that_provisions_but_leaves_the_new_model_is_a_rollback_error(
    web_service_operator, arm, store, context
):
    arm.score_answers = [scored(rows=3)]
    arm.ignored = {2}
    with pytest.raises(RollbackError, match=rf"serves {re.escape(NEW_URI)} after the rollback"):
        web_service_operator().execute(context)
    assert arm.uri() == NEW_URI
    record = store.record("svc1")
    assert record.history[-1]["outcome"] == "rollback_failed" and record.attention is not None


def test_arm_concurrent_change_is_caught_by_the_test_op(web_service_operator, arm, store, context):
    def someone_else_changes_the_model() -> None:
        if arm.gets == 2:  # between the operator's read and its patch
            arm.definition["properties"]["assets"]["asset3"]["locationInfo"]["uri"] = (
                BASE_LOCATION + "models/other/model.ilearner"
            )

    arm.on_get = someone_else_changes_the_model
    with pytest.raises(AzureMLConfigError, match="changed since it was read.*nothing was updated"):
        web_service_operator().execute(context)
    assert arm.patches == []
    assert store.record("svc1").history[-1]["outcome"] == "failed"


def test_arm_stale_claim_skips(web_service_operator, arm, store, context):
    store.seed(
        DeploymentRecord(
            "svc1", current={"model_uri": OLD_URI, "data_interval_end": "2025-01-01T00:00:00+00:00"}
        )
    )
    with pytest.raises(AirflowSkipException):
        web_service_operator().execute(context)
    assert arm.patches == []


def test_ragged_smoke_sample_fails_before_the_endpoint_changes(
    endpoint_operator, classic, store, sample, context
):
    sample.text = "age,income,label\n39,52000\n"
    with pytest.raises(AzureMLConfigError, match="row 1 has 2 values for 3 columns"):
        endpoint_operator().execute(context)
    assert classic.patches == [] and classic.location()["RelativeLocation"] == OLD_REL
    assert store.writes == []


def test_smoke_test_waits_until_the_endpoint_serves_the_new_model(
    endpoint_operator, classic, context, monkeypatch
):
    import airflow_provider_amlretrain.operators.update_endpoint_model as module

    events: list[str] = []
    monkeypatch.setattr(module.time, "sleep", lambda seconds: events.append(f"sleep {seconds}"))
    operator = endpoint_operator(wait_after_update="30")
    original_score = operator.score
    monkeypatch.setattr(operator, "score", lambda sample: events.append("score") or original_score(sample))

    operator.execute(context)

    assert events == ["sleep 30.0", "score"], "scoring right after the PATCH would test the old model"


def test_wait_after_update_must_be_a_number(endpoint_operator, context):
    with pytest.raises(AzureMLConfigError, match="wait_after_update must be a number"):
        endpoint_operator(wait_after_update="soon").execute(context)


def test_an_undated_data_version_blob_takes_its_last_modified_time_and_must_exist(
    endpoint_operator, classic, store, context, sample
):
    from azure.core.exceptions import ResourceNotFoundError

    manual = {**context, "data_interval_start": None, "data_interval_end": None}
    modified = {"data/binary/latest.csv": datetime(2030, 2, 3, 4, 5, tzinfo=UTC)}

    def properties(container: str, blob: str) -> SimpleNamespace:
        if f"{container}/{blob}" not in modified:
            raise ResourceNotFoundError("gone")
        return SimpleNamespace(last_modified=modified[f"{container}/{blob}"])

    sample.service.properties = properties

    result = endpoint_operator(smoke_test_sample=None, data_version_blob="data/binary/latest.csv").execute(
        manual
    )
    assert result["data_version"] == "2030-02-03T04:05:00+00:00"
    with pytest.raises(AzureMLConfigError, match="data_version_blob data/binary/missing.csv does not exist"):
        endpoint_operator(data_version_blob="data/binary/missing.csv").execute(manual)
