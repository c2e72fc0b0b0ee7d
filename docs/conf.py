"""Sphinx configuration of the provider's documentation (``make docs``; warnings are errors)."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS.parent))
sys.path.insert(0, str(DOCS / "_ext"))
# Importing the provider imports Airflow, which reads (and would create) its home: keep it out of ~/airflow.
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="amlretrain-docs-airflow-"))

project = "airflow-provider-amlretrain"
author = "airflow-provider-amlretrain contributors"
copyright = "2026, airflow-provider-amlretrain contributors"

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
    "connection_fields",
]
exclude_patterns = ["_build"]
templates_path: list[str] = []
html_static_path = ["_static"]
html_theme = "alabaster"
html_title = "airflow-provider-amlretrain"

# Reference pages come from the docstrings. Signatures keep their annotations; the types Sphinx cannot
# resolve without the internet (Airflow's, the standard library's) are ignored by nitpicky mode below.
autodoc_default_options = {"members": True, "show-inheritance": True, "member-order": "bysource"}
autodoc_typehints = "signature"
autodoc_class_signature = "separated"
autoclass_content = "both"

# No internet here: no inventory is fetched, and internal references are checked strictly (-n).
intersphinx_mapping: dict[str, tuple[str, str | None]] = {}
nitpicky = True
nitpick_ignore_regex = [
    (
        r"py:.*",
        r"(airflow|azure|aiohttp|requests|collections|typing|datetime|pathlib|enum|abc|time|asyncio|logging|re)\b.*",
    ),
    (
        r"py:.*",
        r"(Any|Context|Mapping|Sequence|Iterable|Iterator|AsyncIterator|Callable|Awaitable|timedelta|datetime|Path|Enum|TracebackType|Self)",
    ),
    (r"py:class", r"(str|int|float|bool|dict|list|tuple|set|bytes|None|object|Exception|BaseException)"),
    # Types imported only for type checking appear unqualified in signatures; stringified generics split at commas.
    (r"py:class", r"[A-Z]\w*"),
    (r"py:class", r"\w+\[.*"),
    # Private bases (e.g. the retry rules mixin) are not documented.
    (r"py:class", r".*\._\w+"),
]
