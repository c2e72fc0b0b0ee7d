"""``seed`` (idempotence, output shape, stored state) and the command line."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from typing import TYPE_CHECKING, Any

from amlretrain_emulator.state import StateStore

if TYPE_CHECKING:
    from pathlib import Path

HEX32 = re.compile(r"^[0-9a-f]{32}$")


def test_seed_output_shape(seeded: dict[str, Any]) -> None:
    document = seeded["seed"]
    assert HEX32.match(document["workspace_id"]) and document["workspace_token"]
    assert document["dates"] == ["2026-11-01", "2026-11-02", "2026-11-03"]
    training = [s for s in document["services"] if s["kind"] == "training"]
    assert sorted(s["task"] for s in training) == ["binary", "regression"]
    for service in training:
        assert HEX32.match(service["service_id"]) and HEX32.match(service["web_service_id"])
        assert service["service_id"] != service["web_service_id"]
        assert (
            service["api_location"]
            == f"/workspaces/{document['workspace_id']}/services/{service['service_id']}"
        )
        assert service["output_ports"] == {"output1": "model", "output2": "evaluation"}
        assert service["input_ports"] == ["input1"] and service["global_parameters"] == ["Data URI"]
        assert len(service["api_key"]) >= 40 and service["api_key"] != service["secondary_key"]
        assert [b["date"] for b in service["blobs"]] == document["dates"]
        assert (
            service["blobs"][0]["relative_location"]
            == f"training-data/{service['task']}/dt=2026-11-01/train.csv"
        )
    assert {s["label_column"] for s in training} == {"label", "target"}


def test_seed_is_idempotent_and_extends(seeded: dict[str, Any], state_dir: Path) -> None:
    import datetime as dt

    from amlretrain_emulator.seed import seed

    again = seed(str(state_dir), seeded["connection_string"], days=4, start_date=dt.date(2026, 11, 1))
    first = seeded["seed"]
    assert (
        again["workspace_id"] == first["workspace_id"]
        and again["workspace_token"] == first["workspace_token"]
    )
    before = {s["name"]: (s["service_id"], s["api_key"]) for s in first["services"]}
    assert {s["name"]: (s["service_id"], s["api_key"]) for s in again["services"]} == before
    assert len(again["services"][0]["blobs"]) == 4
    assert len(StateStore(state_dir).list("webservices")) == len(
        {s["web_service_id"] for s in first["services"]}
    )


def test_state_dir_is_private(tmp_path: Path) -> None:
    # A directory the store creates itself (parents included) is private...
    created = tmp_path / "new" / "state"
    store = StateStore(created)
    assert created.stat().st_mode & 0o777 == 0o700
    # ...and an existing, world-readable one is tightened when the store opens it.
    existing = tmp_path / "existing"
    existing.mkdir()
    existing.chmod(0o755)
    assert existing.stat().st_mode & 0o777 == 0o755
    StateStore(existing)
    assert existing.stat().st_mode & 0o777 == 0o700
    # Records (they hold keys) are readable by the owner only.
    store.put_workspace({"workspace_token": "secret"})
    store.put("jobs", "job1", {"id": "job1"})
    records = [p for p in created.rglob("*.json") if p.is_file()]
    assert len(records) == 2
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in records), {
        str(p): oct(p.stat().st_mode & 0o777) for p in records
    }


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "amlretrain_emulator", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_cli_seed_via_environment(seeded: dict[str, Any], tmp_path: Path) -> None:
    result = _cli(
        "seed",
        "--state-dir",
        str(tmp_path / "s"),
        "--days",
        "1",
        "--start-date",
        "2026-12-01",
        env={"AMLRETRAIN_EMULATOR_STORAGE_CONNECTION_STRING": seeded["connection_string"]},
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["dates"] == ["2026-12-01"]
    assert "AccountKey" not in result.stdout + result.stderr


def test_cli_usage_errors(tmp_path: Path) -> None:
    result = _cli(
        "seed", "--state-dir", str(tmp_path), env={"AMLRETRAIN_EMULATOR_STORAGE_CONNECTION_STRING": ""}
    )
    assert result.returncode == 2 and "storage-connection-string" in result.stderr
    assert _cli("bogus").returncode == 2


def test_seed_predictive_and_arm(seeded: dict[str, Any]) -> None:
    document = seeded["seed"]
    predictive = [s for s in document["services"] if s["kind"] == "predictive"]
    assert sorted(s["task"] for s in predictive) == ["binary", "regression"]
    for service in predictive:
        assert service["output_ports"] == {"output1": "scores"} and service["global_parameters"] == []
        assert service["resource_names"] == [
            "Breast Cancer Model [trained model]"
            if service["task"] == "binary"
            else "Diabetes Model [trained model]"
        ]
        assert (
            service["management_path"]
            == f"/workspaces/{document['workspace_id']}/webservices/{service['web_service_id']}"
        )
    arm = document["arm"]
    assert arm["api_version"] == "2017-01-01" and arm["token_path"] == "/msi/token"
    assert sorted(s["task"] for s in arm["web_services"]) == ["binary", "regression"]
    for service in arm["web_services"]:
        assert service["arm_path"].startswith(
            f"/subscriptions/{arm['subscription_id']}/resourceGroups/{arm['resource_group']}/"
        )
        assert (
            service["api_location"]
            == f"/subscriptions/{arm['subscription_id']}/services/{service['service_id']}"
        )


def test_serve_refuses_a_certificate_without_its_key(tmp_path: Path, capsys: Any) -> None:
    from amlretrain_emulator.__main__ import main

    for flag in ("--ssl-certfile", "--ssl-keyfile"):
        assert main(["serve", "--state-dir", str(tmp_path), flag, str(tmp_path / "x.pem")]) == 2
        assert "--ssl-certfile and --ssl-keyfile go together" in capsys.readouterr().err
