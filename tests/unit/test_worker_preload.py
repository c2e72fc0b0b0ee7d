"""``worker_preload`` loads, once, the heavy libraries a task process of the provider would import itself."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.unit.test_import_cost import REPO_ROOT, _run

#: What the provider's tasks import when they run (measured by ``benchmarks/fan_out_task_cost.py``).
TASK_TIME_LIBRARIES = [
    "aiohttp",
    "azure.core.pipeline",
    "azure.identity",
    "azure.storage.blob",
    "azure.storage.blob.aio",
    "requests",
    "airflow.providers.microsoft.azure.hooks.wasb",
]

SCRIPT = """
import json, sys
import airflow.sdk
libraries = json.loads(sys.argv[1])
before = [m for m in libraries if m in sys.modules]
import airflow_provider_amlretrain.worker_preload as preload
print(json.dumps({"before": before, "after": [m for m in libraries if m in sys.modules],
                  "named": [m for m in preload.PRELOADED_MODULES if m not in sys.modules]}))
"""


def test_preloading_imports_what_tasks_import_and_dag_files_do_not():
    result = _run(SCRIPT, json.dumps(TASK_TIME_LIBRARIES))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])

    assert report["before"] == [], "airflow.sdk alone must not load them (DAG files stay light)"
    assert report["after"] == TASK_TIME_LIBRARIES
    assert report["named"] == []


#: The module families a task process's DAG-file parse loads that cost the most (measured with py-spy on the
#: fan-out benchmark's task processes: the DagBag's serialization and ORM models, the SDK's decorators).
PARSE_TIME_FAMILIES = (
    "airflow.dag_processing",
    "airflow.models",
    "airflow.serialization",
    "airflow.sdk",
    "airflow.providers.standard.operators",
    "airflow_provider_amlretrain",
)

PARSE_SCRIPT = """
import glob, json, runpy, sys
import airflow, airflow.executors.local_executor
import airflow_provider_amlretrain.worker_preload
families = tuple(json.loads(sys.argv[1]))
before = set(sys.modules)
from airflow.dag_processing.dagbag import BundleDagBag  # what the task runner parses with
for path in sorted(glob.glob("dags/*.py")) + ["benchmarks/fan_out_dag.py"]:
    runpy.run_path(path)
print(json.dumps(sorted(m for m in set(sys.modules) - before if m.startswith(families))))
"""


def test_a_task_process_parses_the_example_dags_with_what_was_preloaded():
    """After the preload, parsing any example DAG (as every task process does first) loads none of the costly modules."""
    result = _run(PARSE_SCRIPT, json.dumps(PARSE_TIME_FAMILIES))
    assert result.returncode == 0, result.stderr

    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def test_nothing_in_the_provider_imports_the_preload_module():
    """Only a worker's parent imports it (``mp_forkserver_preload``): DAG files and the DAG processor stay light."""
    found = subprocess.run(
        ["grep", "-rln", "worker_preload", "airflow_provider_amlretrain", "dags"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    assert sorted(found) == [
        "airflow_provider_amlretrain/celery_worker_config.py",  # a Celery worker's main process imports it
        "airflow_provider_amlretrain/worker_preload.py",
    ], found


def _example_settings() -> dict[str, str]:
    """The settings ``deploy/airflow.env`` gives every deployment."""
    return dict(
        line.split("=", 1)
        for line in (REPO_ROOT / "deploy/airflow.env").read_text().splitlines()
        if line and not line.startswith("#")
    )


def test_the_example_settings_preload_it_for_the_local_executor():
    settings = _example_settings()
    assert settings["AIRFLOW__SCHEDULER__MP_START_METHOD"] == "forkserver"
    assert "airflow_provider_amlretrain.worker_preload" in settings[
        "AIRFLOW__SCHEDULER__MP_FORKSERVER_PRELOAD"
    ].split(",")


def test_the_example_settings_preload_it_for_celery_workers():
    """Airflow's default Celery configuration, with the preload module among the modules a worker imports first."""
    pytest.importorskip(
        "airflow.providers.celery", reason="make setup-distributed installs the Celery provider"
    )
    from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG

    from airflow_provider_amlretrain import celery_worker_config

    settings = _example_settings()
    module, _, name = settings["AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS"].rpartition(".")
    assert (module, name) == ("airflow_provider_amlretrain.celery_worker_config", "CELERY_CONFIG")
    config = celery_worker_config.CELERY_CONFIG
    assert {k: v for k, v in config.items() if k != "imports"} == {
        k: v for k, v in DEFAULT_CELERY_CONFIG.items() if k != "imports"
    }
    assert config["imports"][-1] == "airflow_provider_amlretrain.worker_preload"
