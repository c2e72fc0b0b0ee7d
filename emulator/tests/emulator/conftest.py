"""Fixtures for the emulator tests: a private Azurite, a seeded state directory, app clients."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator

AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
REPO = Path(__file__).resolve().parents[3]
AZURITE_CANDIDATES = (
    os.environ.get("AMLRETRAIN_AZURITE_BIN", ""),
    str(REPO / "node_modules" / ".bin" / "azurite-blob"),
    "/tmp/az/node_modules/.bin/azurite-blob",
)
SEED_START = "2026-11-01"
SEED_DAYS = 3


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    """Wait until something listens on ``127.0.0.1:port``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on port {port}")


def connection_string(port: int) -> str:
    """The Azurite connection string for a blob port."""
    return (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        f"AccountKey={AZURITE_KEY};BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1;"
    )


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private Azurite blob service; yields its connection string (skips if Azurite is absent)."""
    binary = next((c for c in AZURITE_CANDIDATES if c and os.access(c, os.X_OK)), None)
    if binary is None:
        pytest.skip("Azurite not found (set AMLRETRAIN_AZURITE_BIN or run npm install)")
    port = free_port()
    location = tmp_path_factory.mktemp("azurite")
    process = subprocess.Popen(
        [
            binary,
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(port),
            "--location",
            str(location),
            "--skipApiVersionCheck",
            "--silent",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        yield connection_string(port)
    finally:
        # Azurite waits for idle keep-alive connections on SIGTERM; its data is throwaway.
        process.kill()
        process.wait(timeout=10)


@pytest.fixture(scope="session")
def seeded(azurite: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A seeded state directory (never used directly by an app: tests copy it)."""
    import datetime as dt

    from amlretrain_emulator.seed import seed

    state_dir = tmp_path_factory.mktemp("seeded-state")
    document = seed(str(state_dir), azurite, days=SEED_DAYS, start_date=dt.date.fromisoformat(SEED_START))
    return {"state_dir": state_dir, "seed": document, "connection_string": azurite}


@pytest.fixture
def state_dir(seeded: dict[str, Any], tmp_path: Path) -> Path:
    """A private copy of the seeded state directory."""
    target = tmp_path / "state"
    shutil.copytree(seeded["state_dir"], target)
    return target


class Emulator:
    """A running emulator app (TestClient) plus helpers for BES calls."""

    def __init__(self, client: Any, seed: dict[str, Any], connection_string: str, state_dir: Path) -> None:
        self.client = client
        self.seed = seed
        self.cs = connection_string
        self.state_dir = state_dir
        self.closed = False

    def close(self) -> None:
        """Stop the app (its lifespan ends: workers stop, state stays on disk)."""
        if not self.closed:
            self.closed = True
            self.client.__exit__(None, None, None)

    def service(self, task: str = "binary", kind: str = "training") -> dict[str, Any]:
        """The seed entry of a service."""
        return next(s for s in self.seed["services"] if s["task"] == task and s["kind"] == kind)

    @staticmethod
    def headers(service: dict[str, Any]) -> dict[str, str]:
        """Authorization headers with the service's key."""
        return {"Authorization": f"Bearer {service['api_key']}"}

    def body(self, service: dict[str, Any], run: str, date_index: int = 0) -> dict[str, Any]:
        """A valid BES request reading a seeded partition and writing under ``runs/<run>/``."""
        return {
            "Inputs": {
                "input1": {
                    "ConnectionString": self.cs,
                    "RelativeLocation": service["blobs"][date_index]["relative_location"],
                }
            },
            "Outputs": {
                "output1": {"ConnectionString": self.cs, "RelativeLocation": f"runs/{run}/model.ilearner"},
                "output2": {"ConnectionString": self.cs, "RelativeLocation": f"runs/{run}/evaluation.csv"},
            },
            "GlobalParameters": {},
        }

    def sas_body(self, service: dict[str, Any], run: str) -> tuple[dict[str, Any], str, str]:
        """
        A valid BES request addressed by SAS instead of connection strings: the seeded partition read with a
        read-only ``training-data`` container SAS, the outputs written under ``runs/<run>/`` with a create+write
        ``runs`` container SAS (the container is created first if missing).

        :return: The body, the read token and the write token.
        """
        import datetime as dt

        from azure.storage.blob import BlobServiceClient, ContainerSasPermissions, generate_container_sas

        from amlretrain_emulator.storage import account_of

        name, key, base = account_of(self.cs)
        runs = BlobServiceClient.from_connection_string(self.cs).get_container_client("runs")
        if not runs.exists():  # a SAS cannot create its container: the account's owner does
            runs.create_container()
        expiry = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
        read = generate_container_sas(
            name,
            "training-data",
            account_key=key,
            permission=ContainerSasPermissions(read=True),
            expiry=expiry,
        )
        write = generate_container_sas(
            name,
            "runs",
            account_key=key,
            permission=ContainerSasPermissions(write=True, create=True),
            expiry=expiry,
        )
        body = {
            "Inputs": {
                "input1": {
                    "BaseLocation": base,
                    "RelativeLocation": service["blobs"][0]["relative_location"],
                    "SasBlobToken": "?" + read,
                }
            },
            "Outputs": {  # one token with its leading "?", one without: BES takes both
                "output1": {
                    "BaseLocation": base,
                    "RelativeLocation": f"runs/{run}/model.ilearner",
                    "SasBlobToken": "?" + write,
                },
                "output2": {
                    "BaseLocation": base,
                    "RelativeLocation": f"runs/{run}/evaluation.csv",
                    "SasBlobToken": write,
                },
            },
        }
        return body, read, write

    def url(self, service: dict[str, Any], suffix: str = "", api_version: str | None = "2.0") -> str:
        """A BES URL under the service's base."""
        query = f"?api-version={api_version}" if api_version else ""
        return f"{service['api_location']}{suffix}{query}"

    def submit(self, service: dict[str, Any], body: dict[str, Any]) -> str:
        """Submit a job and return its id."""
        answer = self.client.post(self.url(service, "/jobs"), json=body, headers=self.headers(service))
        assert answer.status_code == 200, answer.text
        return answer.json()

    def start(self, service: dict[str, Any], job_id: str) -> None:
        """Start a job."""
        answer = self.client.post(self.url(service, f"/jobs/{job_id}/start"), headers=self.headers(service))
        assert answer.status_code == 204, answer.text

    def status(self, service: dict[str, Any], job_id: str) -> dict[str, Any]:
        """The job status object."""
        answer = self.client.get(self.url(service, f"/jobs/{job_id}"), headers=self.headers(service))
        assert answer.status_code == 200, answer.text
        return answer.json()

    def wait(
        self,
        service: dict[str, Any],
        job_id: str,
        states: tuple[str, ...] = ("Finished", "Failed", "Cancelled"),
        timeout: float = 20.0,
    ) -> dict[str, Any]:
        """Poll until the job reaches one of ``states``."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.status(service, job_id)
            if status["StatusCode"] in states:
                return status
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {status['StatusCode']}")
            time.sleep(0.05)

    def run(self, service: dict[str, Any], body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """Submit, start and wait for a job."""
        job_id = self.submit(service, body)
        self.start(service, job_id)
        return job_id, self.wait(service, job_id)


@pytest.fixture
def make_emulator(seeded: dict[str, Any], state_dir: Path) -> Iterator[Any]:
    """Factory: ``make_emulator(**config_overrides)`` starts an app on the private state copy."""
    from fastapi.testclient import TestClient

    from amlretrain_emulator.app import create_app
    from amlretrain_emulator.config import EmulatorConfig

    started: list[Emulator] = []

    def _make(**overrides: Any) -> Emulator:
        settings: dict[str, Any] = {
            "state_dir": state_dir,
            "storage_connection_string": seeded["connection_string"],
            "min_job_seconds": 0.2,
        }
        settings.update(overrides)
        client = TestClient(create_app(EmulatorConfig(**settings)), raise_server_exceptions=False)
        client.__enter__()
        started.append(Emulator(client, seeded["seed"], seeded["connection_string"], state_dir))
        return started[-1]

    yield _make
    for emulator in started:
        emulator.close()


@pytest.fixture
def emulator(make_emulator: Any) -> Emulator:
    """An emulator with default test settings."""
    return make_emulator()


class LiveServer:
    """A real uvicorn server in a thread (for transport-level behaviour)."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.port = free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="critical")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LiveServer:
        self.thread.start()
        wait_for_port(self.port)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def live_server(seeded: dict[str, Any], state_dir: Path) -> Iterator[LiveServer]:
    """The emulator served by uvicorn on a free port."""
    from amlretrain_emulator.app import create_app
    from amlretrain_emulator.config import EmulatorConfig

    config = EmulatorConfig(
        state_dir=state_dir, storage_connection_string=seeded["connection_string"], min_job_seconds=0.2
    )
    with LiveServer(create_app(config)) as server:
        yield server


def blob_bytes(connection_string: str, relative_location: str) -> bytes | None:
    """Read a blob with the account key (``None`` if it does not exist)."""
    from azure.core.exceptions import ResourceNotFoundError
    from azure.storage.blob import BlobServiceClient

    container, _, name = relative_location.partition("/")
    client = BlobServiceClient.from_connection_string(connection_string).get_blob_client(container, name)
    try:
        return client.download_blob().readall()
    except ResourceNotFoundError:
        return None


@pytest.fixture
def blob_reader(seeded: dict[str, Any]) -> Any:
    """``blob_reader("container/path")`` reads a blob with the account key (``None`` if absent)."""
    return lambda relative_location: blob_bytes(seeded["connection_string"], relative_location)
