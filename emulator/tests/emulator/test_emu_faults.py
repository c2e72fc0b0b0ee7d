"""Fault injection: status rules, delays, dropped connections, failed jobs, the admin API."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests

from amlretrain_emulator.faults import FaultStore, fault_kind, validate_document


def _put_faults(emulator: Any, document: dict[str, Any]) -> dict[str, Any]:
    answer = emulator.client.put("/_emulator/faults", json=document)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_429_with_retry_after_counts_down(emulator: Any) -> None:
    service = emulator.service("binary")
    _put_faults(
        emulator,
        {"rules": [{"method": "POST", "path": "/jobs$", "status": 429, "retry_after": 3, "times": 2}]},
    )
    url, headers, body = (
        emulator.url(service, "/jobs"),
        emulator.headers(service),
        emulator.body(service, "f429"),
    )
    for _ in range(2):
        answer = emulator.client.post(url, json=body, headers=headers)
        assert answer.status_code == 429
        assert answer.headers["Retry-After"] == "3" and answer.headers["x-ms-request-id"]
        assert answer.json()["error"]["code"] == "TooManyRequests"
    assert emulator.client.post(url, json=body, headers=headers).status_code == 200
    assert emulator.client.get("/_emulator/faults").json()["rules"] == []


def test_rules_match_method_and_path(emulator: Any) -> None:
    service = emulator.service("binary")
    job_id = emulator.submit(service, emulator.body(service, "match"))
    _put_faults(emulator, {"rules": [{"method": "POST", "path": "/jobs$", "status": 503}]})
    # A GET of the job does not match; the permanent rule keeps hitting POST /jobs.
    assert emulator.status(service, job_id)["StatusCode"] == "NotStarted"
    for _ in range(3):
        answer = emulator.client.post(
            emulator.url(service, "/jobs"), json={}, headers=emulator.headers(service)
        )
        assert answer.status_code == 503 and answer.headers["Retry-After"] == "1"
    assert emulator.client.get("/_emulator/faults").json()["rules"][0]["status"] == 503
    _put_faults(emulator, {"rules": []})
    emulator.start(service, job_id)


def test_500_and_admin_paths_never_faulted(emulator: Any) -> None:
    service = emulator.service("binary")
    _put_faults(emulator, {"rules": [{"status": 500, "message": "injected boom"}]})
    answer = emulator.client.get(
        emulator.url(service, "/jobs/" + "0" * 32), headers=emulator.headers(service)
    )
    assert answer.status_code == 500 and answer.json() == {
        "error": {"code": "InternalError", "message": "injected boom"}
    }
    assert "Retry-After" not in answer.headers
    assert emulator.client.get("/_emulator/health").status_code == 200
    assert _put_faults(emulator, {})["rules"] == []
    assert (
        emulator.client.get(
            emulator.url(service, "/jobs/" + "0" * 32), headers=emulator.headers(service)
        ).status_code
        == 404
    )


def test_delay(emulator: Any) -> None:
    service = emulator.service("binary")
    job_id = emulator.submit(service, emulator.body(service, "delay"))
    _put_faults(emulator, {"rules": [{"delay_seconds": 0.5, "times": 1}]})
    began = time.monotonic()
    # A delay-only rule holds the request back, then lets the service answer it normally.
    assert emulator.status(service, job_id)["StatusCode"] == "NotStarted"
    assert time.monotonic() - began >= 0.5  # the injected delay itself (a lower bound only)
    # ``times: 1`` is consumed by that one request: no rule is left to delay the next one.
    assert emulator.client.get("/_emulator/faults").json()["rules"] == []
    assert emulator.status(service, job_id)["StatusCode"] == "NotStarted"

    # A delay combined with a status delays, then answers the injected error (once).
    _put_faults(emulator, {"rules": [{"delay_seconds": 0.2, "status": 503, "times": 1}]})
    url, headers = emulator.url(service, f"/jobs/{job_id}"), emulator.headers(service)
    began = time.monotonic()
    answer = emulator.client.get(url, headers=headers)
    assert time.monotonic() - began >= 0.2
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "1"
    assert answer.json()["error"]["code"] == "ServiceUnavailable"
    assert emulator.client.get("/_emulator/faults").json()["rules"] == []
    assert emulator.client.get(url, headers=headers).status_code == 200


def test_fail_jobs(emulator: Any) -> None:
    service = emulator.service("binary")
    _put_faults(emulator, {"fail_jobs": [{"service": service["name"], "times": 1}]})
    _, status = emulator.run(service, emulator.body(service, "fail1"))
    assert status == {
        "StatusCode": "Failed",
        "Results": None,
        "Details": "Module execution encountered an internal library error.",
    }
    _put_faults(emulator, {"fail_jobs": [{"service": service["service_id"], "details": "custom failure"}]})
    assert emulator.run(service, emulator.body(service, "fail2"))[1]["Details"] == "custom failure"
    other = emulator.service("regression")
    assert emulator.run(other, emulator.body(other, "fail3"))[1]["StatusCode"] == "Finished"


@pytest.mark.parametrize(
    "document",
    [
        [],
        {"rules": [{"status": 200}]},
        {"rules": [{"path": "("}]},
        {"rules": [{"status": 500, "times": 0}]},
        {"rules": [{"status": 500, "drop_connection": True}]},
        {"rules": [{"status": 500, "bogus": 1}]},
        {"fail_jobs": [{"details": "x"}]},
        {"unknown": 1},
    ],
)
def test_invalid_fault_documents(emulator: Any, document: Any) -> None:
    answer = emulator.client.put("/_emulator/faults", json=document)
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "BadArgument"
    with pytest.raises(ValueError):
        validate_document(document)


def test_faults_from_config(make_emulator: Any) -> None:
    emulator = make_emulator(faults={"rules": [{"status": 503, "times": 1}]})
    service = emulator.service("binary")
    assert (
        emulator.client.post(
            emulator.url(service, "/jobs"), json={}, headers=emulator.headers(service)
        ).status_code
        == 503
    )
    assert emulator.client.get("/_emulator/faults").json()["rules"] == []


def test_fault_store_counts_down() -> None:
    store = FaultStore({"rules": [{"path": "/a", "status": 500, "times": 2}]})
    assert store.take_rule("GET", "/b") is None
    assert store.take_rule("GET", "/x/a")["status"] == 500
    assert store.take_rule("POST", "/a")["times"] == 0
    assert store.take_rule("GET", "/a") is None


def test_drop_connection_breaks_the_exchange(live_server: Any, seeded: dict[str, Any]) -> None:
    service = next(s for s in seeded["seed"]["services"] if s["task"] == "binary")
    base = live_server.base_url + service["api_location"]
    headers = {"Authorization": f"Bearer {service['api_key']}"}
    requests.put(
        live_server.base_url + "/_emulator/faults",
        json={"rules": [{"method": "GET", "drop_connection": True, "times": 1}]},
        timeout=5,
    )
    with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError)):
        requests.get(f"{base}/jobs/{'0' * 32}?api-version=2.0", headers=headers, timeout=5)
    assert (
        requests.get(f"{base}/jobs/{'0' * 32}?api-version=2.0", headers=headers, timeout=5).status_code == 404
    )


def test_drop_connection_after_processing(live_server: Any, seeded: dict[str, Any]) -> None:
    service = next(s for s in seeded["seed"]["services"] if s["task"] == "binary")
    cs = seeded["connection_string"]
    body = {
        "Inputs": {
            "input1": {"ConnectionString": cs, "RelativeLocation": service["blobs"][0]["relative_location"]}
        },
        "Outputs": {
            "output1": {"ConnectionString": cs, "RelativeLocation": "runs/drop/model.ilearner"},
            "output2": {"ConnectionString": cs, "RelativeLocation": "runs/drop/evaluation.csv"},
        },
    }
    admin = live_server.base_url + "/_emulator"
    before = requests.get(admin + "/health", timeout=5).json()["jobs"].get("NotStarted", 0)
    requests.put(
        admin + "/faults",
        json={
            "rules": [
                {"method": "POST", "path": "/jobs$", "drop_connection": True, "when": "after", "times": 1}
            ]
        },
        timeout=5,
    )
    with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError)):
        requests.post(
            live_server.base_url + service["api_location"] + "/jobs?api-version=2.0",
            json=body,
            headers={"Authorization": f"Bearer {service['api_key']}"},
            timeout=5,
        )
    # The job was created although its id never reached the client.
    assert requests.get(admin + "/health", timeout=5).json()["jobs"].get("NotStarted", 0) == before + 1


def test_admin_refuses_remote_clients() -> None:
    from starlette.requests import Request

    from amlretrain_emulator.admin import require_loopback
    from amlretrain_emulator.errors import ApiError

    remote = Request(
        {"type": "http", "client": ("10.1.2.3", 5000), "headers": [], "method": "GET", "path": "/"}
    )
    with pytest.raises(ApiError) as caught:
        require_loopback(remote)
    assert caught.value.status == 403
    require_loopback(
        Request({"type": "http", "client": ("127.0.0.1", 5000), "headers": [], "method": "GET", "path": "/"})
    )


def test_admin_lists_jobs_without_secrets(emulator: Any) -> None:
    service = emulator.service("binary")
    job_id = emulator.submit(service, emulator.body(service, "listed"))
    answer = emulator.client.get("/_emulator/jobs")
    assert answer.status_code == 200
    jobs = answer.json()["jobs"]
    assert next(j for j in jobs if j["id"] == job_id)["status"] == "NotStarted"
    assert "AccountKey" not in answer.text and "request" not in jobs[0]


def test_probability_rules_fail_a_seeded_share_of_requests() -> None:
    document = {
        "random_seed": 7,
        "rules": [{"status": 503, "probability": 0.1}, {"drop_connection": True, "probability": 0.1}],
    }
    store = FaultStore(document)
    kinds = [fault_kind(rule) if (rule := store.take_rule("GET", "/x")) else None for _ in range(2000)]
    failed = [kind for kind in kinds if kind is not None]
    # Expected share 0.1 + 0.9 * 0.1 = 0.19; the seeded draws make the count exact from run to run.
    assert 0.15 < len(failed) / len(kinds) < 0.23
    assert set(failed) == {"status-503", "drop-before"}
    assert store.stats() == {
        "requests": 2000,
        "injected": {"drop-before": failed.count("drop-before"), "status-503": failed.count("status-503")},
    }
    again = FaultStore(document)
    assert [fault_kind(r) if (r := again.take_rule("GET", "/x")) else None for _ in range(2000)] == kinds
    store.set({"rules": []})
    assert store.stats() == {"requests": 0, "injected": {}}


@pytest.mark.parametrize("probability", [0, 1.5, True, "0.2"])
def test_probability_must_be_a_share(probability: Any) -> None:
    with pytest.raises(ValueError, match="probability must be a number in"):
        validate_document({"rules": [{"status": 503, "probability": probability}]})


def test_fault_stats_route(emulator: Any) -> None:
    service = emulator.service("binary")
    _put_faults(emulator, {"rules": [{"method": "POST", "path": "/jobs$", "status": 429, "times": 1}]})
    emulator.client.post(emulator.url(service, "/jobs"), json={}, headers=emulator.headers(service))
    emulator.client.get("/_emulator/health")
    assert emulator.client.get("/_emulator/fault-stats").json() == {
        "requests": 1,
        "injected": {"status-429": 1},
    }
