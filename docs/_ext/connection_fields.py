"""
``.. connection-fields:: azureml_studio``: the connection form of one connection type, read from the provider info.

The reference shows what the Airflow UI shows (labels, relabelled and hidden standard fields, extra fields),
so the page cannot drift from :mod:`airflow_provider_amlretrain.connection_forms`.
"""

from __future__ import annotations

from typing import Any

from docutils import nodes
from docutils.parsers.rst import Directive
from docutils.statemachine import StringList

_STANDARD = ("host", "schema", "login", "password", "port", "extra")


def _rows(connection: dict[str, Any]) -> list[tuple[str, str, str]]:
    form = connection.get("ui-field-behaviour") or {}
    hidden = set(form.get("hidden-fields") or [])
    relabel = form.get("relabeling") or {}
    placeholders = form.get("placeholders") or {}
    rows = []
    for field in _STANDARD:
        if field in hidden or field == "extra":
            continue
        rows.append((f"``{field}``", relabel.get(field, field.capitalize()), placeholders.get(field, "")))
    for name, spec in (connection.get("conn-fields") or {}).items():
        label = str(spec.get("label", name))
        if spec.get("description"):
            label = f"{label}: {spec['description']}"
        rows.append((f"extra ``{name}``", label, placeholders.get(name, "")))
    return rows


class ConnectionFields(Directive):
    """Render the form of the connection type given as the argument as a table."""

    required_arguments = 1
    has_content = False

    def run(self) -> list[nodes.Node]:
        from airflow_provider_amlretrain.get_provider_info import get_provider_info

        wanted = self.arguments[0]
        types = {c["connection-type"]: c for c in get_provider_info()["connection-types"]}
        if wanted not in types:
            raise self.error(f"unknown connection type {wanted!r}; the provider has {sorted(types)}")
        lines = [
            ".. list-table::",
            "   :header-rows: 1",
            "",
            "   * - field",
            "     - label in the UI",
            "     - example",
        ]
        for field, label, example in _rows(types[wanted]):
            example_text = f"``{example}``" if example else ""
            lines += [f"   * - {field}", f"     - {label}", f"     - {example_text}"]
        container = nodes.container()
        self.state.nested_parse(StringList(lines), self.content_offset, container)
        return list(container.children)


def setup(app: Any) -> dict[str, Any]:
    """Register the directive."""
    app.add_directive("connection-fields", ConnectionFields)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
