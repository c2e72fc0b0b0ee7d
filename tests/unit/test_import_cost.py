"""DAG files that import the operator, sensor or trigger do not pay for heavy libraries."""

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


def test_operator_sensor_and_trigger_modules_import_no_heavy_library():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    modules = _dag_facing_modules()
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(HEAVY), json.dumps(modules)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])

    assert report["loaded"] == modules
    assert report["before"] == []
    assert report["after"] == [], f"importing the provider pulled in {report['after']}"
