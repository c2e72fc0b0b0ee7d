"""Test-wide settings: an isolated Airflow home on SQLite, set before Airflow is imported; the order of the
tests and how pytest-xdist splits them."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

_home = Path(tempfile.mkdtemp(prefix="amlretrain-airflow-home-"))
os.environ["AIRFLOW_HOME"] = str(_home)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO_ROOT / "dags")
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_home}/airflow.db"
os.environ["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "INFO"
os.environ.pop("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", None)
os.environ["AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"] = json.dumps(
    [
        {
            "name": "dags-folder",
            "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
            "kwargs": {"path": str(REPO_ROOT / "dags")},
        },
        {
            "name": "test-dags",
            "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
            "kwargs": {"path": str(REPO_ROOT / "tests/integration/dags")},
        },
    ]
)


#: The pytest-xdist group of the test modules on the session's local Airflow (see below).
LOCAL_AIRFLOW_GROUP = "local-airflow"


def _rank(item: Any) -> int:
    """Real-Airflow modules first (they take longest), the distributed deployment next, then the rest."""
    if "local_airflow" in item.fixturenames:
        return 0
    return 1 if "distributed" in item.fixturenames else 2


def pytest_collection_modifyitems(config: pytest.Config, items: list[Any]) -> None:
    """
    With pytest-xdist (``make test``: ``-n 2 --dist loadgroup --no-loadscope-reorder``): keep each test
    module whole on one worker and in order (tests of a module may build on what the one before did), every
    module on the session's local Airflow on one worker, so that it starts once, and the slowest first.

    :param config: pytest's configuration.
    :param items: the collected tests, reordered in place (a stable sort: modules keep their order).
    """
    if config.getoption("dist", "no") == "no":
        return
    items.sort(key=_rank)
    for item in items:
        group = LOCAL_AIRFLOW_GROUP if _rank(item) == 0 else item.nodeid.split("::")[0]
        item.add_marker(pytest.mark.xdist_group(group))
