"""DAG files, and the operator, sensor and trigger modules they import, do not pay for heavy libraries."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
HEAVY = ["aiohttp", "requests", "azure.storage.blob", "sklearn", "jsonpatch"]
CORE = [
    "airflow_provider_amlretrain.operators.batch_execution",
    "airflow_provider_amlretrain.sensors.batch_job",
    "airflow_provider_amlretrain.triggers.batch_job",
    "airflow_provider_amlretrain.links.batch_job",
    "airflow_provider_amlretrain.get_provider_info",
]


def _dag_facing_modules() -> list[str]:
    """The core modules plus every operator, sensor and trigger module the provider info names."""
    from airflow_provider_amlretrain.get_provider_info import get_provider_info

    info = get_provider_info()
    named = [
        m
        for section in ("operators", "sensors", "triggers")
        for e in info.get(section, [])
        for m in e["python-modules"]
    ]
    return list(dict.fromkeys(CORE + named))


SCRIPT = """
import importlib, json, sys
heavy, modules = json.loads(sys.argv[1]), json.loads(sys.argv[2])
before = [m for m in heavy if m in sys.modules]
for module in modules:
    importlib.import_module(module)
print(json.dumps({"before": before, "after": [m for m in heavy if m in sys.modules], "loaded": [m for m in modules if m in sys.modules]}))
"""


DAG_SCRIPT = """
import json, runpy, sys
import airflow.sdk
heavy, dag_files = json.loads(sys.argv[1]), json.loads(sys.argv[2])
pulled = {}
for dag_file in dag_files:
    before = {m for m in heavy if m in sys.modules}
    runpy.run_path(dag_file)
    pulled[dag_file] = sorted(m for m in heavy if m in sys.modules and m not in before)
print(json.dumps(pulled))
"""


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    return subprocess.run(
        [sys.executable, "-c", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_operator_sensor_and_trigger_modules_import_no_heavy_library():
    modules = _dag_facing_modules()
    result = _run(SCRIPT, json.dumps(HEAVY), json.dumps(modules))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])

    assert report["loaded"] == modules
    assert report["before"] == []
    assert report["after"] == [], f"importing the provider pulled in {report['after']}"


def test_parsing_the_example_dags_imports_no_heavy_library():
    # The Azure provider's WasbBlobSensor module, for one, pulls in azure.storage.blob at parse time.
    dag_files = sorted(str(p) for p in (REPO_ROOT / "dags").glob("*.py"))
    assert dag_files
    result = _run(DAG_SCRIPT, json.dumps(HEAVY), json.dumps(dag_files))
    assert result.returncode == 0, result.stderr
    pulled = json.loads(result.stdout.strip().splitlines()[-1])
    assert pulled == {dag_file: [] for dag_file in dag_files}


RUN_TIME_ONLY = """
import json, runpy, sys
prefix = "airflow_provider_amlretrain."
# What a DAG file needs at parse time from these packages; the rest loads when a task runs.
parse_time = {"hooks.default_connections", "api.states", "promotion.data_version", "promotion.web_service_patch"}
loaded = {}
for dag_file in json.loads(sys.argv[1]):
    runpy.run_path(dag_file)
    loaded[dag_file] = sorted(
        name
        for name in (m[len(prefix):] for m in sys.modules if m.startswith(prefix))
        if name.split(".")[0] in ("hooks", "api", "promotion") and "." in name and name not in parse_time
        or name == "triggers.batch_job"
    )
print(json.dumps(loaded))
"""


def test_parsing_the_example_dags_loads_no_hook_client_or_record_store():
    # Operators import their hooks, triggers, HTTP request builders and record store inside the methods a
    # task runs: the DAG processor parses every file every few seconds, and pays for nothing it does not use.
    dag_files = sorted(str(p) for p in (REPO_ROOT / "dags").glob("*.py"))
    result = _run(RUN_TIME_ONLY, json.dumps(dag_files))
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded == {dag_file: [] for dag_file in dag_files}
