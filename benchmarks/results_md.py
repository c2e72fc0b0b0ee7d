"""
What ``report.py`` and ``soak_report.py`` share: ``RESULTS.md``'s marked blocks and a headless pyplot.

Each report owns a block of ``RESULTS.md`` between two HTML comments (``<!-- performance -->`` ...
``<!-- /performance -->``, ``<!-- soak -->`` ... ``<!-- /soak -->``) and rewrites only what stands between
them, so the hand-written text around the blocks stays as it is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

RESULTS_MD = Path(__file__).resolve().parent / "RESULTS.md"


def replace_block(text: str, start: str, end: str, lines: list[str]) -> str | None:
    """
    ``text`` with the lines between its ``start`` and ``end`` markers replaced; None if it lacks either.

    The markers stay, each on a line of its own around the new lines; what follows ``end`` is kept as it is.

    :param text: The whole of ``RESULTS.md``.
    :param start: The opening marker, e.g. ``<!-- soak -->``.
    :param end: The closing marker, e.g. ``<!-- /soak -->``.
    :param lines: The block's new lines, without the markers.
    """
    if start not in text or end not in text:
        return None
    before, rest = text.split(start, 1)
    after = rest.split(end, 1)[1]
    return before + start + "\n" + "\n".join(lines) + "\n" + end + after


def pyplot() -> Any:
    """``matplotlib.pyplot`` drawing to files only (the Agg backend), imported when a plot is drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
