"""The ``azureml_studio`` connection: what it must hold, and the API location forms it accepts."""

from __future__ import annotations

import asyncio

import pytest

from airflow_provider_amlretrain.api.bes import normalize_api_location
from airflow_provider_amlretrain.exceptions import AzureMLConfigError
from airflow_provider_amlretrain.hooks.studio import AzureMLStudioAsyncHook, AzureMLStudioHook
from tests.unit.support import API_KEY, BASE, set_connection

CONN = "azureml_cfg"


def _settings(mode: str):
    if mode == "sync":
        return AzureMLStudioHook(azureml_conn_id=CONN).settings
    return asyncio.run(AzureMLStudioAsyncHook(azureml_conn_id=CONN).aget_settings())


@pytest.fixture(params=["sync", "async"])
def mode(request):
    return request.param


def test_env_connection_is_read_by_both_hooks(monkeypatch, mode):
    set_connection(
        monkeypatch,
        CONN,
        conn_type="azureml_studio",
        host=BASE,
        password=API_KEY,
        extra={"request_timeout": "12.5", "max_retries": "2", "retry_backoff": "0.5"},
    )

    settings = _settings(mode)

    assert settings.conn_id == CONN
    assert settings.api_location == BASE
    assert settings.api_key == API_KEY
    assert settings.request_timeout == 12.5
    assert settings.retry_policy.max_attempts == 3
    assert settings.retry_policy.backoff_base == 0.5


def test_defaults_when_no_extras(monkeypatch, mode):
    set_connection(monkeypatch, CONN, conn_type="azureml_studio", host=BASE, password=API_KEY)

    settings = _settings(mode)

    assert settings.request_timeout == 60.0
    assert settings.retry_policy.max_attempts == 5
    assert settings.retry_policy.backoff_base == 1.0


@pytest.mark.parametrize("unset", [None, ""])
def test_empty_extras_mean_defaults(monkeypatch, mode, unset):
    set_connection(
        monkeypatch,
        CONN,
        conn_type="azureml_studio",
        host=BASE,
        password=API_KEY,
        extra={"request_timeout": unset, "max_retries": unset, "retry_backoff": unset},
    )

    settings = _settings(mode)

    assert (
        settings.request_timeout,
        settings.retry_policy.max_attempts,
        settings.retry_policy.backoff_base,
    ) == (60.0, 5, 1.0)


def test_zero_retries_and_zero_backoff_are_allowed(monkeypatch, mode):
    set_connection(
        monkeypatch,
        CONN,
        conn_type="azureml_studio",
        host=BASE,
        password=API_KEY,
        extra={"max_retries": 0, "retry_backoff": 0},
    )

    settings = _settings(mode)

    assert (settings.retry_policy.max_attempts, settings.retry_policy.backoff_base) == (1, 0.0)


def test_missing_host(monkeypatch, mode):
    set_connection(monkeypatch, CONN, conn_type="azureml_studio", password=API_KEY)

    with pytest.raises(AzureMLConfigError) as info:
        _settings(mode)

    message = str(info.value)
    assert repr(CONN) in message
    assert "host" in message and "services.azureml.net/workspaces/" in message


def test_missing_password(monkeypatch, mode):
    set_connection(monkeypatch, CONN, conn_type="azureml_studio", host=BASE)

    with pytest.raises(AzureMLConfigError) as info:
        _settings(mode)

    message = str(info.value)
    assert repr(CONN) in message
    assert "API key" in message and "password" in message


@pytest.mark.parametrize(
    ("extra", "names"),
    [
        ({"request_timeout": "soon"}, "request_timeout"),
        ({"max_retries": "many"}, "max_retries"),
        ({"retry_backoff": [1, 2]}, "retry_backoff"),
        ({"max_retries": "2.5"}, "max_retries"),
        ({"request_timeout": 0}, "request_timeout must be > 0"),
        ({"request_timeout": "0"}, "request_timeout must be > 0"),
        ({"request_timeout": -1}, "request_timeout must be > 0"),
        ({"max_retries": -2}, "max_retries >= 0"),
        ({"retry_backoff": -0.5}, "retry_backoff >= 0"),
    ],
)
def test_bad_extras(monkeypatch, mode, extra, names):
    set_connection(monkeypatch, CONN, conn_type="azureml_studio", host=BASE, password=API_KEY, extra=extra)

    with pytest.raises(AzureMLConfigError) as info:
        _settings(mode)

    assert repr(CONN) in str(info.value)
    assert names in str(info.value)
    assert API_KEY not in str(info.value)


def test_host_without_services_path_is_refused(monkeypatch, mode):
    set_connection(
        monkeypatch,
        CONN,
        conn_type="azureml_studio",
        host="https://ussouthcentral.services.azureml.net/workspaces/ws1",
        password=API_KEY,
    )

    with pytest.raises(AzureMLConfigError, match="/services/"):
        _settings(mode)


def test_host_copied_with_jobs_suffix_is_accepted(monkeypatch, mode):
    set_connection(
        monkeypatch, CONN, conn_type="azureml_studio", host=f"{BASE}/jobs?api-version=2.0", password=API_KEY
    )

    assert _settings(mode).api_location == BASE


def test_retry_policy_argument_overrides_the_connection(monkeypatch):
    from airflow_provider_amlretrain.api.retry import RetryPolicy

    set_connection(monkeypatch, CONN, conn_type="azureml_studio", host=BASE, password=API_KEY)
    policy = RetryPolicy(max_attempts=1)

    assert AzureMLStudioHook(CONN, retry_policy=policy).settings.retry_policy is policy
    assert (
        asyncio.run(AzureMLStudioAsyncHook(CONN, retry_policy=policy).aget_settings()).retry_policy is policy
    )


def test_constructor_does_not_read_the_connection(monkeypatch):
    monkeypatch.delenv(f"AIRFLOW_CONN_{CONN.upper()}", raising=False)
    AzureMLStudioHook(azureml_conn_id=CONN)  # must not raise: no connection lookup before use
    AzureMLStudioAsyncHook(azureml_conn_id=CONN)


@pytest.mark.parametrize(
    "value",
    [
        BASE,
        BASE + "/",
        BASE + "/jobs",
        BASE + "/jobs/",
        BASE + "/jobs?api-version=2.0",
        BASE + "/execute?api-version=2.0&details=true",
        BASE + "/execute",
        "  " + BASE + "  ",
        BASE.removeprefix("https://"),
    ],
)
def test_normalize_api_location(value):
    assert normalize_api_location(value) == BASE


def test_normalize_keeps_other_hosts():
    emulator = "http://127.0.0.1:8765/workspaces/ws1/services/svc1"
    assert normalize_api_location(emulator + "/jobs?api-version=2.0") == emulator


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        "https://ussouthcentral.services.azureml.net/workspaces/ws1",
        "https://ussouthcentral.services.azureml.net/workspaces/ws1/webservices/abc/endpoints/e1",
        "https://management.azureml.net/workspaces/ws1",
    ],
)
def test_normalize_refuses_what_is_not_a_service_location(value):
    with pytest.raises(AzureMLConfigError):
        normalize_api_location(value)


def test_async_hooks_of_one_connection_share_its_settings_until_the_connection_changes(monkeypatch):
    """A thousand triggers of a connection hold one settings object; a new key is read by the next trigger."""
    set_connection(monkeypatch, CONN, conn_type="azureml_studio", host=BASE, password=API_KEY)

    async def read_three() -> tuple:
        first, second = AzureMLStudioAsyncHook(CONN), AzureMLStudioAsyncHook(CONN)
        one, two = await first.aget_settings(), await second.aget_settings()
        assert one is two, "equal settings are one object"
        assert await first.ahttp_settings() is await second.ahttp_settings(), "built once"
        assert one.bes_api is two.bes_api
        set_connection(monkeypatch, CONN, conn_type="azureml_studio", host=BASE, password="rotated-key")
        third = AzureMLStudioAsyncHook(CONN)
        return one, await first.ahttp_settings(), await third.ahttp_settings()

    before, first_http, rotated_http = asyncio.run(read_three())

    assert before.api_key == API_KEY
    assert first_http.headers["Authorization"] == f"Bearer {API_KEY}", "a running wait keeps what it read"
    assert rotated_http.headers["Authorization"] == "Bearer rotated-key", "the next wait reads the new key"
    assert rotated_http.secrets == ("rotated-key",)
