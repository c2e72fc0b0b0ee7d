"""The provider's wheel holds the provider only: no emulator, dev stack, tests or DAGs.

Builds the wheel from a copy of the checkout (``pip wheel --no-deps --no-build-isolation``, a few
seconds; the copy keeps setuptools' ``build/`` and ``*.egg-info`` out of the checkout, and stale
files there out of the wheel) and reads its file list, metadata and entry points.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from typing import TYPE_CHECKING

import pytest

from tests.conftest import REPO_ROOT

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.packaging

PACKAGE = "airflow_provider_amlretrain"
#: What only the emulator distribution (amlretrain-emulator, in emulator/) may need.
EMULATOR_ONLY_REQUIREMENTS = {"scikit-learn", "sklearn", "fastapi", "uvicorn", "numpy", "starlette"}
#: Not part of a build: caches, local state, earlier build output, Azurite's node_modules.
NOT_SOURCES = shutil.ignore_patterns(
    ".git",
    ".venv",
    "node_modules",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".amlretrain*",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[zipfile.ZipFile]:
    """The provider's wheel, built from a copy of the checkout with this interpreter's pip."""
    source = tmp_path_factory.mktemp("provider-source") / "checkout"
    shutil.copytree(REPO_ROOT, source, ignore=NOT_SOURCES)
    out = tmp_path_factory.mktemp("provider-wheel")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, (
        "building the provider wheel failed (it needs setuptools>=77 and wheel, from the dev extra: "
        f"pip install -e '.[dev]'):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    built = sorted(out.glob("*.whl"))
    assert len(built) == 1, built
    archive = zipfile.ZipFile(built[0])
    yield archive
    archive.close()


def _dist_info(wheel: zipfile.ZipFile) -> str:
    (dist_info,) = {n.split("/")[0] for n in wheel.namelist() if n.split("/")[0].endswith(".dist-info")}
    return dist_info


def _requirement_name(requirement: str) -> str:
    """``scikit-learn>=1.4; extra == "x"`` -> ``scikit-learn`` (normalised as PEP 503 does)."""
    name = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement.strip())
    assert name, requirement
    return re.sub(r"[-_.]+", "-", name.group(0)).lower()


def test_wheel_holds_every_provider_module_and_nothing_else(wheel: zipfile.ZipFile) -> None:
    dist_info = _dist_info(wheel)
    assert dist_info.startswith(f"{PACKAGE}-")
    names = wheel.namelist()
    outside = [n for n in names if not n.startswith((f"{PACKAGE}/", f"{dist_info}/"))]
    assert outside == [], f"the wheel holds files that are not the provider: {outside}"
    # And the provider whole: every module of the checkout's package, nothing from elsewhere.
    sources = sorted(
        p.relative_to(REPO_ROOT).as_posix()
        for p in (REPO_ROOT / PACKAGE).rglob("*.py")
        if "__pycache__" not in p.parts
    )
    assert sorted(n for n in names if n.startswith(f"{PACKAGE}/")) == sources
    for part in ("emulator", "devstack", "tests", "dags", "scripts", "benchmarks"):
        assert not any(f"/{part}/" in n or n.startswith(f"{part}/") for n in names), part


def test_wheel_requires_nothing_the_emulator_needs(wheel: zipfile.ZipFile) -> None:
    metadata = Parser().parsestr(wheel.read(f"{_dist_info(wheel)}/METADATA").decode())
    required = {_requirement_name(r) for r in metadata.get_all("Requires-Dist") or []}
    assert "apache-airflow" in required, required
    assert required & EMULATOR_ONLY_REQUIREMENTS == set(), (
        f"the provider requires {sorted(required & EMULATOR_ONLY_REQUIREMENTS)} (extras included); "
        "they belong to emulator/pyproject.toml"
    )
    assert "emulator" not in (metadata.get_all("Provides-Extra") or [])


def test_wheel_entry_points_are_the_provider_info_only(wheel: zipfile.ZipFile) -> None:
    text = wheel.read(f"{_dist_info(wheel)}/entry_points.txt").decode()
    sections = dict(re.findall(r"^\[([^\]]+)\]\n((?:[^\[\n].*\n?)*)", text, flags=re.MULTILINE))
    assert set(sections) == {"apache_airflow_provider"}, text
    assert "provider_info = airflow_provider_amlretrain.get_provider_info:get_provider_info" in text
