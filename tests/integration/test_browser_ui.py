"""
The UI flows a data engineer uses, in a real browser against ``make airflow``'s local Airflow (the
session's ``local_airflow``): Debian's chromium driven by Playwright (never a browser download).

Log in; the DAG list shows every example DAG and no import error; trigger the scheduled DAG from the
Trigger form with a parameter; clear ``retrain`` from the Clear dialog and see a new BES job; reprocess
three days from the Backfill dialog and see the three runs succeed; the Add Connection form shows the
provider's fields for each of its connection types. Screenshots are kept in the test's output folder
(printed).
"""

from __future__ import annotations

import json
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests

from scripts.docs_screenshots import CHROMIUM_ARGS  # the same browser as the docs' screenshots
from tests.conftest import REPO_ROOT
from tests.integration.airflow_support import AirflowClient, require
from tests.integration.backfill_requests import cancel_orphaned_backfills
from tests.integration.conftest import dump, seeded_dates

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

CHROMIUM = "/usr/bin/chromium"
SCHEDULED_DAG = "amlretrain_bes_retrain"


def missing_browser() -> list[str]:
    """What the browser tests need and is missing, each with what to install."""
    import importlib.util

    missing = []
    if not Path(CHROMIUM).exists():
        missing.append(f"{CHROMIUM}: apt-get install chromium")
    if importlib.util.find_spec("playwright") is None:
        missing.append("Python package playwright: make setup-browser")
    return missing


class Browser:
    """A logged-in page on the local Airflow, saving screenshots as it goes."""

    def __init__(self, page: Any, airflow: AirflowClient, shots: Path) -> None:
        self.page = page
        self.airflow = airflow
        self.shots = shots

    def shot(self, name: str) -> None:
        """Save a full-page screenshot as ``<name>.png``."""
        self.page.screenshot(path=str(self.shots / f"{name}.png"), full_page=True)

    def open(self, path: str) -> None:
        """Go to ``path`` of the UI."""
        self.page.goto(f"{self.airflow.url}{path}", wait_until="domcontentloaded")

    def dialog(self) -> Any:
        """The open dialog."""
        return self.page.locator("[role=dialog][data-state=open]")


@pytest.fixture(scope="module")
def browser(local_airflow: AirflowClient, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    require(missing_browser(), "the browser tests")
    from playwright.sync_api import sync_playwright

    output = tmp_path_factory.mktemp("browser")
    shots = output / "screenshots"
    shots.mkdir()
    print(f"screenshots: {shots}")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(output / "user-data"),  # a fresh profile
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 900},
        )
        context.set_default_timeout(60_000)
        try:
            yield Browser(context.new_page(), local_airflow, shots)
        finally:
            context.close()
            shutil.rmtree(output / "user-data", ignore_errors=True)


def test_log_in(browser: Browser) -> None:
    page = browser.page
    browser.open("/")
    page.wait_for_url("**/auth/login**")
    browser.shot("01-login")
    page.locator("input[name=username]").fill("admin")
    page.locator("input[name=password]").fill(browser.airflow.password)
    page.locator("button[type=submit]").click()
    page.wait_for_url(f"{browser.airflow.url}/")
    page.get_by_text("Dags", exact=True).first.wait_for()
    browser.shot("02-home")


def example_dag_ids() -> list[str]:
    """The ``dag_id`` of every example DAG in dags/."""
    import re

    ids = []
    for path in sorted((REPO_ROOT / "dags").glob("*.py")):
        found = re.search(r'dag_id="([^"]+)"', path.read_text())
        assert found, f"{path.name} names no dag_id"
        ids.append(found.group(1))
    return ids


def test_dag_list_shows_every_example_dag_and_no_import_error(browser: Browser) -> None:
    page = browser.page
    for dag_id in example_dag_ids():
        browser.airflow.wait_until_parsed(dag_id)
    browser.open("/dags")
    for dag_id in example_dag_ids():
        page.get_by_role("link", name=dag_id, exact=True).wait_for()
    page.get_by_text(f"{len(example_dag_ids())} Dags", exact=True).wait_for()
    assert page.get_by_text("Import Errors").count() == 0, "the DAG list shows import errors"
    assert browser.airflow.api("GET", "/importErrors")["total_entries"] == 0
    browser.shot("03-dag-list")


def test_trigger_the_scheduled_dag_from_the_trigger_form_with_a_parameter(browser: Browser) -> None:
    page = browser.page
    run_id = f"browser_trigger_{int(time.time())}"
    conf = {"requested_by": "browser-test"}
    browser.open(f"/dags/{SCHEDULED_DAG}")
    page.get_by_role("button", name="Trigger").first.click()
    dialog = browser.dialog()
    dialog.get_by_role("button", name="Advanced Options").click()
    dialog.locator("input[name=dagRunId]").fill(run_id)
    editor = dialog.locator(".monaco-editor").first
    editor.click()
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    page.keyboard.insert_text(json.dumps(conf))  # no key events: the editor auto-closes brackets
    # The form takes the editor's text when it loses focus (and then formats it).
    dialog.get_by_text("Configuration JSON", exact=True).click()
    dialog.get_by_text('"requested_by": "browser-test"').wait_for()
    browser.shot("04-trigger-form")
    dialog.get_by_role("button", name="Trigger", exact=True).click()
    deadline = time.monotonic() + 60
    while True:
        answer = browser.airflow.session.get(
            f"{browser.airflow.url}/api/v2/dags/{SCHEDULED_DAG}/dagRuns/{run_id}", timeout=30
        )
        if answer.ok:
            break
        assert time.monotonic() < deadline, f"the Trigger form created no run {run_id}: {answer.text[:300]}"
        time.sleep(1)
    run = answer.json()
    assert run["conf"] == conf, run
    assert run["run_type"] == "manual"
    runs = browser.airflow.wait_for_runs(SCHEDULED_DAG, 1, 420, run_type="manual")
    assert {r["dag_run_id"]: r["state"] for r in runs}[run_id] == "success"
    browser.open(f"/dags/{SCHEDULED_DAG}/runs/{run_id}")
    page.get_by_text(run_id).first.wait_for()
    browser.shot("05-triggered-run")


class NoNewBatchJob(AssertionError):
    """Clearing ``retrain`` did not submit a new BES job."""


def emulator_job_ids(stack: Any) -> list[str]:
    """Every BES job id the emulator has."""
    answer = requests.get(f"{stack.emulator_url}/_emulator/jobs", timeout=10)
    answer.raise_for_status()
    return [job["id"] for job in answer.json()["jobs"]]


def test_clear_retrain_from_the_clear_dialog_submits_a_new_batch_job(browser: Browser, stack: Any) -> None:
    page = browser.page
    runs = [
        r
        for r in browser.airflow.api("GET", f"/dags/{SCHEDULED_DAG}/dagRuns")["dag_runs"]
        if r["dag_run_id"].startswith("browser_trigger_") and r["state"] == "success"
    ]
    assert runs, "needs the run the Trigger test made"
    run_id = runs[-1]["dag_run_id"]
    path = f"/dags/{SCHEDULED_DAG}/dagRuns/{run_id}/taskInstances/retrain"
    before = browser.airflow.api("GET", path)
    jobs_before = emulator_job_ids(stack)
    browser.open(f"/dags/{SCHEDULED_DAG}/runs/{run_id}/tasks/retrain")
    page.get_by_role("button", name="Press shift+c to clear").click()
    dialog = browser.dialog()
    browser.shot("06-clear-dialog")
    dialog.get_by_role("button", name="Confirm").click()
    deadline = time.monotonic() + 420
    while True:
        after = browser.airflow.api("GET", path)
        if after["try_number"] > before["try_number"] and after["state"] == "success":
            break
        assert time.monotonic() < deadline, browser.airflow.diagnosis(
            SCHEDULED_DAG, "the cleared retrain did not run again"
        )
        time.sleep(3)
    browser.shot("07-cleared-task")
    new_jobs = [job for job in emulator_job_ids(stack) if job not in jobs_before]
    if len(new_jobs) != 1:
        raise NoNewBatchJob(f"the cleared retrain submitted {len(new_jobs)} new BES jobs, not 1")


def test_backfill_dialog_reprocesses_three_days_and_every_run_succeeds(browser: Browser, stack: Any) -> None:
    page = browser.page
    days = seeded_dates(stack.seed)[-4:-1]  # three past days with training data (today's is the last)
    backfills_before = {
        b["id"]
        for b in browser.airflow.api("GET", "/backfills", params={"dag_id": SCHEDULED_DAG})["backfills"]
    }
    browser.airflow.unpause(
        SCHEDULED_DAG
    )  # queued runs of a paused DAG wait (the Trigger test unpauses it too)
    browser.open(f"/dags/{SCHEDULED_DAG}")
    page.get_by_role("button", name="Trigger").first.click()
    dialog = browser.dialog()
    dialog.get_by_text("Run this Dag for a range of dates").click()  # the Backfill choice of the dialog
    # From and To: each opens a date-time popover with a date field (YYYY/MM/DD) and a time field; an empty
    # time means the start of the day for From and its end for To.
    pickers = dialog.get_by_test_id("datetime-input")
    pickers.first.wait_for()
    assert pickers.count() == 2, dialog.inner_html()[:2000]
    for picker, day in zip((pickers.nth(0), pickers.nth(1)), (days[0], days[-1]), strict=True):
        picker.click()
        page.get_by_placeholder("YYYY/MM/DD").fill(day.replace("-", "/"))
        dialog.get_by_text("Reprocess Behavior", exact=True).click()  # a click outside closes the popover
        page.get_by_placeholder("YYYY/MM/DD").wait_for(state="detached")
    dialog.get_by_text("All Runs", exact=True).click()  # reprocess behaviour: every run, done or not
    dialog.locator("input[type=number]").first.fill("3")  # Max Active Runs
    dialog.get_by_text("3 runs will be triggered.").wait_for()  # the dialog's dry run
    browser.shot("10-backfill-dialog")
    since = datetime.now(UTC).replace(microsecond=0)
    dialog.get_by_role("button", name="Run Backfill").click()
    # The dialog closes once the backfill exists. On SQLite a locked DB can make Airflow answer 503 "Database
    # is locked" (shown in the dialog) and leave an empty backfill behind: cancel it and click again, as a
    # person would (see tests/integration/backfill_requests.py).
    deadline = time.monotonic() + 120
    while dialog.count():
        if dialog.get_by_text("Database is locked").count():
            cancel_orphaned_backfills(browser.airflow.session, browser.airflow.url, SCHEDULED_DAG, since)
            dialog.get_by_role("button", name="Run Backfill").click()
        assert time.monotonic() < deadline, "the Backfill dialog did not create the backfill in 120 s"
        time.sleep(1)
    created = [
        b
        for b in browser.airflow.api("GET", "/backfills", params={"dag_id": SCHEDULED_DAG})["backfills"]
        if b["id"] not in backfills_before and not b["is_paused"]  # a cancelled orphan is paused
    ]
    assert len(created) == 1, dump(created)
    (backfill,) = created
    assert backfill["reprocess_behavior"] == "completed" and backfill["max_active_runs"] == 3, backfill
    assert (backfill["from_date"][:10], backfill["to_date"][:10]) == (days[0], days[-1]), backfill
    deadline = time.monotonic() + 600
    while browser.airflow.api("GET", f"/backfills/{backfill['id']}")["completed_at"] is None:
        assert time.monotonic() < deadline, browser.airflow.diagnosis(
            SCHEDULED_DAG, "the backfill did not end"
        )
        time.sleep(3)
    runs = {
        r["logical_date"][:10]: r
        for r in browser.airflow.api(
            "GET", f"/dags/{SCHEDULED_DAG}/dagRuns", params={"run_type": "backfill"}
        )["dag_runs"]
        if r["logical_date"] and r["logical_date"][:10] in days
    }
    assert sorted(runs) == days, dump(runs)
    assert {day: run["state"] for day, run in runs.items()} == dict.fromkeys(days, "success"), (
        browser.airflow.diagnosis(SCHEDULED_DAG, "a backfill run failed")
    )
    browser.open(f"/dags/{SCHEDULED_DAG}/runs")
    page.get_by_text(runs[days[-1]]["dag_run_id"]).first.wait_for()
    browser.shot("11-backfill-runs")


def provider_connection_forms() -> dict[str, dict[str, Any]]:
    """Per connection type of the provider: its name in the UI and the labels its form must show."""
    from airflow_provider_amlretrain.get_provider_info import get_provider_info

    forms = {}
    for kind in get_provider_info()["connection-types"]:
        behaviour = kind.get("ui-field-behaviour") or {}
        forms[kind["connection-type"]] = {
            "name": kind["hook-name"],
            "standard": list((behaviour.get("relabeling") or {}).values()),
            "extra": [field["label"] for field in (kind.get("conn-fields") or {}).values()],
        }
    return forms


def test_add_connection_form_shows_the_provider_fields_of_each_connection_type(browser: Browser) -> None:
    page = browser.page
    forms = provider_connection_forms()
    assert len(forms) >= 3
    for conn_type, form in forms.items():
        browser.open("/connections")
        page.get_by_role("button", name="Add Connection").click()
        dialog = browser.dialog()
        dialog.locator("[role=combobox]").first.click()
        page.keyboard.type(form["name"])
        page.get_by_role("option", name=form["name"], exact=True).click()
        dialog.get_by_text("Standard Fields").wait_for()
        for label in form["standard"]:  # the standard fields, relabelled by the provider
            dialog.get_by_text(label, exact=True).first.wait_for(timeout=15_000)
        browser.shot(f"08-add-connection-{conn_type}")
        dialog.get_by_text("Extra Fields", exact=True).first.click()  # the section folds out
        for label in form["extra"]:
            dialog.get_by_text(label, exact=True).first.wait_for(timeout=15_000)
        browser.shot(f"09-add-connection-{conn_type}-extra-fields")
        page.keyboard.press("Escape")
