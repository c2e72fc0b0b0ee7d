"""Shared test data and helpers: constants, BES answers, and one face for the two hook transports."""

from __future__ import annotations

import asyncio
import json
from typing import Any

API_KEY = "s3cr3t-api-key"
BASE = "https://ussouthcentral.services.azureml.net/workspaces/ws1/services/svc1"
CONN_ID = "azureml_test"
JOB_ID = "0123456789abcdef0123456789abcdef"
JOBS_URL = f"{BASE}/jobs?api-version=2.0"
ACCOUNT_KEY = "c3RvcmFnZS1hY2NvdW50LWtleQ=="
SAS_SIG = "SIGabc123secretXYZ"
SAS_TOKEN = f"?sv=2020-08-04&sr=b&sig={SAS_SIG}&se=2030-01-01&sp=r"


def job_url(job_id: str = JOB_ID, suffix: str = "") -> str:
    """The BES URL of one job (``suffix`` e.g. ``/start``), with its api-version."""
    return f"{BASE}/jobs/{job_id}{suffix}?api-version=2.0"


def status_body(status: Any, *, details: str | None = None, results: dict | None = None) -> dict[str, Any]:
    """A BES job status answer."""
    body: dict[str, Any] = {"StatusCode": status, "Results": results, "Details": details}
    return body


def finished_results(sig: str = SAS_SIG) -> dict[str, Any]:
    """``Results`` of a finished job: a model and an evaluation CSV, each with a read SAS."""
    return {
        "output1": {
            "ConnectionString": None,
            "BaseLocation": "https://acct.blob.core.windows.net/",
            "RelativeLocation": "models/runs/x/model.ilearner",
            "SasBlobToken": f"?sv=2020-08-04&sr=b&sig={sig}&se=2030-01-01&sp=r",
        },
        "output2": {
            "ConnectionString": None,
            "BaseLocation": "https://acct.blob.core.windows.net/",
            "RelativeLocation": "models/runs/x/evaluation.csv",
            "SasBlobToken": f"?sv=2020-08-04&sr=b&sig={sig}&se=2030-01-01&sp=r",
        },
    }


def set_connection(monkeypatch: Any, conn_id: str, **fields: Any) -> None:
    """Define an Airflow connection through its ``AIRFLOW_CONN_<ID>`` environment variable (JSON form)."""
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(fields))


_UNSET = object()


class SyncTransport:
    """The requests hook behind ``responses``."""

    kind = "sync"

    def __init__(self, hook: Any, rsps: Any) -> None:
        self.hook = hook
        self.rsps = rsps

    def add(
        self,
        method: str,
        url: str,
        *,
        status: int = 200,
        json_body: Any = _UNSET,
        body: str | None = None,
        headers: dict[str, str] | None = None,
        exc: BaseException | None = None,
    ) -> None:
        """Register one answer (or one transport failure) for ``method url``."""
        if exc is not None:
            self.rsps.add(method, url, body=exc)
            return
        kwargs: dict[str, Any] = {"status": status, "headers": headers}
        if json_body is not _UNSET:
            kwargs["json"] = json_body
        else:
            kwargs["body"] = body or ""
        self.rsps.add(method, url, **kwargs)

    @staticmethod
    def connection_error(message: str = "Connection refused") -> BaseException:
        import requests

        return requests.ConnectionError(message)

    @staticmethod
    def timeout_error() -> BaseException:
        import requests

        return requests.Timeout("Read timed out")

    def run(self, name: str, *args: Any) -> Any:
        """Call ``hook.<name>`` (``call``, ``get_job``, ``cancel_job``)."""
        return getattr(self.hook, name)(*args)

    def sent(self) -> list[dict[str, Any]]:
        """Every request sent, in order."""
        out = []
        for call in self.rsps.calls:
            req = call.request
            out.append(
                {
                    "method": req.method,
                    "url": req.url,
                    "headers": dict(req.headers),
                    "json": json.loads(req.body) if req.body else None,
                }
            )
        return out


class AsyncTransport:
    """The aiohttp hook behind ``aioresponses``."""

    kind = "async"

    def __init__(self, hook: Any, aio: Any) -> None:
        self.hook = hook
        self.aio = aio

    def add(
        self,
        method: str,
        url: str,
        *,
        status: int = 200,
        json_body: Any = _UNSET,
        body: str | None = None,
        headers: dict[str, str] | None = None,
        exc: BaseException | None = None,
    ) -> None:
        if exc is not None:
            self.aio.add(url, method=method, exception=exc)
            return
        text = json.dumps(json_body) if json_body is not _UNSET else (body or "")
        self.aio.add(url, method=method, status=status, body=text, headers=headers)

    @staticmethod
    def connection_error(message: str = "Connection refused") -> BaseException:
        import aiohttp

        return aiohttp.ClientConnectionError(message)

    @staticmethod
    def timeout_error() -> BaseException:
        return TimeoutError()

    def run(self, name: str, *args: Any) -> Any:
        """Run ``hook.a<name>`` to completion on a fresh event loop."""
        return asyncio.run(getattr(self.hook, f"a{name}")(*args))

    def sent(self) -> list[dict[str, Any]]:
        out = []
        for (method, url), calls in self.aio.requests.items():
            for call in calls:
                out.append(
                    {
                        "method": method,
                        "url": str(url),
                        "headers": dict(call.kwargs.get("headers") or {}),
                        "json": _sent_json(call.kwargs.get("data")),
                    }
                )
        return out


def _sent_json(data: Any) -> Any:
    """The JSON body azure-core's aiohttp transport sent (as bytes), decoded; ``None`` without a body."""
    if not data:
        return None
    return json.loads(data.decode("utf-8") if isinstance(data, bytes) else data)


class FakeBlobService:
    """
    The storage client ``hooks.blob_storage.blob_service_client`` makes, in memory: each blob's text comes from
    ``read(container, blob)`` and its properties from ``properties(container, blob)`` (either may raise, as the
    storage SDK does).
    """

    def __init__(self, read: Any = None, properties: Any = None) -> None:
        self.read = read
        self.properties = properties

    def get_blob_client(self, container: str, blob: str) -> Any:
        """One blob of the fake account."""
        from types import SimpleNamespace

        service = self

        class Download:
            def content_as_text(self) -> str:
                return str(service.read(container, blob))

        return SimpleNamespace(
            download_blob=lambda: Download(),
            get_blob_properties=lambda: service.properties(container, blob),
        )


def serve_blobs(monkeypatch: Any, service: FakeBlobService) -> FakeBlobService:
    """Make every ``wasb`` connection's storage client ``service`` (no storage account, no connection read)."""
    from airflow_provider_amlretrain.hooks import blob_storage

    monkeypatch.setattr(blob_storage, "blob_service_client", lambda wasb_conn_id: service)
    return service
