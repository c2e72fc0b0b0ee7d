"""The storage client of a ``wasb`` connection: what ``WasbHook.get_conn`` builds, without its module when it can."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_provider_amlretrain.hooks.blob_storage import AZURE_HTTP_LOGGER, blob_service_client
from tests.unit.support import ACCOUNT_KEY, set_connection

REPO_ROOT = Path(__file__).resolve().parents[2]
CONNECTION_STRING = f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={ACCOUNT_KEY};EndpointSuffix=core.windows.net"


def _same_client(conn_id: str) -> tuple[object, object]:
    from airflow.providers.microsoft.azure.hooks.wasb import WasbHook

    return blob_service_client(conn_id), WasbHook(wasb_conn_id=conn_id).get_conn()


def _describe(client: object) -> dict[str, object]:
    credential = getattr(client, "credential", None)
    return {
        "type": type(client).__name__,
        "url": getattr(client, "url", None),
        "account_name": getattr(client, "account_name", None),
        "account_key": getattr(credential, "account_key", None),
        "signature": getattr(credential, "signature", None),
        "credential": type(credential).__name__,
    }


@pytest.mark.parametrize(
    "extra",
    [
        {"connection_string": CONNECTION_STRING},
        {"extra__wasb__connection_string": CONNECTION_STRING},
        {"connection_string": CONNECTION_STRING, "client_secret_auth_config": {"authority": "x"}},
    ],
    ids=["connection_string", "prefixed", "with_auth_config"],
)
def test_a_connection_string_gives_the_client_wasb_hook_gives(monkeypatch, extra):
    set_connection(monkeypatch, "blob_cs", conn_type="wasb", extra=extra)

    ours, theirs = _same_client("blob_cs")

    assert _describe(ours) == _describe(theirs)
    assert _describe(ours)["account_key"] == ACCOUNT_KEY


@pytest.mark.parametrize(
    "fields",
    [
        {"login": "acct", "extra": {"shared_access_key": ACCOUNT_KEY}},
        {"host": "https://acct.blob.core.windows.net/", "extra": {"sas_token": "sv=2024&sig=abc"}},
        {"login": "acct", "extra": {"connection_string": ""}, "password": ACCOUNT_KEY},
    ],
    ids=["shared_access_key", "sas_token", "empty_connection_string"],
)
def test_every_other_form_is_wasb_hooks_own(monkeypatch, fields):
    set_connection(monkeypatch, "blob_other", conn_type="wasb", **fields)

    ours, theirs = _same_client("blob_other")

    assert _describe(ours) == _describe(theirs)


def test_the_sdk_request_log_is_quietened_as_wasb_hook_does(monkeypatch):
    set_connection(monkeypatch, "blob_cs", conn_type="wasb", extra={"connection_string": CONNECTION_STRING})
    logger = logging.getLogger(AZURE_HTTP_LOGGER)
    monkeypatch.setattr(logger, "level", logging.NOTSET)

    blob_service_client("blob_cs")

    assert logger.level == logging.WARNING


SCRIPT = """
import json, sys
import airflow.sdk
from airflow_provider_amlretrain.hooks.blob_storage import blob_service_client
blob_service_client("blob_cs").get_blob_client("c", "b")
print(json.dumps(sorted(m for m in sys.argv[1:] if m in sys.modules)))
"""


def test_a_connection_string_loads_neither_wasb_hook_nor_azure_identity():
    heavy = [
        "airflow.providers.microsoft.azure.hooks.wasb",
        "azure.identity",
        "msrest",
        "azure.storage.blob.aio",
    ]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p),
        "AIRFLOW_CONN_BLOB_CS": json.dumps(
            {"conn_type": "wasb", "extra": {"connection_string": CONNECTION_STRING}}
        ),
    }
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, *heavy],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
