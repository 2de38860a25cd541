"""Settings doc: the `STORMDRILL_*` table of docs/settings.md, generated from `drills.settings`.

The variable names are read from the source of `drills.settings` (every string constant
spelled `STORMDRILL_…`), so a variable added there shows up here without anyone listing it;
its meaning and default come from `DESCRIPTIONS`, and a variable without one is rendered as
undocumented (a test fails on that, and when docs/settings.md differs from `render_table()`).
Run `python -m drills.settings_doc` to print the table, `--write` to update docs/settings.md.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import pathlib
import re
import sys
from collections.abc import Mapping, Sequence

from drills import settings

BEGIN = "<!-- BEGIN GENERATED: python -m drills.settings_doc --write -->"
END = "<!-- END GENERATED -->"
DOC_PATH = pathlib.Path(__file__).resolve().parent.parent / "docs" / "settings.md"
_NAME = re.compile(r"STORMDRILL_[A-Z0-9_]+")


@dataclasses.dataclass(frozen=True)
class Variable:
    """One `STORMDRILL_*` variable: what it sets and what applies when it is unset."""

    meaning: str
    default: str


DESCRIPTIONS: Mapping[str, Variable] = {
    "STORMDRILL_DATA_DIR": Variable(
        meaning="Folder of the run store (`stormdrill.db`) and reports; set, it wins over a"
        " project store.",
        default="the project's `.stormdrill/` (a `stormdrill.toml` or `.stormdrill/` found"
        " upward from the working directory), else the user's data directory"
        " (`~/.local/share/stormdrill` on Linux)",
    ),
    "STORMDRILL_DATABASE_URL": Variable(
        meaning="The run store: `sqlite:///PATH` or `postgresql://user:pass@host/db`"
        " (several replicas). The password is masked in every message.",
        default="`stormdrill.db` in the data directory (or the project's `database_url`)",
    ),
    "STORMDRILL_REPORTS_DIR": Variable(
        meaning="Where post-mortems and JUnit files are written (`<dir>/<run id>/`).",
        default="`reports/` in the data directory",
    ),
    "STORMDRILL_CMDB": Variable(
        meaning="CMDB catalog files or folders, separated by `:` (`;` on Windows), used when"
        " neither `--cmdb` nor the Environment names one.",
        default="no catalog",
    ),
    "STORMDRILL_KILLSWITCH_FILE": Variable(
        meaning="An extra kill-switch file: while it exists, drills are refused at plan time"
        " and running drills abort (as with `stormdrill killswitch on`, kept in the store).",
        default="only the store's kill switch",
    ),
}
"""Meaning and default of every variable `drills.settings` reads."""


def variables() -> tuple[str, ...]:
    """Every `STORMDRILL_*` name written as a string constant in `drills.settings`, in order."""
    tree = ast.parse(inspect.getsource(settings))
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            for name in _NAME.findall(node.value):
                if _NAME.fullmatch(node.value) and name not in found:
                    found.append(name)
    return tuple(sorted(found, key=_order))


def undocumented() -> tuple[str, ...]:
    """Variables `drills.settings` reads that `DESCRIPTIONS` does not describe."""
    return tuple(name for name in variables() if name not in DESCRIPTIONS)


def render_table(names: Sequence[str] | None = None) -> str:
    """The Markdown table of `names` (default: `variables()`)."""
    rows = ["| variable | what it sets | when unset |", "|---|---|---|"]
    for name in variables() if names is None else names:
        described = DESCRIPTIONS.get(name, Variable(meaning="**undocumented**", default="?"))
        rows.append(f"| `{name}` | {described.meaning} | {described.default} |")
    return "\n".join(rows) + "\n"


def generated_block(document: str) -> str | None:
    """The text between the BEGIN and END markers of `document`, if both are there."""
    start = document.find(BEGIN)
    stop = document.find(END)
    if start < 0 or stop < start:
        return None
    return document[start + len(BEGIN) : stop].strip("\n") + "\n"


def with_table(document: str) -> str:
    """`document` with its generated block replaced by `render_table()`."""
    start = document.index(BEGIN) + len(BEGIN)
    stop = document.index(END)
    return f"{document[:start]}\n{render_table()}{document[stop:]}"


def _order(name: str) -> tuple[int, str]:
    known = list(DESCRIPTIONS)
    return (known.index(name), name) if name in known else (len(known), name)


def main(argv: Sequence[str]) -> int:
    """Print the table; with `--write`, update docs/settings.md in place."""
    if "--write" in argv:
        DOC_PATH.write_text(with_table(DOC_PATH.read_text()))
        return 0
    sys.stdout.write(render_table())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
