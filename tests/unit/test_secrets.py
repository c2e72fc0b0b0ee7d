"""Secrets (API key, storage account key, SAS signature) never reach an exception message or a log line."""

from __future__ import annotations

import json

import pytest

from airflow_provider_amlretrain.api.bes import BatchJobState, BesApi
from airflow_provider_amlretrain.api.references import BlobLocation, BlobReference
from airflow_provider_amlretrain.api.states import BatchJobStatus
from airflow_provider_amlretrain.exceptions import AzureMLError
from airflow_provider_amlretrain.redaction import redact, strip_query
from tests.unit.support import ACCOUNT_KEY, API_KEY, JOB_ID, JOBS_URL, SAS_SIG, job_url, status_body

SECRETS = (API_KEY, ACCOUNT_KEY, SAS_SIG)
ECHO = (
    f"Request with key {API_KEY} rejected for input "
    f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={ACCOUNT_KEY};EndpointSuffix=core.windows.net "
    f"and https://acct.blob.core.windows.net/c/x.csv?sv=2020-08-04&sr=b&sig={SAS_SIG}&se=2030-01-01"
)


def _assert_clean(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text, f"secret {secret!r} leaked into: {text}"


def _everything(err: BaseException) -> list[str]:
    texts = [str(err), repr(err)]
    for attr in ("service_message", "details", "url"):
        value = getattr(err, attr, None)
        if value:
            texts.append(str(value))
    if err.__cause__ is not None:
        texts.append(str(err.__cause__))
    return texts


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(
            {"status": 400, "json": {"error": {"code": "BadArgument", "message": ECHO}}},
            id="400-error-object",
        ),
        pytest.param({"status": 400, "json": {"Code": "BadArgument", "Message": ECHO}}, id="400-flat-object"),
        pytest.param({"status": 401, "body": ECHO}, id="401-plain-text"),
        pytest.param({"status": 404, "json": {"error": {"code": "NotFound", "message": ECHO}}}, id="404"),
        pytest.param(
            {"status": 500, "json": {"error": {"code": "Internal", "details": ECHO}}}, id="500-after-retries"
        ),
    ],
)
def test_error_bodies_echoing_secrets_are_redacted(transport, log_text, answer):
    kwargs = {"status": answer["status"]}
    if "json" in answer:
        kwargs["json_body"] = answer["json"]
    else:
        kwargs["body"] = answer["body"]
    for _ in range(4 if answer["status"] == 500 else 1):
        transport.add("GET", job_url(), **kwargs)

    with pytest.raises(AzureMLError) as info:
        transport.run("get_job", JOB_ID)

    assert "rejected" in str(info.value)  # the service's words are kept, only the secrets go
    _assert_clean(*_everything(info.value), log_text())


def test_success_answer_that_is_not_json_is_redacted(transport, log_text):
    transport.add("GET", job_url(), body=ECHO)

    with pytest.raises(AzureMLError) as info:
        transport.run("get_job", JOB_ID)

    _assert_clean(*_everything(info.value), log_text())


def test_submit_answer_echoing_secrets_is_redacted(hook, rsps, log_text):
    rsps.add("POST", JOBS_URL, json={"message": ECHO, "api_key": API_KEY})

    with pytest.raises(AzureMLError) as info:
        hook.submit_job({"Outputs": {}})

    _assert_clean(*_everything(info.value), log_text())


def test_connection_errors_mentioning_the_key_are_redacted(transport, log_text):
    for _ in range(4):
        transport.add(
            "GET", job_url(), exc=transport.connection_error(f"proxy refused Bearer {API_KEY} / {API_KEY}")
        )

    with pytest.raises(AzureMLError) as info:
        transport.run("get_job", JOB_ID)

    _assert_clean(*_everything(info.value), log_text())


def test_job_details_echoing_storage_secrets_are_redacted(transport, log_text):
    transport.add("GET", job_url(), json_body=status_body("Failed", details=ECHO))

    state = transport.run("get_job", JOB_ID)

    assert state.details and "rejected" in state.details
    _assert_clean(state.details, json.dumps(state.to_summary()), repr(state), log_text())


def test_retry_warnings_do_not_log_secrets(transport, log_text):
    transport.add("GET", job_url(), status=503, body=ECHO, headers={"Retry-After": "1"})
    transport.add("GET", job_url(), json_body=status_body("Running"))

    transport.run("get_job", JOB_ID)

    text = log_text()
    assert "503" in text  # the retry was logged
    _assert_clean(text)


def test_reprs_hide_secrets(hook):
    ref = BlobReference(
        relative_location="c/x.csv",
        connection_string=f"DefaultEndpointsProtocol=https;AccountName=a;AccountKey={ACCOUNT_KEY};",
    )
    sas_ref = BlobReference(
        relative_location="c/x.csv",
        base_location="https://a.blob.core.windows.net/",
        sas_token=f"?sig={SAS_SIG}",
    )
    loc = BlobLocation("https://a.blob.core.windows.net/", "c/x.csv", f"?sv=1&sig={SAS_SIG}")
    state = BatchJobState(JOB_ID, BatchJobStatus.FINISHED, {"output1": loc})
    _assert_clean(
        repr(ref),
        repr(sas_ref),
        repr(loc),
        repr(state),
        repr(hook.settings),
        loc.uri,
        json.dumps(state.to_summary()),
    )


def test_bes_request_repr_hides_the_body():
    request = BesApi("https://h/workspaces/w/services/s").submit(
        {"Outputs": {"o": {"ConnectionString": f"AccountKey={ACCOUNT_KEY}", "RelativeLocation": "c/x"}}}
    )
    _assert_clean(repr(request))


# -- redact() -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "secrets", "expected"),
    [
        (
            "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=abc+/def==;EndpointSuffix=core.windows.net",
            (),
            "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=***;EndpointSuffix=core.windows.net",
        ),
        (
            "BlobEndpoint=https://a/;SharedAccessSignature=sv=1&sig=x",
            (),
            "BlobEndpoint=https://a/;SharedAccessSignature=***",
        ),
        ("https://a/c/b?sv=2020&sig=abc%2Bdef&se=1", (), "https://a/c/b?sv=2020&sig=***&se=1"),
        ("https://a/c/b?sig=abc&sv=1", (), "https://a/c/b?sig=***&sv=1"),
        ("Authorization: Bearer eyJ0eXAi.J9.x-y_z", (), "Authorization: Bearer ***"),
        ('{"api_key": "k123", "PrimaryKey": "p456"}', (), '{"api_key": "***", "PrimaryKey": "***"}'),
        ("apikey=zzz9 password: hunter22", (), "apikey=*** password: ***"),
        # Python reprs quote with ' (a dict printed into a message).
        (
            "{'PrimaryKey': 'p456', 'secondary_key': 's789'}",
            (),
            "{'PrimaryKey': '***', 'secondary_key': '***'}",
        ),
        ("client_secret=cs-1 Name=x", (), "client_secret=*** Name=x"),
        ("the key is s3cr3t-api-key, yes", ("s3cr3t-api-key",), "the key is ***, yes"),
        ("short abc stays", ("abc",), "short abc stays"),
        ("nothing to hide here", (None, ""), "nothing to hide here"),
    ],
)
def test_redact(text, secrets, expected):
    assert redact(text, *secrets) == expected


def test_redact_is_idempotent():
    once = redact(ECHO, API_KEY)
    assert redact(once, API_KEY) == once
    _assert_clean(once)


def test_strip_query():
    assert strip_query(f"https://a/c/b?sv=1&sig={SAS_SIG}") == "https://a/c/b"
    assert strip_query("https://a/c/b") == "https://a/c/b"


@pytest.mark.parametrize(("status", "cut"), [(400, 300), (200, 200)])
def test_a_secret_at_the_truncation_boundary_does_not_leak_in_part(transport, status, cut):
    body = "x" * (cut - 9) + " " + API_KEY + " trailing text"  # the key straddles the cut
    transport.add("GET", job_url(), status=status, body=body)

    with pytest.raises(AzureMLError) as info:
        transport.run("get_job", JOB_ID)

    assert API_KEY[:6] not in str(info.value)
