"""
Check the internal links of the built HTML documentation: every relative ``href``/``src`` names a file of the
build, and every ``#anchor`` an ``id`` in that file. External links are never fetched (no internet here).

Usage: ``python scripts/check_docs_links.py docs/_build/html``; exits 1 and lists the broken links.
"""

from __future__ import annotations

import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value is None:
                continue
            if name == "id" or (tag == "a" and name == "name"):
                self.ids.add(value)
            elif name in ("href", "src") and tag in ("a", "img", "link", "script"):
                self.links.append(value)


def _parse(page: Path) -> _Links:
    parser = _Links()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


def broken_links(build: Path) -> list[str]:
    """
    Every internal link of ``build`` that points nowhere, as ``page: link (why)``.

    :param build: The HTML build directory.
    """
    pages = {page.resolve(): _parse(page) for page in build.rglob("*.html")}
    broken = []
    for page, parsed in sorted(pages.items()):
        for link in parsed.links:
            parts = urlsplit(link)
            if parts.scheme or parts.netloc or link.startswith("mailto:"):
                continue  # external: never fetched
            target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
            if target.is_dir():
                target = target / "index.html"
            where = f"{page.relative_to(build.resolve())}: {link}"
            if not target.exists():
                broken.append(f"{where} (no file {target.name})")
            elif parts.fragment and target.suffix == ".html":
                ids = pages[target].ids if target in pages else _parse(target).ids
                if unquote(parts.fragment) not in ids:
                    broken.append(f"{where} (no anchor #{parts.fragment})")
    return broken


def main(argv: list[str]) -> int:
    """Check the build given as the only argument."""
    if len(argv) != 1 or not Path(argv[0]).is_dir():
        print("usage: check_docs_links.py <html build directory>", file=sys.stderr)
        return 2
    broken = broken_links(Path(argv[0]))
    for line in broken:
        print(f"broken link: {line}")
    print(f"internal links: {'OK' if not broken else f'{len(broken)} broken'}")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
