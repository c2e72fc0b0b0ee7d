"""The marked blocks of ``benchmarks/RESULTS.md`` that ``report.py`` and ``soak_report.py`` rewrite
(``benchmarks/results_md.py``)."""

from __future__ import annotations

import importlib.util
from typing import Any

from tests.conftest import REPO_ROOT

_spec = importlib.util.spec_from_file_location("results_md", REPO_ROOT / "benchmarks/results_md.py")
assert _spec and _spec.loader
results_md: Any = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(results_md)

START, END = "<!-- soak -->", "<!-- /soak -->"


def test_only_the_block_between_the_markers_is_replaced():
    text = f"# Results\n\nBy hand.\n{START}\nold table\nold plot\n{END}\n\nBy hand, after.\n<!-- /reliability -->\n"
    replaced = results_md.replace_block(text, START, END, ["| new |", "", "![plot](p.png)"])
    assert replaced == (
        f"# Results\n\nBy hand.\n{START}\n| new |\n\n![plot](p.png)\n{END}\n\nBy hand, after.\n<!-- /reliability -->\n"
    )
    # Rewriting with the same lines gives the same text.
    assert results_md.replace_block(replaced, START, END, ["| new |", "", "![plot](p.png)"]) == replaced


def test_a_text_without_both_markers_is_not_touched():
    assert results_md.replace_block(f"# Results\n{START}\nno end\n", START, END, ["x"]) is None
    assert results_md.replace_block(f"# Results\n{END}\n", START, END, ["x"]) is None
