"""The job page a person opens from the Airflow task's link: what it shows, and that it shows no secret."""

from __future__ import annotations

import re
from typing import Any


def _secrets(emulator: Any, service: dict[str, Any]) -> list[str]:
    from amlretrain_emulator.storage import account_of

    _, key, _ = account_of(emulator.cs)
    return [key, service["api_key"], "AccountKey", "sig=", "SharedAccessSignature"]


def test_finished_job_page_shows_status_timings_inputs_outputs_without_a_key(emulator: Any) -> None:
    service = emulator.service("binary")
    body = emulator.body(service, "page")
    job_id, status = emulator.run(service, body)
    assert status["StatusCode"] == "Finished"

    page = emulator.client.get(f"/_emulator/ui/jobs/{job_id}")  # no Authorization header

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    text = page.text
    assert f"BES job {job_id}" in text
    assert "<strong>Finished</strong>" in text
    assert service["blobs"][0]["relative_location"] in text
    assert "runs/page/model.ilearner" in text and "runs/page/evaluation.csv" in text
    assert re.search(r"Ran for</th><td>\d+\.\d s", text), text
    for secret in _secrets(emulator, service):
        assert secret not in text, secret


def test_page_of_a_sas_addressed_job_drops_the_tokens(emulator: Any) -> None:
    service = emulator.service("binary")
    body, read, write = emulator.sas_body(service, "sas-page")
    job_id = emulator.submit(service, body)  # not started: the page shows a job that has not run

    text = emulator.client.get(f"/_emulator/ui/jobs/{job_id}").text

    assert "<strong>NotStarted</strong>" in text
    assert "runs/sas-page/model.ilearner" in text
    for token in (read, write, *_secrets(emulator, service)):
        assert token not in text


def test_failed_job_page_shows_the_details(emulator: Any) -> None:
    service = emulator.service("binary")
    body = emulator.body(service, "page-failed")
    body["Inputs"]["input1"]["RelativeLocation"] = "training-data/missing/none.csv"
    job_id, status = emulator.run(service, body)
    assert status["StatusCode"] == "Failed"

    text = emulator.client.get(f"/_emulator/ui/jobs/{job_id}").text

    assert "<strong>Failed</strong>" in text
    assert "does not exist" in text
    assert "training-data/missing/none.csv" in text


def test_unknown_job_is_a_404_page(emulator: Any) -> None:
    for job_id in ("0" * 32, "not.a.job"):
        page = emulator.client.get(f"/_emulator/ui/jobs/{job_id}")
        assert page.status_code == 404
        assert page.headers["content-type"].startswith("text/html")


def test_page_answers_loopback_clients_only(emulator: Any, monkeypatch: Any) -> None:
    from amlretrain_emulator import admin

    monkeypatch.setattr(admin, "LOOPBACK_HOSTS", set())
    page = emulator.client.get(f"/_emulator/ui/jobs/{'0' * 32}")
    assert page.status_code == 403


def test_global_parameters_and_details_lose_their_query_strings_and_keys() -> None:
    from amlretrain_emulator.pages import job_page

    job = {
        "id": "j1",
        "status": "Failed",
        "request": {
            "GlobalParameters": {"Data URI": "http://127.0.0.1:1/acct/data/x.csv?sv=2024&sig=SECRETsig%3D"},
            "Outputs": {
                "output1": {"ConnectionString": "AccountKey=NOTAKEY", "RelativeLocation": "m/x.ilearner"}
            },
        },
        "details": "could not read https://acct/data/x.csv?sv=1&sig=LEAKED123",
    }
    text = job_page(job, None)
    assert "http://127.0.0.1:1/acct/data/x.csv" in text
    assert "m/x.ilearner" in text
    for secret in ("SECRETsig", "LEAKED123", "NOTAKEY"):
        assert secret not in text
