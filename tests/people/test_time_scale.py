"""Honest time scale: people are never scaled, and their waits count in the achieved RTO."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from datetime import timedelta

import pytest

from orchestrator import engine, journal, mutations, objectives, states
from reports import evidence as ev
from reports import postmortem
from tests.people import drills
from tests.people.factories import T0

ACK_DELAY_S = 0.5
"""Longer than the manual step's timeout would be if it were scaled (10 s x 0.01 = 0.1 s)."""


@pytest.fixture
def store(sqlite_url: str) -> Iterator[journal.Journal]:
    with journal.open_store(sqlite_url) as opened:
        yield opened


def _event(seq: int, at_s: float, kind: str, **data: mutations.JsonValue) -> journal.Event:
    return journal.Event(
        seq=seq,
        run_id=states.RunId("r"),
        at=T0 + timedelta(seconds=at_s),
        kind=kind,
        message=kind,
        data=data,
    )


def _run_with_late_ack(store: journal.Journal) -> engine.RunOutcome:
    def ack_later(run_id: str) -> None:
        store.append_event(
            states.RunId(run_id),
            kind="ack",
            message="task acknowledged by bob",
            data={"step": "task", "by": "bob", "evidence": "runbook followed", "automated": False},
        )

    def listen(kind: str, _message: str, _data: Mapping[str, mutations.JsonValue]) -> None:
        if kind == "manual":
            run_id = str(store.list_runs(limit=1)[0].id)
            threading.Timer(ACK_DELAY_S, ack_later, args=(run_id,)).start()

    return drills.make_engine(store).run(drills.drill_input(drills.scenario()), listener=listen)


def test_a_manual_step_is_not_scaled_so_a_late_human_ack_still_counts(
    store: journal.Journal,
) -> None:
    outcome = _run_with_late_ack(store)

    findings = [e.data.get("rule") for e in store.events(outcome.run.id, kind="finding")]
    assert "manual-timeout" not in findings
    assert outcome.exit_code == engine.ExitCode.HELD
    assert drills.manual_data(store, outcome)["timeout_s"] == 10.0


def test_the_time_a_person_took_counts_in_the_achieved_rto(store: journal.Journal) -> None:
    outcome = _run_with_late_ack(store)

    got = store.get_run(outcome.run.id)
    assert got is not None
    measured = got.record.objectives
    assert measured is not None and measured.achieved_rto_s is not None
    assert measured.manual_wait_s is not None and measured.manual_wait_s >= ACK_DELAY_S
    assert measured.achieved_rto_s >= measured.manual_wait_s
    machine = measured.achieved_rto_s - measured.manual_wait_s
    assert measured.real_world_rto_s == pytest.approx(
        machine / 0.01 + measured.manual_wait_s, abs=0.01
    )
    assert measured.rto_met is True  # 30 min objective, judged on the real-world equivalent


def test_manual_waits_end_at_the_accepted_ack_or_the_timeout() -> None:
    events = [
        _event(1, 0, "manual", step="a", eligible=["user:default/bob"]),
        _event(2, 3, "ack", step="a", by="user:default/dave", automated=False),  # ineligible
        _event(3, 5, "ack", step="a", by="bob", automated=False),
        _event(4, 6, "manual", step="b"),
        _event(5, 9, "finding", step="b", rule="manual-timeout"),
        _event(6, 10, "manual", step="c"),
    ]

    waits = objectives.manual_waits(events)

    assert [(w.step, w.started, w.ended) for w in waits] == [
        ("a", T0, T0 + timedelta(seconds=5)),
        ("b", T0 + timedelta(seconds=6), T0 + timedelta(seconds=9)),
        ("c", T0 + timedelta(seconds=10), None),
    ]


def test_recovery_splits_people_time_from_scaled_machine_time() -> None:
    samples = [
        objectives.Sample(at=T0 + timedelta(seconds=s), probe="web", ok=ok)
        for s, ok in ((1, False), (2, True), (3, True), (4, True))
    ]
    waits = [
        objectives.ManualWait(
            step="restore", started=T0 + timedelta(seconds=1), ended=T0 + timedelta(seconds=30)
        )
    ]

    got = objectives.recovery(samples, waits, t0=T0, window_s=1.0, time_scale=0.02)

    assert got is not None
    assert (got.measured_s, got.manual_s, got.machine_s) == (30.0, 29.0, 1.0)
    assert got.real_world_s == pytest.approx(1.0 / 0.02 + 29.0)


def test_recovery_without_people_or_fault() -> None:
    samples = [objectives.Sample(at=T0 + timedelta(seconds=1), probe="web", ok=True)]

    assert objectives.recovery(samples, [], t0=None, window_s=1.0, time_scale=0.5) is None
    got = objectives.recovery(samples, [], t0=T0, window_s=1.0, time_scale=0.5)
    assert got is not None and (got.measured_s, got.real_world_s) == (0.0, 0.0)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (1.439617, "1.4 s"),
        (0.04, "0 s"),
        (12.6, "13 s"),
        (125.2, "2 min 5 s"),
        (1800, "30 min"),
        (3780, "1 h 3 min"),
        (None, "not measured"),
    ],
)
def test_durations_are_rounded_for_people(seconds: float | None, text: str) -> None:
    assert objectives.human_duration(seconds) == text


def test_the_post_mortem_reports_real_seconds_with_the_scaled_equivalent(
    store: journal.Journal,
) -> None:
    outcome = _run_with_late_ack(store)
    got = store.get_run(outcome.run.id)
    assert got is not None and got.record.objectives is not None

    report = postmortem.build_postmortem(ev.load(store, got.id), drills.scenario())

    sentence = report.recovery.text
    assert "waiting for people, never scaled" in sentence
    assert "in a real outage, against an objective of 30 min" in sentence
    assert sentence.startswith("Recovery took ") and ": met." in sentence
    assert "an objective of 18 s" not in sentence  # the scaled target is not the objective
    assert report.recovery.manual_wait_s == got.record.objectives.manual_wait_s
