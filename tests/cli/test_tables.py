"""Readable tables at 80 columns (issue 11, item 7): refs shortened, ids never cut."""

from __future__ import annotations

from typer import testing

from drills import cli
from drills.commands import cmdb
from orchestrator.cmdb import models
from tests.cmdb import factories as f

NARROW = {"COLUMNS": "80"}


def _lines(*args: str) -> list[str]:
    result = testing.CliRunner().invoke(cli.app, list(args), env=NARROW)
    assert result.exit_code == 0, result.output
    assert all(len(line) <= 80 for line in result.stdout.splitlines())
    return result.stdout.splitlines()


def _first_cells(lines: list[str]) -> list[str]:
    """The text of each body row's first column (`│ ref │ …`)."""
    return [line.split("│")[1].strip() for line in lines if line.startswith("│")]


def _simple_first_cells(lines: list[str]) -> list[str]:
    """The first word of each body row of a table with a light head rule (`───`)."""
    body = lines[next(i for i, line in enumerate(lines) if "───" in line) + 1 :]
    return [line[: line.index("  ")].strip() if "  " in line else line for line in body]


def test_ref_text_is_the_shortest_form_that_parses_back_to_the_ref() -> None:
    for raw, shown in (
        ("component:default/checkout", "checkout"),
        ("resource:default/payments-db", "resource:payments-db"),
        ("component:shop/checkout", "component:shop/checkout"),
        ("system:default/shop", "system:shop"),
    ):
        ref = models.EntityRef.parse(raw)
        assert cmdb.ref_text(ref) == shown
        back = models.EntityRef.parse(shown, default_kind=models.EntityKind.COMPONENT)
        assert back == ref
    assert cmdb.ref_text(None) == "-"


def test_cmdb_show_at_80_columns_shows_every_ref_whole_and_short() -> None:
    refs = [cell for cell in _first_cells(_lines("cmdb", "show", "--cmdb", str(f.SAMPLE))) if cell]

    assert refs == [
        "checkout",
        "payments",
        "web",
        "resource:payments-db",
        "resource:payprovider",
        "inventory",
    ]


def test_cmdb_impact_at_80_columns_shows_every_ref_whole_and_nothing_ends_in_an_ellipsis() -> None:
    lines = _lines("cmdb", "impact", "payments-db", "--cmdb", str(f.SAMPLE))

    refs = [cell for cell in _simple_first_cells(lines) if cell]
    assert refs == ["resource:payments-db", "payments", "checkout", "web"]
    assert not any("…" in line for line in lines)
    assert not any("component:" in line for line in lines)
