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
import shutil
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


def _all_green_run(url: str, token: str, dag_id: str) -> str:
    runs = _api(url, token, f"/dags/{dag_id}/dagRuns?order_by=-start_date&limit=20")["dag_runs"]
    for run in runs:
        tis = _api(url, token, f"/dags/{dag_id}/dagRuns/{run['dag_run_id']}/taskInstances")["task_instances"]
        if run["state"] == "success" and all(ti["state"] == "success" for ti in tis):
            return str(run["dag_run_id"])
    raise SystemExit(f"{dag_id} has no run in which every task succeeded: trigger one first")


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
    finished = _all_green_run(url, token, "amlretrain_retrain_and_promote")
    waiting = _waiting_run(url, token, "amlretrain_approve_borderline")
    args.out.mkdir(parents=True, exist_ok=True)

    profile = tempfile.mkdtemp(prefix="amlretrain-shots-chromium-")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            profile,
            executable_path="/usr/bin/chromium",
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 860},
        )
        page = browser.new_page()
        page.goto(f"{url}/", timeout=120_000)
        page.get_by_label("Username").wait_for(timeout=120_000)  # the sign-in form of the simple auth manager
        page.get_by_label("Username").fill("admin")
        page.get_by_label("Password").fill(args.password)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(lambda address: "/auth/" not in address, timeout=120_000)
        # Each page with a text that shows it has rendered (the UI draws placeholders while its API calls run).
        shots = {
            "dags-list.png": (f"{url}/dags?tags=azureml", "amlretrain_retrain_web_service"),
            "dag-run-grid.png": (
                f"{url}/dags/amlretrain_retrain_and_promote/runs/{finished}",
                "wait_for_training_data",
            ),
            "required-action.png": (
                f"{url}/dags/amlretrain_approve_borderline/runs/{waiting}/tasks/approve/required_actions",
                "Gate outcome",
            ),
        }
        for name, (address, rendered) in shots.items():
            page.goto(address, timeout=120_000)
            page.wait_for_function(
                "([text]) => document.body.innerText.includes(text) && !document.body.innerText.includes('nav.dags')",
                arg=[rendered],
                timeout=180_000,
            )
            page.wait_for_timeout(3_000)
            page.screenshot(path=str(args.out / name), timeout=120_000)
            print(f"wrote {args.out / name} from {address}")
        browser.close()
    shutil.rmtree(profile, ignore_errors=True)  # chromium may still be writing to it as it exits


if __name__ == "__main__":
    main()
