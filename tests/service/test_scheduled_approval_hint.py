"""A protected Environment's approvals refusal names the fix that works for how the run came:
`--approved-by` for a run a person started, `stormdrill schedules approve NAME` for a fire."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from drills import binding, settings
from drills.scheduling import guarding
from drills.service import catalogs
from orchestrator import engine, guardrails, journal, records, states
from tests.engine_guardrails import factories as f
from tests.service import world


def _protected_drill(tmp_path: Path) -> binding.Bound:
    files = world.write(tmp_path)
    text = files.environment.read_text(encoding="utf-8")
    files.environment.write_text(
        text.replace("spec:\n", "spec:\n  protected: true\n", 1), encoding="utf-8"
    )
    return binding.bind(str(files.scenario), env=str(files.environment), sets=[])


def _run(tmp_path: Path, trigger: engine.Trigger) -> tuple[states.Run, list[str]]:
    bound = _protected_drill(tmp_path)
    catalog = catalogs.catalog_for(settings.Settings.from_env({}), bound.drill.environment, ())
    with journal.open_store(f"sqlite:///{tmp_path / 'store.db'}") as store:
        eng = engine.Engine(store=store, reg=binding.make_registry(), catalog=catalog)
        outcome = eng.run(bound.drill, trigger=trigger)
        refusals = [
            e.message for e in store.events(outcome.run.id, kind="guardrail") if not e.data["ok"]
        ]
    return outcome.run, refusals


def test_a_scheduled_run_refused_for_approvals_is_told_to_approve_its_schedule(
    tmp_path: Path,
) -> None:
    trigger = engine.Trigger(
        kind=engine.TriggerKind.SCHEDULE,
        principal="schedule:nightly-absence",
        reason="fire at 2026-12-05T02:00:00+00:00 (owner rita)",
    )

    run, refusals = _run(tmp_path, trigger)

    assert run.state is states.RunState.ABORTED and run.record.refused
    assert "needs 1 approval(s); nobody approved" in run.reason
    assert "stormdrill schedules approve nightly-absence" in run.reason
    assert "--approved-by" not in run.reason
    assert len(refusals) == 1
    assert "approvals: REFUSED" in refusals[0]
    assert "stormdrill schedules approve nightly-absence" in refusals[0]


def test_a_run_a_person_started_refused_for_approvals_is_told_to_pass_approved_by(
    tmp_path: Path,
) -> None:
    trigger = engine.Trigger(kind=engine.TriggerKind.MANUAL, principal="rita")

    run, refusals = _run(tmp_path, trigger)

    assert run.state is states.RunState.ABORTED and run.record.refused
    assert "(record approvals on the Drill or pass --approved-by)" in run.reason
    assert "schedules approve" not in run.reason
    assert len(refusals) == 1 and "--approved-by" in refusals[0]


def test_the_schedule_of_a_run_comes_from_its_trigger_and_only_a_schedules() -> None:
    schedule = records.TriggerKind.SCHEDULE
    assert guardrails.schedule_of(records.Trigger(kind=schedule, principal="schedule:x")) == "x"
    assert guardrails.schedule_of(records.Trigger(kind=schedule, principal="")) == "NAME"
    assert guardrails.schedule_of(records.Trigger(kind=records.TriggerKind.GAMEDAY)) is None
    assert guardrails.schedule_of(records.Trigger(kind=records.TriggerKind.API)) is None
    assert guardrails.schedule_of(None) is None


def test_the_approvals_rule_names_the_schedule_only_when_judging_a_fire() -> None:
    env = f.environment(protected=True, approvals={"required": 2})

    [fire] = guardrails.refusals(guardrails.check_approvals(env, ["alice"], schedule="weekly"))
    [manual] = guardrails.refusals(guardrails.check_approvals(env, ["alice"]))
    passed = guardrails.check_approvals(env, ["alice", "bob"], schedule="weekly")

    assert fire.message.endswith(
        "only user:default/alice approved"
        " (approve the schedule: stormdrill schedules approve weekly)"
    )
    assert manual.message.endswith("(record approvals on the Drill or pass --approved-by)")
    assert guardrails.refusals(passed) == []


def test_a_fire_the_claim_loop_skips_for_approvals_names_the_schedule_to_approve(
    tmp_path: Path,
) -> None:
    bound = _protected_drill(tmp_path)
    facts = guarding.Facts(scenario=bound.drill.scenario, environment=bound.drill.environment)
    at = datetime(2026, 12, 5, 2, tzinfo=UTC)

    reason = guarding.skip_reason(facts, at=at, approvals=(), schedule="nightly-absence")
    unnamed = guarding.skip_reason(facts, at=at, approvals=())

    assert reason is not None and reason.startswith("guardrail: ")
    assert "stormdrill schedules approve nightly-absence" in reason
    assert "--approved-by" not in reason
    assert unnamed is not None and "--approved-by" in unnamed
