"""
Take the Quickstart's screenshots of a running Airflow UI with Playwright and Debian's chromium.

Needs a running ``airflow standalone`` (see docs/quickstart.rst) in which ``amlretrain_retrain_and_promote``
has a finished run and ``amlretrain_approve_borderline`` a run waiting at ``approve``, and a Python with the
``playwright`` package (never a browser download: it drives ``/usr/bin/chromium``)::

    python scripts/docs_screenshots.py --url http://127.0.0.1:8080 --password "$(jq -r .admin \\
        $AIRFLOW_HOME/simple_auth_manager_passwords.json.generated)" --out docs/images
"""

from __future__ import annotations

import argparse
import json
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _api(url: str, token: str, path: str) -> Any:
    request = urllib.request.Request(f"{url}/api/v2{path}", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=60) as answer:
        return json.load(answer)


def _token(url: str, password: str) -> str:
    body = json.dumps({"username": "admin", "password": password}).encode()
    request = urllib.request.Request(
        f"{url}/auth/token", data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=60) as answer:
        return str(json.load(answer)["access_token"])


def _latest_run(url: str, token: str, dag_id: str, state: str) -> str:
    runs = _api(url, token, f"/dags/{dag_id}/dagRuns?order_by=-start_date&limit=20")["dag_runs"]
    for run in runs:
        if run["state"] == state:
            return str(run["dag_run_id"])
    raise SystemExit(f"{dag_id} has no {state} run: trigger one first")


def _waiting_run(url: str, token: str, dag_id: str) -> str:
    runs = _api(url, token, f"/dags/{dag_id}/dagRuns?order_by=-start_date&limit=20")["dag_runs"]
    for run in runs:
        tis = _api(url, token, f"/dags/{dag_id}/dagRuns/{run['dag_run_id']}/taskInstances")["task_instances"]
        if any(ti["task_id"] == "approve" and ti["state"] == "awaiting_input" for ti in tis):
            return str(run["dag_run_id"])
    raise SystemExit(f"{dag_id} has no run waiting at 'approve': trigger a borderline run first")


def main() -> None:
    """Log in, open three pages, save one PNG each."""
    from playwright.sync_api import sync_playwright

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--url", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--out", type=Path, default=Path("docs/images"))
    args = parser.parse_args()
    url = args.url.rstrip("/")
    token = _token(url, args.password)
    finished = _latest_run(url, token, "amlretrain_retrain_and_promote", "success")
    waiting = _waiting_run(url, token, "amlretrain_approve_borderline")
    args.out.mkdir(parents=True, exist_ok=True)

    with sync_playwright() as playwright, tempfile.TemporaryDirectory() as profile:
        browser = playwright.chromium.launch_persistent_context(
            profile,
            executable_path="/usr/bin/chromium",
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 860},
        )
        page = browser.new_page()
        page.goto(f"{url}/", wait_until="networkidle", timeout=120_000)
        if page.locator("input[name=username]").count():
            page.fill("input[name=username]", "admin")
            page.fill("input[name=password]", args.password)
            page.locator("button[type=submit]").click()
            page.wait_for_load_state("networkidle", timeout=120_000)
        shots = {
            "dags-list.png": f"{url}/dags?tags=azureml",
            "dag-run-grid.png": f"{url}/dags/amlretrain_retrain_and_promote/runs/{finished}",
            "required-action.png": f"{url}/dags/amlretrain_approve_borderline/runs/{waiting}/tasks/approve/required_actions",
        }
        for name, address in shots.items():
            page.goto(address, wait_until="networkidle", timeout=120_000)
            page.wait_for_timeout(2_000)  # the UI renders after its API calls settle
            page.screenshot(path=str(args.out / name))
            print(f"wrote {args.out / name} from {address}")
        browser.close()


if __name__ == "__main__":
    main()
