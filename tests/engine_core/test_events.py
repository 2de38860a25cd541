"""Event kinds and the typed payloads the engine reads back (ack, abort-request, manual)."""

from __future__ import annotations

import ast
import pathlib

import pytest

from orchestrator import events, mutations

ROOT = pathlib.Path(__file__).resolve().parents[2]
KINDS = frozenset(kind.value for kind in events.EventKind)
_EVENT_CALLS = frozenset({"append_event", "NewEvent", "events", "of_kind", "event"})


def test_every_stored_kind_parses_to_its_event_kind() -> None:
    assert events.EventKind("abort-request") is events.EventKind.ABORT_REQUEST
    assert events.EventKind("rollback-failed") is events.EventKind.ROLLBACK_FAILED
    assert events.EventKind("report-facts") is events.EventKind.REPORT_FACTS
    with pytest.raises(ValueError, match="no-such-kind"):
        events.EventKind("no-such-kind")


def test_an_ack_written_by_the_cli_today_reads_back_typed() -> None:
    stored: dict[str, mutations.JsonValue] = {
        "step": "restore",
        "by": "bob",
        "evidence": "https://x/1",
        "automated": False,
    }
    ack = events.Ack.from_data(stored)
    assert ack == events.Ack(step="restore", by="bob", evidence="https://x/1")
    assert ack.to_data() == stored


def test_an_automatic_ack_keeps_how_long_the_step_waited() -> None:
    ack = events.Ack(step="s", by="stormdrill --auto-ack", automated=True, waited_s=2.5)
    assert events.Ack.from_data(ack.to_data()) == ack
    assert ack.to_data()["waited_s"] == 2.5


def test_an_ack_with_misshapen_fields_reads_their_defaults() -> None:
    ack = events.Ack.from_data({"step": 3, "by": None, "automated": "yes", "waited_s": True})
    assert ack == events.Ack(step="", by="")


def test_an_abort_request_of_todays_format_has_no_requester() -> None:
    assert events.AbortRequest.from_data({}) == events.AbortRequest()
    assert events.AbortRequest().to_data() == {}
    assert events.AbortRequest.from_data({"by": "ops"}).to_data() == {"by": "ops"}


def test_a_manual_event_of_todays_format_reads_back_and_writes_the_same_keys() -> None:
    stored: dict[str, mutations.JsonValue] = {
        "step": "restore-payments",
        "assignee": "group:default/team-payments",
        "role": "on-call",
        "timeout_s": 36.0,
        "evidence": ["url"],
        "eligible": ["user:default/bob", "user:default/carol"],
        "absent": ["user:default/alice"],
        "eligibleFrom": "on call at 10:00Z in rotation(s) payments",
        "problem": None,
    }
    manual = events.Manual.from_data(stored)
    assert manual.eligible == ("user:default/bob", "user:default/carol")
    assert manual.absent == ("user:default/alice",)
    assert manual.timeout_s == 36.0
    assert manual.to_data() == stored


def test_a_manual_event_without_a_cmdb_lets_anyone_act() -> None:
    manual = events.Manual.from_data({"step": "s", "eligible": None, "timeout_s": 1})
    assert manual.eligible is None
    assert manual.to_data()["eligible"] is None


def _bare_kinds(path: pathlib.Path) -> list[str]:
    """`kind="state"`-style event kinds spelled as strings in `path` (not target kinds)."""
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name not in _EVENT_CALLS:
                continue
            args = [kw.value for kw in node.keywords if kw.arg == "kind"] + node.args[:1]
            found += [
                f"{path.relative_to(ROOT)}:{arg.lineno}: {arg.value!r}"
                for arg in args
                if isinstance(arg, ast.Constant) and arg.value in KINDS
            ]
        elif isinstance(node, ast.Compare):
            left = node.left
            if not (isinstance(left, ast.Attribute) and left.attr == "kind"):
                continue
            owner = left.value
            if isinstance(owner, ast.Name) and owner.id in {"event", "e", "ack", "found"}:
                found += [
                    f"{path.relative_to(ROOT)}:{c.lineno}: {c.value!r}"
                    for c in node.comparators
                    if isinstance(c, ast.Constant) and c.value in KINDS
                ]
    return found


def test_no_code_outside_the_events_module_spells_an_event_kind_as_a_string() -> None:
    sources = [
        path
        for package in ("orchestrator", "reports", "drills")
        for path in sorted((ROOT / package).rglob("*.py"))
        if path != ROOT / "orchestrator" / "events.py"
    ]
    assert sources
    bare = [hit for path in sources for hit in _bare_kinds(path)]
    assert bare == []
