"""Integration tests: a real Azurite (and, when available, AML emulator) up/status/env/down cycle."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests
from azure.storage.blob import BlobServiceClient

from amlretrain_devstack import (
    ACCOUNT_KEY,
    load_stack,
    running_stack,
    stack_status,
    start_stack,
    stop_stack,
)
from amlretrain_devstack.procs import group_members, http_status

if TYPE_CHECKING:
    from devstack.conftest import RunCli

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("azurite_installed")]

AZURITE_KEYS = {"blob_endpoint", "account_name", "account_key", "connection_string", "port", "pid", "host"}


def _roundtrip_blob(connection_string: str) -> None:
    service = BlobServiceClient.from_connection_string(connection_string)
    container = service.create_container(f"devstack-{uuid.uuid4().hex[:12]}")
    payload = b"hello azurite \x00\xff" * 100
    container.upload_blob("dir/data.bin", payload)
    assert container.download_blob("dir/data.bin").readall() == payload
    assert [b.name for b in container.list_blobs()] == ["dir/data.bin"]


def _exports(text: str) -> dict[str, Any]:
    """The ``AIRFLOW_CONN_*`` exports, decoded; other variables (Variables, identity) as text."""
    env: dict[str, Any] = {}
    for line in text.splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        raw = shlex.split(value)[0]
        env[name] = json.loads(raw) if name.startswith("AIRFLOW_CONN_") else raw
    return env


def _assert_no_secrets(text: str, stack: dict[str, Any]) -> None:
    assert ACCOUNT_KEY not in text
    assert stack["azurite"]["connection_string"] not in text
    for service in (stack.get("seed") or {}).get("services") or []:
        if isinstance(service, dict) and service.get("api_key"):
            assert service["api_key"] not in text


def test_cli_cycle_azurite_only(stack_dir: Path, cli: RunCli) -> None:
    up = cli("up", "--dir", str(stack_dir), "--azurite-only")
    stack_json = stack_dir / "stack.json"
    assert stack_json.stat().st_mode & 0o777 == 0o600
    stack = load_stack(stack_json)
    _assert_no_secrets(up.stdout, stack)
    assert stack["status"] == "running"
    assert AZURITE_KEYS <= set(stack["azurite"])
    assert stack["azurite"]["account_name"] == "devstoreaccount1"
    assert stack["azurite"]["connection_string"].endswith(f":{stack['azurite']['port']}/devstoreaccount1;")
    pid = stack["azurite"]["pid"]
    assert group_members(pid)
    _roundtrip_blob(stack["azurite"]["connection_string"])

    again = cli("up", "--dir", str(stack_dir), "--azurite-only")
    assert "already running" in again.stdout
    assert load_stack(stack_json)["azurite"]["pid"] == pid

    assert "Azurite: up" in cli("status", "--dir", str(stack_dir)).stdout

    env = _exports(cli("env", "--dir", str(stack_dir)).stdout)
    assert set(env) == {"AIRFLOW_CONN_AZURITE_DEFAULT"}
    assert env["AIRFLOW_CONN_AZURITE_DEFAULT"]["conn_type"] == "wasb"
    _roundtrip_blob(env["AIRFLOW_CONN_AZURITE_DEFAULT"]["extra"]["connection_string"])

    assert "Stopped azurite" in cli("down", "--dir", str(stack_dir)).stdout
    assert group_members(pid) == []
    assert http_status(stack["azurite"]["blob_endpoint"] + "?comp=list", timeout=1) is None
    stopped = load_stack(stack_json)
    assert stopped["status"] == "stopped"
    assert stopped["azurite"]["pid"] is None
    assert cli("status", "--dir", str(stack_dir), check=False).returncode == 1
    assert "Nothing was running" in cli("down", "--dir", str(stack_dir)).stdout


def test_python_api_context_manager_and_restart_keeps_data(stack_dir: Path) -> None:
    with running_stack(stack_dir, with_emulator=False) as stack:
        assert stack.started
        pid = stack.info["azurite"]["pid"]
        client = BlobServiceClient.from_connection_string(stack.connection_string)
        client.create_container("kept").upload_blob("a.txt", b"persisted")
        reused = start_stack(stack_dir, with_emulator=False)
        assert not reused.started
        assert reused.info["azurite"]["pid"] == pid
        assert stack_status(stack_dir)["up"]
    assert group_members(pid) == []
    assert not stack_status(stack_dir)["up"]

    restarted = start_stack(stack_dir, with_emulator=False)
    try:
        assert restarted.started
        client = BlobServiceClient.from_connection_string(restarted.connection_string)
        assert client.get_container_client("kept").download_blob("a.txt").readall() == b"persisted"
    finally:
        assert stop_stack(restarted) == ["azurite"]
    assert group_members(restarted.info["azurite"]["pid"]) == []


def _fake_running_stack(stack_dir: Path, pid: int) -> None:
    """Record a "running" Azurite-only stack whose pid is ``pid`` (dead, or not Azurite)."""
    stack_dir.mkdir(parents=True)
    info = {
        "version": 1,
        "status": "running",
        "azurite": {
            "host": "127.0.0.1",
            "port": 9,
            "pid": pid,
            "connection_string": "x",
            "blob_endpoint": "x",
        },
        "emulator": None,
        "seed": None,
    }
    (stack_dir / "stack.json").write_text(json.dumps(info))


def test_dead_process_is_restarted(stack_dir: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    _fake_running_stack(stack_dir, dead.pid)
    assert not stack_status(stack_dir)["up"]
    stack = start_stack(stack_dir, with_emulator=False)
    try:
        assert stack.started
        assert stack.info["azurite"]["pid"] != dead.pid
        _roundtrip_blob(stack.connection_string)
    finally:
        stop_stack(stack)


def test_recycled_pid_is_never_signalled(stack_dir: Path) -> None:
    bystander = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True
    )
    try:
        _fake_running_stack(stack_dir, bystander.pid)  # as if the OS had reused the pid
        assert not stack_status(stack_dir)["azurite"]["alive"]
        assert stop_stack(stack_dir) == []
        assert bystander.poll() is None, "an unrelated process must not be killed"
        assert load_stack(stack_dir)["status"] == "stopped"
    finally:
        bystander.kill()
        bystander.wait()


def test_cli_cycle_with_emulator(stack_dir: Path, tmp_path: Path, cli: RunCli) -> None:
    faults = tmp_path / "faults.json"
    faults.write_text(json.dumps({"min_job_seconds": 0}))
    up = cli("up", "--dir", str(stack_dir), "--fault-config", str(faults))
    try:
        stack = load_stack(stack_dir / "stack.json")
        _assert_no_secrets(up.stdout, stack)
        emulator = stack["emulator"]
        assert {"url", "port", "pid", "state_dir"} <= set(emulator)
        assert http_status(emulator["url"] + "/_emulator/health") == 200
        assert stack["seed"], "the seed output must be recorded"
        config = json.loads(Path(emulator["config_file"]).read_text())
        assert config["min_job_seconds"] == 0
        assert config["storage_connection_string"] == stack["azurite"]["connection_string"]

        token = requests.get(
            emulator["msi_endpoint"],
            params={"api-version": "2019-08-01", "resource": "https://management.azure.com/"},
            headers={"X-IDENTITY-HEADER": emulator["identity_header"]},
            timeout=10,
        )
        # The dev stack generates an identity_header for the emulator, which enables its
        # managed-identity endpoint: the header it records must be accepted and a bearer
        # token for the requested resource issued.
        assert token.status_code == 200, token.text
        body = token.json()
        assert body["token_type"] == "Bearer"
        assert body["resource"] == "https://management.azure.com/"
        assert body["access_token"].count(".") == 2
        assert int(body["expires_on"]) > 0
        wrong = requests.get(
            emulator["msi_endpoint"],
            params={"api-version": "2019-08-01", "resource": "https://management.azure.com/"},
            headers={"X-IDENTITY-HEADER": emulator["identity_header"] + "-wrong"},
            timeout=10,
        )
        assert wrong.status_code == 401, wrong.text

        again = cli("up", "--dir", str(stack_dir), "--fault-config", str(faults))
        assert "already running" in again.stdout

        env = _exports(cli("env", "--dir", str(stack_dir)).stdout)
        studio = {
            k: v
            for k, v in env.items()
            if k.startswith("AIRFLOW_CONN_") and v["conn_type"] == "azureml_studio"
        }
        assert studio, f"no azureml_studio connection built from seed: {stack['seed']}"
        for conn in studio.values():
            assert conn["host"].startswith(emulator["url"] + "/")
            assert conn["password"]
        assert "AIRFLOW_CONN_AZUREML_TRAIN_BINARY" in env
        assert "AIRFLOW_CONN_AZUREML_TRAIN_REGRESSION" in env
        assert env["AIRFLOW_CONN_AZUREML_MANAGEMENT"]["conn_type"] == "azureml_classic_management"
        assert env["AIRFLOW_CONN_AZUREML_ARM"]["conn_type"] == "azureml_web_services"
        assert env["IDENTITY_ENDPOINT"] == emulator["msi_endpoint"]
    finally:
        cli("down", "--dir", str(stack_dir))
    assert group_members(stack["emulator"]["pid"]) == []
    assert group_members(stack["azurite"]["pid"]) == []


def test_a_killed_and_restarted_emulator_keeps_its_jobs_and_finishes_a_running_one(stack_dir: Path) -> None:
    from amlretrain_devstack import restart_emulator

    with running_stack(stack_dir) as stack:
        # Long enough to crash the emulator mid-job; the restart forgets it, the job then starts over, short.
        requests.put(f"{stack.emulator_url}/_emulator/faults", json={"job_seconds": 30}, timeout=10)
        service = next(s for s in stack.seed["services"] if s["kind"] == "training")
        base = f"{stack.emulator_url}{service['api_location']}"
        headers = {"Authorization": f"Bearer {service['api_key']}"}
        body = {
            "Inputs": {
                "input1": {
                    "ConnectionString": stack.connection_string,
                    "RelativeLocation": service["blobs"][0]["relative_location"],
                }
            },
            "Outputs": {
                port: {"ConnectionString": stack.connection_string, "RelativeLocation": f"runs/crash/{name}"}
                for port, name in (("output1", "model.ilearner"), ("output2", "evaluation.csv"))
            },
            "GlobalParameters": {},
        }
        job_id = requests.post(f"{base}/jobs?api-version=2.0", json=body, headers=headers, timeout=30).json()
        started = requests.post(f"{base}/jobs/{job_id}/start?api-version=2.0", headers=headers, timeout=30)
        assert started.status_code in (200, 204), started.text

        def status() -> str:
            answer = requests.get(f"{base}/jobs/{job_id}?api-version=2.0", headers=headers, timeout=30)
            return str(answer.json()["StatusCode"])

        deadline = time.monotonic() + 30
        while status() != "Running":
            assert time.monotonic() < deadline, "the job never ran"
            time.sleep(0.2)
        pid, url = stack.info["emulator"]["pid"], stack.emulator_url

        restart_emulator(stack)

        assert group_members(pid) == [], "the old emulator survived"
        assert stack.emulator_url == url and stack.info["emulator"]["pid"] != pid
        assert load_stack(stack_dir)["emulator"]["pid"] == stack.info["emulator"]["pid"]
        deadline = time.monotonic() + 60
        while (now := status()) != "Finished":
            assert now == "Running" and time.monotonic() < deadline, f"the job is {now} after the restart"
            time.sleep(0.2)
        jobs = requests.get(f"{url}/_emulator/jobs", timeout=10).json()["jobs"]
        assert [job["id"] for job in jobs] == [job_id]
    assert group_members(stack.info["emulator"]["pid"]) == [], "stopping the stack stops the new emulator"
