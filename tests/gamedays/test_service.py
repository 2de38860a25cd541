"""The game day service on a real SQLite store: lifecycle, gates and roles, the key-person
rule, notes and findings, and bad documents named by file and field."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from drills.service import gamedays
from orchestrator import journal, states
from tests.gamedays import support
from tests.gamedays.support import ALICE, BOB, DAVE

_GO = gamedays.Decision.GO
_HELD = states.Verdict.HELD


@pytest.fixture
def store(tmp_path: Path) -> Iterator[journal.Journal]:
    with journal.open_store(f"sqlite:///{tmp_path / 'store.db'}") as opened:
        yield opened


@pytest.fixture
def day(store: journal.Journal, tmp_path: Path) -> gamedays.GameDay:
    return gamedays.create(store, support.write(tmp_path, support.document()), by="lead")


@pytest.fixture
def running(store: journal.Journal, day: gamedays.GameDay) -> gamedays.GameDay:
    return gamedays.start(store, day.name, now=support.IN_WINDOW)


def test_the_bundled_example_creates_a_planned_game_day_in_berlin_time(
    store: journal.Journal,
) -> None:
    created = gamedays.create(store, support.EXAMPLE, by="lead")

    assert created.state is gamedays.State.PLANNED and created.id.startswith("gd-")
    assert created.window_start == dt.datetime(2026, 12, 8, 9, 0, tzinfo=dt.UTC)
    assert created.timezone == "Europe/Berlin" and created.services == (
        "component:default/checkout",
        "component:default/payments",
    )
    assert created.facilitator == "user:default/alice"
    assert [s.gate for s in created.drills] == [gamedays.Gate.AUTO, gamedays.Gate.MANUAL]
    assert created.drills[0].ref == str(support.AZ_DRILL)
    assert created.drills[1].ref_kind is gamedays.RefKind.SCENARIO
    assert [d.name for d in gamedays.list_gamedays(store)] == ["checkout-gameday"]
    dave = created.participant("user:default/dave")
    assert dave is not None and set(dave.roles) == {
        gamedays.Role.APPROVER,
        gamedays.Role.SERVICE_OWNER,
    }


def test_a_whole_game_day_runs_gate_by_gate_to_its_verdict(
    store: journal.Journal, running: gamedays.GameDay
) -> None:
    assert running.slot(1).decision is _GO and running.slot(1).decided_by == gamedays.AUTO

    gamedays.set_drill_result(store, running.name, position=1, run_id="run-1", verdict=_HELD)
    gamedays.gate(store, running.name, position=2, decision=_GO, by=ALICE)
    gamedays.set_drill_result(store, running.id, position=2, run_id="run-2", verdict=_HELD)
    gamedays.gate(store, running.name, position=3, decision=gamedays.Decision.NO_GO, by=DAVE)
    closed = gamedays.close(store, running.name, verdict="Checkout held; payments need work.")

    assert closed.state is gamedays.State.CLOSED
    assert closed.verdict == "Checkout held; payments need work."
    assert [(s.run_id, s.verdict) for s in closed.drills] == [
        ("run-1", _HELD),
        ("run-2", _HELD),
        (None, None),
    ]
    assert [(s.decision, s.decided_by) for s in closed.drills] == [
        (_GO, gamedays.AUTO),
        (_GO, ALICE),
        (gamedays.Decision.NO_GO, DAVE),
    ]


def test_an_auto_gate_says_no_go_when_the_drill_before_it_deviated(
    store: journal.Journal, tmp_path: Path
) -> None:
    path = support.write(tmp_path, support.document(gates=("manual", "auto", "auto")))
    created = gamedays.create(store, path, by="lead")
    gamedays.start(store, created.name, now=support.IN_WINDOW)
    assert gamedays.get(store, created.name).slot(1).decision is None  # manual: not opened

    gamedays.gate(store, created.name, position=1, decision=_GO, by=ALICE)
    after = gamedays.set_drill_result(
        store, created.name, position=1, run_id="r1", verdict=states.Verdict.DEVIATED
    )

    assert after.slot(2).decision is gamedays.Decision.NO_GO
    assert after.slot(2).decided_by == gamedays.AUTO
    with pytest.raises(gamedays.GameDayError, match="gate said no-go"):
        gamedays.set_drill_result(store, created.name, position=2, run_id="r2", verdict=_HELD)


def test_only_the_facilitator_decides_a_manual_gate(
    store: journal.Journal, running: gamedays.GameDay
) -> None:
    gamedays.set_drill_result(store, running.name, position=1, run_id="r1", verdict=_HELD)

    with pytest.raises(gamedays.GameDayError, match="only the facilitator") as refused:
        gamedays.gate(store, running.name, position=2, decision=_GO, by=BOB)

    assert ALICE in str(refused.value)
    assert gamedays.get(store, running.name).slot(2).decision is None


def test_an_approval_gate_needs_an_approver_who_is_not_the_facilitator(
    store: journal.Journal, running: gamedays.GameDay
) -> None:
    gamedays.set_drill_result(store, running.name, position=1, run_id="r1", verdict=_HELD)
    gamedays.gate(store, running.name, position=2, decision=_GO, by=ALICE)
    gamedays.set_drill_result(store, running.name, position=2, run_id="r2", verdict=_HELD)

    for who in (ALICE, BOB):
        with pytest.raises(gamedays.GameDayError, match="role approver who is not"):
            gamedays.gate(store, running.name, position=3, decision=_GO, by=who)
    decided = gamedays.gate(store, running.name, position=3, decision=_GO, by=DAVE)

    assert decided.slot(3).decided_by == DAVE


def test_a_document_whose_only_approver_is_the_facilitator_is_refused_at_create(
    store: journal.Journal, tmp_path: Path
) -> None:
    people = f"    - person: {ALICE}\n      roles: [facilitator, approver]\n"
    path = support.write(tmp_path, support.document(participants=people))

    with pytest.raises(gamedays.GameDayError, match="role 'approver' who is not") as refused:
        gamedays.create(store, path, by="lead")

    assert str(path) in str(refused.value) and "spec" in str(refused.value)
    assert gamedays.list_gamedays(store) == []


def test_gates_are_decided_once_in_order_and_never_by_hand_when_auto(
    store: journal.Journal, running: gamedays.GameDay
) -> None:
    with pytest.raises(gamedays.GameDayError, match="drill 1 has no verdict yet"):
        gamedays.gate(store, running.name, position=2, decision=_GO, by=ALICE)
    with pytest.raises(gamedays.GameDayError, match="decided already"):
        gamedays.gate(store, running.name, position=1, decision=_GO, by=ALICE)
    with pytest.raises(gamedays.GameDayError, match="no drill at position 9"):
        gamedays.gate(store, running.name, position=9, decision=_GO, by=ALICE)
    with pytest.raises(gamedays.GameDayError, match="drill 2's gate is undecided"):
        gamedays.set_drill_result(store, running.name, position=2, run_id=None, verdict=_HELD)
    gamedays.set_drill_result(store, running.name, position=1, run_id="r1", verdict=_HELD)
    with pytest.raises(gamedays.GameDayError, match="has its verdict already"):
        gamedays.set_drill_result(store, running.name, position=1, run_id="r1", verdict=_HELD)


def test_an_auto_gate_cannot_be_decided_by_a_person(store: journal.Journal, tmp_path: Path) -> None:
    path = support.write(tmp_path, support.document(gates=("manual", "auto", "manual")))
    created = gamedays.create(store, path, by="lead")
    gamedays.start(store, created.name, now=support.IN_WINDOW)
    gamedays.gate(store, created.name, position=1, decision=_GO, by=ALICE)
    gamedays.set_drill_result(store, created.name, position=1, run_id="r1", verdict=_HELD)

    with pytest.raises(gamedays.GameDayError, match="decided already"):
        gamedays.gate(store, created.name, position=2, decision=_GO, by=ALICE)
    assert gamedays.get(store, created.name).slot(2).decided_by == gamedays.AUTO


def test_an_undecided_auto_gate_refuses_a_person(store: journal.Journal, tmp_path: Path) -> None:
    path = support.write(tmp_path, support.document(gates=("manual", "auto", "manual")))
    created = gamedays.create(store, path, by="lead")
    gamedays.start(store, created.name, now=support.IN_WINDOW)

    with pytest.raises(gamedays.GameDayError, match="is auto: it opens by itself"):
        gamedays.gate(store, created.name, position=2, decision=_GO, by=ALICE)


def test_invalid_state_transitions_are_refused_naming_the_state(
    store: journal.Journal, day: gamedays.GameDay
) -> None:
    with pytest.raises(gamedays.GameDayError, match="cannot close a game day that is planned"):
        gamedays.close(store, day.name, verdict="done")
    with pytest.raises(
        gamedays.GameDayError, match=r"is planned .*; start it first: stormdrill gamedays start"
    ):
        gamedays.note(store, day.name, author=ALICE, text="too early")
    with pytest.raises(gamedays.GameDayError, match="cannot decide a gate of a game day that"):
        gamedays.gate(store, day.name, position=1, decision=_GO, by=ALICE)
    gamedays.start(store, day.name, now=support.IN_WINDOW)
    with pytest.raises(gamedays.GameDayError, match="cannot start a game day that is running"):
        gamedays.start(store, day.name, now=support.IN_WINDOW)
    with pytest.raises(gamedays.GameDayError, match="verdict: give the game day's verdict"):
        gamedays.close(store, day.name, verdict="  ")
    gamedays.close(store, day.name, verdict="done")
    with pytest.raises(gamedays.GameDayError, match="cannot start a game day that is closed"):
        gamedays.start(store, day.name, now=support.IN_WINDOW)
    with pytest.raises(gamedays.GameDayError, match="cannot close a game day that is closed"):
        gamedays.close(store, day.name, verdict="again")
    assert gamedays.get(store, day.name).verdict == "done"


def test_notes_and_findings_are_kept_in_order_with_their_action_items(
    store: journal.Journal, running: gamedays.GameDay
) -> None:
    t0 = dt.datetime(2026, 12, 8, 9, 5, tzinfo=dt.UTC)
    gamedays.note(store, running.name, author=BOB, text="draining us-east-1b", now=t0)
    finding = gamedays.Finding(
        owner="team-payments", due=dt.date(2026, 12, 31), ticket_url="https://jira.example/P-1"
    )
    gamedays.note(
        store,
        running.name,
        author=ALICE,
        text="checkout PDB missing",
        finding=finding,
        now=t0 + dt.timedelta(minutes=3),
    )

    notes = gamedays.get(store, running.name).notes

    assert [(n.author, n.kind, n.text) for n in notes] == [
        (BOB, gamedays.NoteKind.NOTE, "draining us-east-1b"),
        (ALICE, gamedays.NoteKind.FINDING, "checkout PDB missing"),
    ]
    assert notes[0].at == t0 and notes[0].action_owner is None
    assert (notes[1].action_owner, notes[1].due, notes[1].ticket_url) == (
        "team-payments",
        dt.date(2026, 12, 31),
        "https://jira.example/P-1",
    )


def test_only_participants_write_notes_and_bad_notes_are_refused(
    store: journal.Journal, running: gamedays.GameDay
) -> None:
    with pytest.raises(gamedays.GameDayError, match="not a participant and may not write"):
        gamedays.note(store, running.name, author="user:default/mallory", text="hi")
    with pytest.raises(gamedays.GameDayError, match="text: a note needs some text"):
        gamedays.note(store, running.name, author=BOB, text=" ")
    with pytest.raises(gamedays.GameDayError, match="ticket: 'P-1' is not an http"):
        gamedays.note(
            store, running.name, author=BOB, text="x", finding=gamedays.Finding(ticket_url="P-1")
        )
    with pytest.raises(gamedays.GameDayError, match="not a participant and may not decide"):
        gamedays.gate(store, running.name, position=2, decision=_GO, by="user:default/mallory")
    assert gamedays.get(store, running.name).notes == ()


def test_a_person_marked_absent_can_neither_note_nor_gate(
    store: journal.Journal, running: gamedays.GameDay
) -> None:
    gamedays.set_drill_result(store, running.name, position=1, run_id="r1", verdict=_HELD)

    marked = gamedays.mark_absent(store, running.name, person=ALICE)

    alice = marked.participant(ALICE)
    assert alice is not None and alice.absent
    with pytest.raises(gamedays.GameDayError, match="marked absent in this game day"):
        gamedays.note(store, running.name, author=ALICE, text="I am back")
    with pytest.raises(gamedays.GameDayError, match="marked absent in this game day"):
        gamedays.gate(store, running.name, position=2, decision=_GO, by=ALICE)
    gamedays.note(store, running.name, author=BOB, text="alice is out (key-person drill)")
    assert [n.author for n in gamedays.get(store, running.name).notes] == [BOB]
    with pytest.raises(gamedays.GameDayError, match="not a participant; name one of"):
        gamedays.mark_absent(store, running.name, person="user:default/zed")


def test_unknown_game_days_and_duplicate_names_are_refused(
    store: journal.Journal, day: gamedays.GameDay, tmp_path: Path
) -> None:
    with pytest.raises(gamedays.UnknownGameDay, match="stormdrill gamedays list"):
        gamedays.get(store, "nope")
    again = support.write(tmp_path, support.document(), name="again.yaml")
    with pytest.raises(gamedays.GameDayError, match=r"metadata\.name: a game day named"):
        gamedays.create(store, again, by="lead")
    assert [d.id for d in gamedays.list_gamedays(store)] == [day.id]


@pytest.mark.parametrize(
    ("change", "field", "fix"),
    [
        (("kind: GameDay", "kind: GameDya"), "kind", "kind: GameDay"),
        (("timezone: Europe/Berlin", "timezone: Mars/Base"), "spec.window.timezone", "IANA"),
        (('end: "2026-12-08T13:00:00"', 'end: "2026-12-08T09:00:00"'), "spec.window", "after"),
        (("roles: [operator]", "roles: [janitor]"), "spec.participants.1.roles.0", "operator"),
        (("roles: [facilitator]", "roles: [scribe]"), "spec", "exactly one facilitator"),
        (("gate: manual", "gate: sometimes"), "spec.drills.1.gate", "manual"),
        (("environment: staging\n      gate: manual", "gate: manual"), "spec.drills.1", "needs"),
        (("channel: https", "channel: ftp"), "spec.channel", "http(s) URL"),
        (("  services:", "  colour: red\n  services:"), "spec.colour", "Extra inputs"),
        (("third-party-outage", "third-party-outrage"), "spec.drills.1.scenario", "no Scenario"),
        (("drill: /", "drill: ./missing/"), "spec.drills.0.drill", "no Drill file"),
        (("metadata:\n  name: checkout-gameday", "metadata: {}"), "metadata.name", "required"),
        (("apiVersion: stormdrill.dev/v1", "apiVersion: v2"), "apiVersion", "stormdrill.dev/v1"),
    ],
)
def test_a_bad_document_is_refused_naming_the_file_and_field(
    store: journal.Journal, tmp_path: Path, change: tuple[str, str], field: str, fix: str
) -> None:
    text = support.document()
    assert change[0] in text
    path = support.write(tmp_path, text.replace(change[0], change[1], 1))

    with pytest.raises(gamedays.GameDayError) as refused:
        gamedays.create(store, path, by="lead")

    message = str(refused.value)
    assert message.startswith(f"{path}: ") and f"{field}:" in message and fix in message
    assert gamedays.list_gamedays(store) == []


def test_a_file_that_is_not_yaml_or_missing_is_refused_naming_it(
    store: journal.Journal, tmp_path: Path
) -> None:
    broken = support.write(tmp_path, "spec: [unclosed\n")
    with pytest.raises(gamedays.GameDayError, match="is not valid YAML"):
        gamedays.create(store, broken, by="lead")
    with pytest.raises(gamedays.GameDayError, match="cannot be read"):
        gamedays.create(store, tmp_path / "absent.yaml", by="lead")
