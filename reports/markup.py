"""Markdown helpers: escaping for table cells and code spans (no formatting choices here)."""

from __future__ import annotations

from collections.abc import Sequence


def cell(text: object) -> str:
    """`text` safe inside a GFM table cell (pipes escaped, one line)."""
    return " ".join(str(text).split()).replace("|", "\\|")


def code(text: object) -> str:
    """`text` as an inline code span safe in a table cell (backticks become quotes)."""
    value = cell(str(text).replace("`", "'"))
    return f"`{value}`" if value else ""


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    """A GFM table; cells are escaped with `cell` unless already formatted by the caller."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) if c != "" else "-" for c in row) + " |" for row in rows]
    return lines
