"""The small fault soak (`make soak` runs 100): a sync run and a deferrable backfill while 20 % of calls fail, then a secret scan."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO_ROOT
from tests.integration.conftest import EmulatorAdmin, dump, seeded_dates

pytestmark = pytest.mark.integration

RUNS = 2
ENDPOINT = "soak"


def test_small_fault_soak_keeps_every_invariant_and_leaks_no_secret(
    run, stack: Any, seed: dict[str, Any], emulator: EmulatorAdmin, monkeypatch, capfd
) -> None:
    from amlretrain_devstack.dagrun import load_dag_file
    from amlretrain_devstack.secret_scan import find_secrets, scan_files, scan_sqlite, stack_secrets
    from amlretrain_devstack.soak import REQUEST_TIMEOUT_SECONDS, run_soak, soak_connection_env

    for name, value in soak_connection_env(stack.connection_env(), REQUEST_TIMEOUT_SECONDS).items():
        monkeypatch.setenv(name, value)

    report = run_soak(
        stack.emulator_url,
        load_dag_file(REPO_ROOT / "tests/integration/dags/promotion_test_dags.py", "promote_classic"),
        seeded_dates(seed),
        RUNS,
        run_conf={"target": "t-soak", "endpoint": ENDPOINT},
        endpoint=ENDPOINT,
    )

    summary = {key: value for key, value in report.items() if key != "fault_rules"}
    assert report["problems"] == [], dump(summary)
    assert report["succeeded"] == RUNS and report["jobs_started"] == RUNS, dump(summary)
    assert sum(report["faults_applied"].values()) >= 2, "the faults must really have hit the runs"
    assert report["deployed"] >= 1 and report["not_promoted_older_data"] == 1, dump(summary)
    assert report["endpoint_changes"] >= report["deployed"]
    out, err = capfd.readouterr()
    assert "Pausing task as DEFERRED" in out + err, "the odd runs' retrain must wait in a trigger"

    # Secret scan: the output of the runs (task logs), the Airflow home and the whole metadata DB.
    secrets = stack_secrets(stack.info)
    assert len(secrets) >= 5, "the stack's keys, token, account key and identity header are searched for"
    hits = find_secrets(out + err, "captured output", secrets)
    home = Path(os.environ["AIRFLOW_HOME"])
    _, file_hits = scan_files([home], secrets)
    rows, db_hits = scan_sqlite(home / "airflow.db", secrets)
    assert rows > 0
    assert [hit.__dict__ for hit in hits + file_hits + db_hits] == []
