"""BES routes: happy paths, SAS results, errors, cancel, failures, queueing, restart."""

from __future__ import annotations

import csv
import datetime as dt
import io
import itertools
import re
import time
from typing import Any

import pytest
import requests

from amlretrain_emulator.scoring import load_model
from amlretrain_emulator.training import BINARY_COLUMNS, REGRESSION_COLUMNS

HEX32 = re.compile(r"^[0-9a-f]{32}$")


def _read_result(result: dict[str, Any]) -> bytes:
    url = result["BaseLocation"] + result["RelativeLocation"] + result["SasBlobToken"]
    answer = requests.get(url, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.content


def _assert_error(answer: Any, status: int) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers.get("x-ms-request-id")
    body = answer.json()
    assert set(body) == {"error"} and isinstance(body["error"]["code"], str) and body["error"]["message"]
    return body["error"]


def test_submit_start_poll_finished_binary(emulator: Any) -> None:
    service = emulator.service("binary")
    job_id = emulator.submit(service, emulator.body(service, "happy-binary"))
    assert HEX32.match(job_id)
    assert emulator.status(service, job_id) == {"StatusCode": "NotStarted", "Results": None, "Details": None}
    emulator.start(service, job_id)
    status = emulator.wait(service, job_id)
    assert status["StatusCode"] == "Finished", status
    assert set(status["Results"]) == {"output1", "output2"}
    model_ref = status["Results"]["output1"]
    assert model_ref["ConnectionString"] is None
    assert model_ref["RelativeLocation"] == "runs/happy-binary/model.ilearner"
    assert model_ref["BaseLocation"].endswith("/devstoreaccount1/")
    assert "sp=r" in model_ref["SasBlobToken"] and model_ref["SasBlobToken"].startswith("?")
    model = load_model(_read_result(model_ref))
    assert model["task"] == "binary" and model["label"] == "label" and model["classes"] == [0, 1]
    assert len(model["feature_names"]) == 30 and model["job_id"] == job_id
    rows = list(csv.reader(io.StringIO(_read_result(status["Results"]["output2"]).decode())))
    assert rows[0] == list(BINARY_COLUMNS) and len(rows) == 2
    metrics = dict(zip(rows[0], rows[1], strict=True))
    assert 0.8 < float(metrics["Accuracy"]) <= 1.0 and 0.8 < float(metrics["AUC"]) <= 1.0


def test_regression_from_data_uri_without_inputs(emulator: Any) -> None:
    service = emulator.service("regression")
    uri = emulator.seed["storage"]["blob_endpoint"] + service["blobs"][1]["relative_location"]
    body = emulator.body(service, "data-uri")
    del body["Inputs"]
    body["GlobalParameters"] = {"Data URI": uri}
    body["AzureBatchPoolId"] = "pool-1"
    _, status = emulator.run(service, body)
    assert status["StatusCode"] == "Finished", status
    rows = list(csv.reader(io.StringIO(_read_result(status["Results"]["output2"]).decode())))
    assert rows[0] == list(REGRESSION_COLUMNS) and len(rows) == 2
    assert load_model(_read_result(status["Results"]["output1"]))["task"] == "regression"


def test_sas_addressed_input_and_outputs(emulator: Any) -> None:
    service = emulator.service("binary")
    body, _, write = emulator.sas_body(service, "sas")
    _, status = emulator.run(service, body)
    assert status["StatusCode"] == "Finished", status
    # The results carry a fresh read-only blob SAS, not the caller's write token.
    assert status["Results"]["output1"]["SasBlobToken"] != "?" + write
    assert load_model(_read_result(status["Results"]["output1"]))["task"] == "binary"


def test_result_sas_is_read_only_and_expires(make_emulator: Any) -> None:
    emulator = make_emulator(sas_ttl_seconds=2)
    service = emulator.service("binary")
    job_id, status = emulator.run(service, emulator.body(service, "sas-ttl"))
    result = status["Results"]["output2"]
    url = result["BaseLocation"] + result["RelativeLocation"] + result["SasBlobToken"]
    assert requests.get(url, timeout=10).status_code == 200
    write = requests.put(url, data=b"x", headers={"x-ms-blob-type": "BlockBlob"}, timeout=10)
    assert write.status_code == 403
    time.sleep(3)
    assert requests.get(url, timeout=10).status_code == 403
    # Re-reading the job hands out a fresh, working token.
    assert _read_result(emulator.status(service, job_id)["Results"]["output2"]).startswith(b"True Positive,")


def test_auth_errors(emulator: Any) -> None:
    service, other = emulator.service("binary"), emulator.service("regression")
    url = emulator.url(service, "/jobs")
    body = emulator.body(service, "auth")
    assert _assert_error(emulator.client.post(url, json=body), 401)["code"] == "Unauthorized"
    _assert_error(emulator.client.post(url, json=body, headers={"Authorization": "Bearer wrong"}), 401)
    _assert_error(emulator.client.post(url, json=body, headers={"Authorization": service["api_key"]}), 401)
    _assert_error(emulator.client.post(url, json=body, headers=emulator.headers(other)), 401)
    # The secondary key works too.
    answer = emulator.client.post(
        url, json=body, headers={"Authorization": f"Bearer {service['secondary_key']}"}
    )
    assert answer.status_code == 200 and answer.headers["x-ms-request-id"]


def test_not_found_errors(emulator: Any) -> None:
    service = emulator.service("binary")
    headers = emulator.headers(service)
    workspace, service_id = emulator.seed["workspace_id"], service["service_id"]
    unknown = "0" * 32
    _assert_error(
        emulator.client.get(
            f"/workspaces/{unknown}/services/{service_id}/jobs/{unknown}?api-version=2.0", headers=headers
        ),
        404,
    )
    _assert_error(
        emulator.client.get(
            f"/workspaces/{workspace}/services/{unknown}/jobs/{unknown}?api-version=2.0", headers=headers
        ),
        404,
    )
    error = _assert_error(
        emulator.client.get(emulator.url(service, f"/jobs/{unknown}"), headers=headers), 404
    )
    assert error["code"] == "JobNotFound"
    _assert_error(emulator.client.post(emulator.url(service, f"/jobs/{unknown}/start"), headers=headers), 404)
    _assert_error(emulator.client.delete(emulator.url(service, f"/jobs/{unknown}"), headers=headers), 404)
    _assert_error(emulator.client.get("/no/such/path"), 404)
    # A job is only visible through the service it was submitted to.
    job_id = emulator.submit(service, emulator.body(service, "nf"))
    other = emulator.service("regression")
    _assert_error(
        emulator.client.get(emulator.url(other, f"/jobs/{job_id}"), headers=emulator.headers(other)), 404
    )


@pytest.mark.parametrize("version", [None, "1.0", "2.0-preview"])
def test_api_version_required(emulator: Any, version: str | None) -> None:
    service = emulator.service("binary")
    url = emulator.url(service, "/jobs", api_version=version)
    error = _assert_error(
        emulator.client.post(url, json=emulator.body(service, "v"), headers=emulator.headers(service)), 400
    )
    assert "api-version" in error["message"]


def _without(body: dict[str, Any], *path: str) -> dict[str, Any]:
    target = body
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return body


BAD_BODIES = {
    "missing output": (lambda b: _without(b, "Outputs", "output2"), "output2"),
    "unknown output (case)": (
        lambda b: {**b, "Outputs": {**b["Outputs"], "Output1": b["Outputs"]["output1"]}},
        "Output1",
    ),
    "unknown input": (lambda b: {**b, "Inputs": {"input2": b["Inputs"]["input1"]}}, "input2"),
    "model not ilearner": (
        lambda b: (b["Outputs"]["output1"].update(RelativeLocation="runs/x/model.csv"), b)[1],
        ".ilearner",
    ),
    "evaluation not csv": (
        lambda b: (b["Outputs"]["output2"].update(RelativeLocation="runs/x/eval.txt"), b)[1],
        ".csv",
    ),
    "no relative location": (
        lambda b: _without(b, "Outputs", "output1", "RelativeLocation"),
        "RelativeLocation",
    ),
    "no credentials": (lambda b: _without(b, "Inputs", "input1", "ConnectionString"), "ConnectionString"),
    "sas without base": (
        lambda b: (
            b["Inputs"]["input1"].pop("ConnectionString"),
            b["Inputs"]["input1"].update(SasBlobToken="?sv=1&sig=x"),
            b,
        )[2],
        "BaseLocation",
    ),
    "unknown global parameter": (lambda b: {**b, "GlobalParameters": {"Data Uri": "x"}}, "Data Uri"),
    "no input at all": (lambda b: _without(b, "Inputs"), "input1"),
    "unknown top-level key": (lambda b: {**b, "outputs": {}}, "outputs"),
    "bad connection string": (
        lambda b: (b["Inputs"]["input1"].update(ConnectionString="nonsense"), b)[1],
        "ConnectionString",
    ),
    "relative location without blob": (
        lambda b: (b["Outputs"]["output2"].update(RelativeLocation="runs"), b)[1],
        "container/blob",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_BODIES))
def test_bad_bodies(emulator: Any, case: str) -> None:
    service = emulator.service("binary")
    change, expected = BAD_BODIES[case]
    body = change(emulator.body(service, "bad"))
    error = _assert_error(
        emulator.client.post(emulator.url(service, "/jobs"), json=body, headers=emulator.headers(service)),
        400,
    )
    assert expected in error["message"], error
    assert "AccountKey" not in error["message"] and "sig=x" not in error["message"]


def test_non_json_body(emulator: Any) -> None:
    service = emulator.service("binary")
    headers = {**emulator.headers(service), "Content-Type": "application/json"}
    error = _assert_error(
        emulator.client.post(emulator.url(service, "/jobs"), content=b"{not json", headers=headers), 400
    )
    assert "JSON" in error["message"]
    error = _assert_error(
        emulator.client.post(emulator.url(service, "/jobs"), content=b"[]", headers=headers), 400
    )
    assert "object" in error["message"]


def test_start_of_a_started_job_is_cannot_start_job_and_changes_nothing(make_emulator: Any) -> None:
    emulator = make_emulator(job_concurrency=1, faults={"job_seconds": 30})
    service = emulator.service("binary")
    url = lambda job: emulator.url(service, f"/jobs/{job}/start")  # noqa: E731
    running = emulator.submit(service, emulator.body(service, "idem"))
    emulator.start(service, running)
    emulator.wait(service, running, states=("Running",), timeout=60)
    queued = emulator.submit(service, emulator.body(service, "idem-queued"))
    emulator.start(service, queued)  # waits behind the running job (one worker)

    error = _assert_error(emulator.client.post(url(running), headers=emulator.headers(service)), 400)
    assert error["code"] == "CannotStartJob"
    assert error["message"] == "The job cannot be started because it is in Running state."
    error = _assert_error(emulator.client.post(url(queued), headers=emulator.headers(service)), 400)
    assert error["code"] == "CannotStartJob" and "queue" in error["message"]
    assert emulator.status(service, running)["StatusCode"] == "Running"
    jobs = emulator.client.get("/_emulator/jobs").json()["jobs"]
    assert sum(job["started_at"] is not None for job in jobs if job["id"] in (running, queued)) == 1


def test_cancel_running_job_writes_no_outputs(make_emulator: Any, blob_reader: Any) -> None:
    # One worker, and a job long enough to be cancelled while it runs (it never gets to end).
    emulator = make_emulator(job_concurrency=1, faults={"job_seconds": 120})
    service = emulator.service("binary")
    job_id = emulator.submit(service, emulator.body(service, "cancelled"))
    emulator.start(service, job_id)
    emulator.wait(service, job_id, states=("Running",), timeout=60)
    answer = emulator.client.delete(
        emulator.url(service, f"/jobs/{job_id}"), headers=emulator.headers(service)
    )
    assert answer.status_code == 204
    status = emulator.status(service, job_id)
    assert status["StatusCode"] == "Cancelled" and status["Results"] is None
    # The single worker takes the next job only once it has let go of the cancelled one, so
    # when that job has finished the cancelled job's worker is done: it must not have written.
    assert emulator.client.put("/_emulator/faults", json={"job_seconds": 0}).status_code == 200
    following = emulator.submit(service, emulator.body(service, "after-cancel"))
    emulator.start(service, following)
    after = emulator.wait(service, following, timeout=60)
    assert after["StatusCode"] == "Finished", after
    assert emulator.status(service, job_id)["StatusCode"] == "Cancelled"
    assert blob_reader("runs/cancelled/model.ilearner") is None
    assert blob_reader("runs/cancelled/evaluation.csv") is None
    assert blob_reader("runs/after-cancel/evaluation.csv") is not None


def test_cancel_not_started_and_delete_ended(emulator: Any) -> None:
    service = emulator.service("binary")
    headers = emulator.headers(service)
    job_id = emulator.submit(service, emulator.body(service, "never"))
    assert (
        emulator.client.delete(emulator.url(service, f"/jobs/{job_id}"), headers=headers).status_code == 204
    )
    refused = _assert_error(
        emulator.client.post(emulator.url(service, f"/jobs/{job_id}/start"), headers=headers), 400
    )
    assert refused["code"] == "CannotStartJob" and "in Cancelled state" in refused["message"], refused
    assert emulator.status(service, job_id)["StatusCode"] == "Cancelled"
    done, status = emulator.run(service, emulator.body(service, "ended"))
    assert status["StatusCode"] == "Finished"
    assert emulator.client.delete(emulator.url(service, f"/jobs/{done}"), headers=headers).status_code == 204
    assert emulator.status(service, done)["StatusCode"] == "Finished"


def _upload(emulator: Any, relative_location: str, data: bytes) -> None:
    from amlretrain_emulator.storage import service_client

    container, _, name = relative_location.partition("/")
    service_client(emulator.cs).get_container_client(container).upload_blob(name, data, overwrite=True)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "does not exist"),
        (b"1,2,3\n4,5,6\n", "no header row"),
        (b"a,b,c\n1,2,3\n", "no label column 'label'"),
        (b"a,label\n" + b"x,1\n" * 30, "non-numeric"),
        (b"", "empty"),
    ],
)
def test_failed_job_details(emulator: Any, content: bytes | None, expected: str) -> None:
    service = emulator.service("binary")
    location = f"training-data/broken/{abs(hash(expected))}.csv"
    if content is not None:
        _upload(emulator, location, content)
    body = emulator.body(service, "failed")
    body["Inputs"]["input1"]["RelativeLocation"] = location
    _, status = emulator.run(service, body)
    assert status["StatusCode"] == "Failed" and status["Results"] is None
    assert expected in status["Details"], status["Details"]
    assert "AccountKey" not in status["Details"] and "sig=" not in status["Details"]


def test_fifo_queue_respects_concurrency(make_emulator: Any) -> None:
    """One worker runs started jobs one at a time, in the order they were started.

    Checked on the emulator's own job records (``started_at``/``ended_at``), not on how fast
    the test polls: each job starts only after the previous one ended, and the run order is
    the start order (deliberately not the submit order).
    """
    emulator = make_emulator(job_concurrency=1, faults={"job_seconds": 0.2})
    service = emulator.service("binary")
    submitted = [emulator.submit(service, emulator.body(service, f"q{n}")) for n in range(3)]
    start_order = [submitted[2], submitted[0], submitted[1]]
    for job_id in start_order:
        emulator.start(service, job_id)
    for job_id in start_order:
        assert emulator.wait(service, job_id, timeout=60)["StatusCode"] == "Finished"

    jobs = {job["id"]: job for job in emulator.client.get("/_emulator/jobs").json()["jobs"]}

    def at(job_id: str, key: str) -> dt.datetime:
        value = jobs[job_id][key]
        assert value, (job_id, key, jobs[job_id])
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))

    assert sorted(start_order, key=lambda j: at(j, "start_requested_at")) == start_order
    assert sorted(start_order, key=lambda j: at(j, "started_at")) == start_order
    for earlier, later in itertools.pairwise(start_order):
        # Never two jobs in flight: the next one was taken only after the previous one ended.
        assert at(later, "started_at") >= at(earlier, "ended_at"), (jobs[earlier], jobs[later])


def test_integer_status_codes(make_emulator: Any) -> None:
    emulator = make_emulator(faults={"integer_status_codes": True})
    service = emulator.service("binary")
    job_id = emulator.submit(service, emulator.body(service, "ints"))
    assert emulator.status(service, job_id)["StatusCode"] == 0
    emulator.start(service, job_id)
    assert emulator.wait(service, job_id, states=(4, 2))["StatusCode"] == 4


def test_state_survives_restart(make_emulator: Any) -> None:
    first = make_emulator(faults={"job_seconds": 30})
    service = first.service("binary")
    job_id = first.submit(service, first.body(service, "restart"))
    first.start(service, job_id)
    first.wait(service, job_id, states=("Running",))
    idle = first.submit(service, first.body(service, "restart-idle"))
    first.close()  # stop the emulator with the job running

    second = make_emulator()
    assert second.status(service, idle)["StatusCode"] == "NotStarted"  # keys and jobs persisted
    status = second.wait(service, job_id)
    assert status["StatusCode"] == "Finished", status
    assert load_model(_read_result(status["Results"]["output1"]))["job_id"] == job_id
