"""The shared Airflow settings file and the skip rule of the real-deployment tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import pytest

from tests.conftest import REPO_ROOT

if TYPE_CHECKING:
    from pathlib import Path


def test_the_settings_file_reads_as_compose_reads_it() -> None:
    from amlretrain_devstack.airflow_settings import SETTINGS_FILE, read_settings

    settings = read_settings(REPO_ROOT / SETTINGS_FILE)
    assert settings["AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE"] == "True"
    assert all(name.startswith("AIRFLOW__") for name in settings)


def test_a_line_that_is_not_key_value_is_named(tmp_path: Path) -> None:
    from amlretrain_devstack.airflow_settings import read_settings
    from amlretrain_devstack.errors import DevStackError

    path = tmp_path / "airflow.env"
    path.write_text("# comment\nAIRFLOW__CORE__EXECUTOR=CeleryExecutor\nnot a setting\n")
    with pytest.raises(DevStackError, match=r"airflow.env:3 is not a KEY=VALUE line"):
        read_settings(path)


def test_the_deployment_env_drops_inherited_connections_and_settings(tmp_path: Path) -> None:
    from amlretrain_devstack.airflow_settings import airflow_env

    env = airflow_env(
        settings={"AIRFLOW__CORE__LOAD_EXAMPLES": "False"},
        home=tmp_path,
        api_port=1234,
        dag_folders=[tmp_path],
        keys={"AIRFLOW__CORE__FERNET_KEY": "k"},
        base={
            "PATH": "/bin",
            "AIRFLOW_CONN_AZURITE_DEFAULT": "{}",
            "AIRFLOW_VAR_X": "1",
            "AIRFLOW__CORE__EXECUTOR": "SequentialExecutor",
        },
    )
    assert "AIRFLOW_CONN_AZURITE_DEFAULT" not in env and "AIRFLOW_VAR_X" not in env
    assert "AIRFLOW__CORE__EXECUTOR" not in env
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://127.0.0.1:1234/execution/"


@pytest.mark.parametrize(("ci", "outcome"), [("true", pytest.fail.Exception), ("", pytest.skip.Exception)])
def test_a_missing_package_skips_but_fails_on_ci(
    monkeypatch: pytest.MonkeyPatch, ci: str, outcome: type[BaseException]
) -> None:
    from tests.integration.airflow_support import require

    monkeypatch.setenv("CI", ci)
    with pytest.raises(BaseException) as raised:  # a skip must not pass for a failure, nor the reverse
        require(["Redis: apt-get install redis-server"], "the distributed deployment test")
    assert raised.type is outcome
    assert "apt-get install redis-server" in str(raised.value)
    require([], "nothing missing")  # returns


def test_stop_session_kills_a_child_that_left_the_process_group() -> None:
    from amlretrain_devstack.sessions import session_members, stop_session

    # A leader that ignores SIGTERM, with a child in a process group of its own (as a task process).
    script = (
        "import os, signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'], process_group=0)\n"
        "time.sleep(60)\n"
    )
    leader = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while len(session_members(leader.pid)) < 2:
            assert time.monotonic() < deadline, "the child did not start"
            time.sleep(0.1)
        assert stop_session(leader.pid, grace_seconds=0.5)
        leader.wait(timeout=10)
        assert session_members(leader.pid) == []
    finally:
        if leader.poll() is None:
            leader.send_signal(signal.SIGKILL)


def test_a_start_that_fails_stops_the_parts_it_started_and_drops_the_record(tmp_path: Path) -> None:
    from amlretrain_devstack.airflow_deployment import AirflowDeployment, record_file, stopped_on_failure
    from amlretrain_devstack.sessions import session_members

    home = tmp_path / "airflow-local" / "home"
    home.mkdir(parents=True)
    deployment = AirflowDeployment(kind="local", url="http://127.0.0.1:9", home=home, env={})
    pid = 0
    try:
        with (
            pytest.raises(RuntimeError, match="the API never answered"),
            stopped_on_failure(tmp_path, deployment),
        ):
            pid = deployment.start_part("scheduler", [sys.executable, "-c", "import time; time.sleep(60)"])
            raise RuntimeError("the API never answered")
        assert session_members(pid) == []
        assert not record_file(tmp_path, "local").exists()
    finally:
        if pid and session_members(pid):
            os.kill(pid, signal.SIGKILL)
