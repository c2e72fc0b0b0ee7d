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


#: The pytest-xdist work units of the test modules on a local Airflow: each unit's worker starts one and
#: shares it between the unit's modules, so the two workers wait on two local Airflows at once. Within a
#: unit, and from the first to the second when one worker runs both, the backfill module
#: (test_standalone_deployment) precedes the Params module, which deploys a model of a newer day.
LOCAL_AIRFLOW_UNITS = {
    "test_approval_before_promotion.py": "local-airflow-1",
    "test_browser_ui.py": "local-airflow-1",
    "test_standalone_deployment.py": "local-airflow-1",
    "test_standalone_params.py": "local-airflow-2",
    "test_standalone_reprocess.py": "local-airflow-2",
    "test_end_from_trigger.py": "local-airflow-2",
}


def work_unit(nodeid: str) -> str:
    """The xdist work unit of a test: its module, or the unit of the modules sharing a local Airflow.

    :param nodeid: the test's node id.
    """
    module = nodeid.split("::")[0]
    return LOCAL_AIRFLOW_UNITS.get(Path(module).name, module)


def _rank(item: Any) -> int:
    """Real-Airflow modules first (they take longest), the distributed deployment next, then the rest."""
    if "local_airflow" in item.fixturenames:
        return 0
    return 1 if "distributed" in item.fixturenames else 2


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """
    ``make test`` (``-n 2 --dist loadscope --no-loadscope-reorder``): each test module whole on one worker
    and in order (tests of a module may build on what the one before did), and the modules on a local
    Airflow in the units above. (xdist's ``loadgroup`` cannot do it on pytest 9: it renames node ids.)

    :param config: pytest's configuration.
    :param log: xdist's scheduler log.
    """
    from xdist.scheduler import LoadScopeScheduling

    class ModuleScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    return ModuleScheduling(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[Any]) -> None:
    """
    On an xdist worker, the slowest modules first (their units are handed out in collection order).

    :param config: pytest's configuration.
    :param items: the collected tests, reordered in place (a stable sort: modules keep their order).
    """
    if hasattr(config, "workerinput"):
        items.sort(key=_rank)
