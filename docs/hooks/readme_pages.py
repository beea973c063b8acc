"""MkDocs hook: the guides are the README's sections, one page each, built at site-build time.

The README stays the single source (the front page on the repository, with its two commands
first); the site splits it at its ``##`` headings so that each guide is a page of its own, and
rewrites the README's in-page links (``#fan-out``) to the page that now holds the heading.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

_HEADING = re.compile(r"^(#{2,6})\s+(.*?)\s*$")
_LINK = re.compile(r"\]\(#([^)]+)\)")
_SKIPPED = {"Contents"}


def slug(title: str) -> str:
    """The anchor GitHub (and MkDocs' toc) give a heading: lower case, words joined by ``-``."""
    text = re.sub(r"[`*_]", "", title).strip().lower()
    text = re.sub(r"[^\w\s-]", "", text)
    return re.sub(r"[\s]+", "-", text)


def split_readme(text: str) -> list[tuple[str, str, str]]:
    """The README as ``(title, page path, markdown)``: the front page, then one page per section."""
    pages: list[tuple[str, list[str]]] = [("Home", [])]
    fenced = False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        match = None if fenced else _HEADING.match(line)
        if match and len(match.group(1)) == 2:
            pages.append((match.group(2), []))
            line = "# " + match.group(2)
        elif match:
            line = line[1:]  # one level up: the section's title is the page's title
        pages[-1][1].append(line)
    out = []
    for title, lines in pages:
        if title in _SKIPPED:
            continue
        path = "index.md" if title == "Home" else f"guides/{slug(title)}.md"
        out.append((title, path, "\n".join(lines).strip() + "\n"))
    return out


def _anchors(pages: list[tuple[str, str, str]]) -> dict[str, str]:
    where: dict[str, str] = {}
    for _, path, body in pages:
        fenced = False
        for line in body.splitlines():
            if line.startswith("```"):
                fenced = not fenced
            match = None if fenced else re.match(r"^#{1,6}\s+(.*?)\s*$", line)
            if match:
                where.setdefault(slug(match.group(1)), path)
    return where


def _relink(body: str, path: str, where: dict[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        anchor = match.group(1)
        target = where.get(anchor)
        if target is None or target == path:
            return match.group(0)
        up = "../" * path.count("/")
        page = target if target != path else ""
        return f"]({up}{page}#{anchor})" if page != f"guides/{anchor}.md" else f"]({up}{page})"

    return _LINK.sub(replace, body)


def on_files(files: Files, config: Any) -> Files:
    """Add the README's pages to the site."""
    readme = Path(config["config_file_path"]).parent / "README.md"
    pages = split_readme(readme.read_text(encoding="utf-8"))
    where = _anchors(pages)
    for _, path, body in pages:
        files.append(File.generated(config, path, content=_relink(body, path, where)))
    return files


def on_config(config: Any) -> Any:
    """Fill the ``Guides`` entry of the navigation with the README's sections, in order.

    A section added to the README appears in the site without touching ``mkdocs.yml``.
    """
    readme = Path(config["config_file_path"]).parent / "README.md"
    guides = [
        {re.sub(r"`", "", title): path}
        for title, path, _ in split_readme(readme.read_text(encoding="utf-8"))
        if path != "index.md"
    ]
    for entry in config["nav"] or []:
        if isinstance(entry, dict) and "Guides" in entry:
            entry["Guides"] = guides
    return config
