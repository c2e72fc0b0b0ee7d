"""The documentation builds with warnings as errors (nitpicky: every internal reference resolves), and its
internal links point somewhere. What ``make docs`` does, so CI checks the docs with the tests."""

from __future__ import annotations

import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from scripts.check_docs_links import broken_links
from tests.conftest import REPO_ROOT

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture(scope="module")
def html(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("docs") / "html"
    build = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-n", "-q", "-b", "html", "docs", str(out)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert build.returncode == 0, f"sphinx failed:\n{build.stderr[-6000:]}"
    return out


def test_every_internal_link_resolves(html: Path) -> None:
    assert broken_links(html) == []


def test_the_reference_is_generated_from_the_docstrings(html: Path) -> None:
    operators = (html / "reference/operators.html").read_text()
    assert (
        'id="airflow_provider_amlretrain.operators.batch_execution.AzureMLBatchExecutionOperator"'
        in operators
    )
    connections = (html / "reference/connections.html").read_text()
    assert "Workspace ID" in connections and "Managed identity client ID" in connections


def test_the_link_check_finds_missing_pages_and_anchors(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text(
        '<a href="other.html">x</a><a href="index.html#here">y</a><a href="#gone">z</a>'
        '<a href="https://example.invalid/">never fetched</a><span id="here"></span>'
    )
    assert broken_links(tmp_path) == [
        "index.html: other.html (no file other.html)",
        "index.html: #gone (no anchor #gone)",
    ]
