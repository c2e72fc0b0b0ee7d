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


#: The pytest-xdist groups of the test modules on the session's local Airflow: each group's worker starts
#: one and shares it between the group's modules, so the two workers wait on two local Airflows at once.
#: Within a group, and from the first group to the second when one worker runs both, the backfill module
#: (test_standalone_deployment) precedes the Params module, which deploys a model of a newer day.
LOCAL_AIRFLOW_GROUPS = {
    "test_approval_before_promotion.py": "local-airflow-1",
    "test_browser_ui.py": "local-airflow-1",
    "test_standalone_deployment.py": "local-airflow-1",
    "test_standalone_params.py": "local-airflow-2",
    "test_standalone_reprocess.py": "local-airflow-2",
}


def _rank(item: Any) -> int:
    """Real-Airflow modules first (they take longest), the distributed deployment next, then the rest."""
    if "local_airflow" in item.fixturenames:
        return 0
    return 1 if "distributed" in item.fixturenames else 2


def _group(item: Any) -> str:
    """The pytest-xdist group of a test: its module's, or that of the modules sharing a local Airflow."""
    module = item.nodeid.split("::")[0]
    if _rank(item) == 0:
        return LOCAL_AIRFLOW_GROUPS.get(Path(module).name, "local-airflow-1")
    return module


def pytest_collection_modifyitems(config: pytest.Config, items: list[Any]) -> None:
    """
    With pytest-xdist (``make test``: ``-n 2 --dist loadgroup --no-loadscope-reorder``): keep each test
    module whole on one worker and in order (tests of a module may build on what the one before did), the
    modules on a local Airflow in the groups above, and the slowest first.

    :param config: pytest's configuration.
    :param items: the collected tests, reordered in place (a stable sort: modules keep their order).
    """
    if config.getoption("dist", "no") == "no":
        return
    items.sort(key=_rank)
    for item in items:
        item.add_marker(pytest.mark.xdist_group(_group(item)))
