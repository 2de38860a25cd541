"""Manual steps: who may act (never the absent), acknowledgement vs timeout, the ack command."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import pytest
from typer import testing

from drills import cli
from orchestrator import engine, errors, journal, mutations, states
from orchestrator import manual as manual_rules
from orchestrator.providers.people import errors as people_errors
from tests.people import drills


@pytest.fixture
def store(sqlite_url: str) -> Iterator[journal.Journal]:
    with journal.open_store(sqlite_url) as opened:
        yield opened


def _ack(store: journal.Journal, run_id: str, *, by: str, step: str = "task") -> None:
    store.append_event(
        states.RunId(run_id),
        kind="ack",
        message=f"{step} acknowledged by {by}",
        data={"step": step, "by": by, "evidence": "restored with the runbook", "automated": False},
    )


def test_the_remaining_on_call_acknowledges_and_the_drill_completes(store: journal.Journal) -> None:
    def listen(kind: str, _message: str, data: Mapping[str, mutations.JsonValue]) -> None:
        if kind == "manual":
            run_id = str(store.list_runs(limit=1)[0].id)
            manual_rules.check_ack(
                store.events(states.RunId(run_id)), run_id=run_id, step="task", by="bob"
            )
            _ack(store, run_id, by="bob")

    outcome = drills.make_engine(store).run(drills.drill_input(drills.scenario()), listener=listen)

    manual = drills.manual_data(store, outcome)
    assert outcome.exit_code == engine.ExitCode.HELD
    assert manual["eligible"] == ["user:default/bob", "user:default/carol"]
    assert manual["absent"] == ["user:default/alice"]
    assert not store.events(outcome.run.id, kind="finding")


def test_absent_and_outside_people_are_refused_and_the_step_times_out(
    store: journal.Journal,
) -> None:
    refusals: list[str] = []

    def listen(kind: str, _message: str, _data: Mapping[str, mutations.JsonValue]) -> None:
        if kind != "manual":
            return
        run_id = str(store.list_runs(limit=1)[0].id)
        events = store.events(states.RunId(run_id))
        for who in ("alice", "user:default/dave"):
            with pytest.raises(errors.AckRejected) as caught:
                manual_rules.check_ack(events, run_id=run_id, step="task", by=who)
            refusals.append(str(caught.value))
        _ack(store, run_id, by="dave")  # written past the check (as a buggy client might)

    outcome = drills.make_engine(store).run(drills.drill_input(drills.scenario()), listener=listen)

    rules = [e.data.get("rule") for e in store.events(outcome.run.id, kind="finding")]
    assert "alice is marked unavailable" in refusals[0] and "bob, carol" in refusals[0]
    assert "may not acknowledge" in refusals[1] and "--by" in refusals[1]
    assert rules == ["ack-by-ineligible", "manual-timeout"]
    assert outcome.run.state is states.RunState.ABORTED
    assert outcome.exit_code == engine.ExitCode.ABORTED
    assert "manual step task timed out" in (outcome.run.abort_reason or "")


def test_a_step_assigned_to_the_absent_person_has_nobody_and_times_out_at_once(
    store: journal.Journal,
) -> None:
    scenario = drills.scenario(assignee="user:default/alice", role="any", on_timeout="continue")

    outcome = drills.make_engine(store, auto_ack_s=0.0).run(drills.drill_input(scenario))

    findings = store.events(outcome.run.id, kind="finding")
    assert [e.data.get("rule") for e in findings] == ["no-eligible-assignee", "manual-timeout"]
    assert "is absent" in findings[0].message
    assert drills.manual_data(store, outcome)["eligible"] == []
    assert not store.events(outcome.run.id, kind="ack")
    assert outcome.run.state is states.RunState.COMPLETED


def test_auto_ack_is_recorded_as_automated(store: journal.Journal) -> None:
    outcome = drills.make_engine(store, auto_ack_s=0.0).run(drills.drill_input(drills.scenario()))

    [ack] = store.events(outcome.run.id, kind="ack")
    assert ack.data["automated"] is True and ack.data["by"] == "stormdrill --auto-ack"
    assert outcome.exit_code == engine.ExitCode.HELD


def test_the_ack_command_refuses_an_absent_person_with_a_clear_message(
    store: journal.Journal, sqlite_url: str
) -> None:
    outcome = drills.make_engine(store, auto_ack_s=0.0).run(drills.drill_input(drills.scenario()))
    runner = testing.CliRunner()
    env = {"STORMDRILL_DATABASE_URL": sqlite_url}

    refused = runner.invoke(
        cli.app, ["ack", outcome.run.id, "task", "--evidence", "done", "--by", "alice"], env=env
    )
    unknown_step = runner.invoke(
        cli.app, ["ack", outcome.run.id, "nope", "--evidence", "done", "--by", "bob"], env=env
    )
    accepted = runner.invoke(
        cli.app, ["ack", outcome.run.id, "task", "--evidence", "done", "--by", "carol"], env=env
    )

    assert refused.exit_code == engine.ExitCode.INVALID
    assert "alice is marked unavailable" in refused.output
    assert unknown_step.exit_code == engine.ExitCode.INVALID
    assert "no manual step 'nope'" in unknown_step.output
    assert accepted.exit_code == 0


def test_absence_of_an_unknown_person_names_the_ref_and_suggests_the_closest(
    store: journal.Journal,
) -> None:
    eng = drills.make_engine(store)

    with pytest.raises(people_errors.UnknownPerson) as caught:
        eng.plan(drills.drill_input(drills.scenario(absent="user:default/alcie")))

    message = str(caught.value)
    assert "spec.targets.absent" in message and "'user:default/alcie'" in message
    assert "did you mean 'user:default/alice'" in message
