"""The two-person rule in the service: requests, approvals, expiry, plan binding, rejection.

On SQLite and on the real PostgreSQL (a schema of its own per test).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from drills import binding
from drills import store as store_mod
from drills.api import config as api_config
from drills.service import approvals, auth, runs
from orchestrator import engine, events, journal, planning, states
from tests.api import protected_world

_S = states.RunState
T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def world(tmp_path: Path) -> protected_world.World:
    return protected_world.write(tmp_path, required=2)


@pytest.fixture
def store(world: protected_world.World, store_url: str) -> Iterator[journal.Journal]:
    """The store, on SQLite and on the real PostgreSQL in turn."""
    with store_mod.open_store(dataclasses.replace(world.config, database_url=store_url)) as opened:
        yield opened


def _awaiting(
    world: protected_world.World, store: journal.Journal, *, ttl_s: float = 3600.0
) -> states.Run:
    run, plan = protected_world.submit(world, store, by="alice")
    request = approvals.protect(
        store,
        run,
        plan=plan,
        requester="alice",
        config=api_config.ApiSettings(approval_ttl_s=ttl_s),
    )
    assert request is not None
    return run


def test_a_protected_environment_needs_at_least_one_approver_and_its_stated_number(
    tmp_path: Path,
) -> None:
    def needed(**kwargs: object) -> int:
        folder = tmp_path / str(len(list(tmp_path.iterdir())))
        folder.mkdir()
        made = protected_world.write(folder, **kwargs)  # type: ignore[arg-type]
        return approvals.required(runs.prepare(made.config, made.request()).drill.environment)

    assert needed(required=0) == 1
    assert needed(required=3) == 3
    assert needed(required=0, protected=False) == 0


def test_an_unprotected_run_opens_no_request_and_is_ready_with_no_approvers(
    tmp_path: Path,
) -> None:
    world = protected_world.write(tmp_path, protected=False, required=0, name="test")
    with store_mod.open_store(world.config) as store:
        run, plan = protected_world.submit(world, store, by="alice")
        assert approvals.protect(store, run, plan=plan, requester="alice") is None
        assert approvals.awaiting_approval(store, run) is False
        assert approvals.ready(store, run.id, plan_hash=approvals.plan_hash(plan)) is True
        assert approvals.approvers(store, run.id) == ()
        with pytest.raises(approvals.NotAwaitingApproval, match="not protected"):
            approvals.approve(store, run.id, by="bob")


def test_a_submitted_protected_run_awaits_approval_on_its_timeline(
    world: protected_world.World, store: journal.Journal
) -> None:
    run = _awaiting(world, store)

    assert approvals.awaiting_approval(store, store.get_run(run.id)) is True
    found = approvals.status(store, run.id)
    assert found is not None and found.request.required == 2 and found.missing == 2
    lines = store.events(run.id, kind=events.EventKind.APPROVAL)
    assert [e.data["decision"] for e in lines] == ["requested"]
    assert "other than alice" in lines[0].message


def test_self_approval_is_refused_and_records_nothing(
    world: protected_world.World, store: journal.Journal
) -> None:
    run = _awaiting(world, store)

    with pytest.raises(auth.Forbidden, match="two-person rule"):
        approvals.approve(store, run.id, by="user:default/alice")  # alice, spelt otherwise
    assert approvals.decisions(store, run.id) == ()


def test_two_distinct_approvers_make_it_ready_and_one_person_twice_does_not(
    world: protected_world.World, store: journal.Journal
) -> None:
    run = _awaiting(world, store)
    digest = approvals.status(store, run.id).request.plan_hash  # type: ignore[union-attr]

    approvals.approve(store, run.id, by="bob", comment="looks fine", now=T0)
    again = approvals.approve(store, run.id, by="user:default/bob", now=T0)
    assert again.approvers == ("bob",) and again.awaiting is True
    assert not approvals.ready(store, run.id, plan_hash=digest, now=T0)

    last = approvals.approve(store, run.id, by="carol", now=T0)
    assert last.awaiting is False and last.missing == 0
    assert approvals.ready(store, run.id, plan_hash=digest, now=T0)
    assert approvals.approvers(store, run.id, now=T0) == ("bob", "carol")
    assert approvals.awaiting_approval(store, store.get_run(run.id), now=T0) is False


def test_an_expired_approval_does_not_count(
    world: protected_world.World, store: journal.Journal
) -> None:
    run = _awaiting(world, store, ttl_s=600)
    digest = approvals.status(store, run.id).request.plan_hash  # type: ignore[union-attr]
    approvals.approve(store, run.id, by="bob", now=T0)
    approvals.approve(store, run.id, by="carol", now=T0 + timedelta(minutes=5))

    assert approvals.ready(store, run.id, plan_hash=digest, now=T0 + timedelta(minutes=9))
    later = T0 + timedelta(minutes=11)  # bob's expired, carol's still counts
    assert not approvals.ready(store, run.id, plan_hash=digest, now=later)
    assert approvals.approvers(store, run.id, now=later) == ("carol",)
    status = approvals.status(store, run.id, now=later)
    assert status is not None and status.awaiting and status.missing == 1


def test_the_plan_hash_is_stable_across_plans_and_changes_with_the_targets(
    world: protected_world.World, store: journal.Journal
) -> None:
    first = approvals.plan_hash(protected_world.plan_of(world, store))
    assert approvals.plan_hash(protected_world.plan_of(world, store)) == first

    world.set_person("user:default/dave")
    assert approvals.plan_hash(protected_world.plan_of(world, store)) != first


def test_the_plan_hash_masks_secret_values(
    world: protected_world.World, store: journal.Journal
) -> None:
    canonical = approvals.canonical_plan(protected_world.plan_of(world, store))

    assert protected_world.SECRET not in str(canonical)
    assert canonical["parameters"] == {"token": "***", "why": "drill"}


def test_a_changed_plan_invalidates_the_approvals_until_it_is_approved_again(
    world: protected_world.World, store: journal.Journal
) -> None:
    run = _awaiting(world, store)
    approvals.approve(store, run.id, by="bob")
    approvals.approve(store, run.id, by="carol")
    config = api_config.ApiSettings()
    world.set_person("user:default/dave")  # the world changed before the start

    gate = approvals.gate(store, run, plan=protected_world.plan_of(world, store), config=config)

    assert gate.outcome is approvals.GateOutcome.WAIT and "changed" in gate.reason
    assert approvals.awaiting_approval(store, store.get_run(run.id)) is True
    assert approvals.approvers(store, run.id) == ()
    with pytest.raises(approvals.PlanMismatch, match="changed"):
        old = approvals.decisions(store, run.id)[0].plan_hash
        approvals.approve(store, run.id, by="bob", plan_hash=old)
    approvals.approve(store, run.id, by="bob")
    approvals.approve(store, run.id, by="carol")
    again = approvals.gate(store, run, plan=protected_world.plan_of(world, store), config=config)
    assert again.outcome is approvals.GateOutcome.GO
    assert again.approvers == ("bob", "carol")


def test_an_approved_run_starts_with_its_approvers_and_completes(
    world: protected_world.World, store: journal.Journal
) -> None:
    run = _awaiting(world, store)
    config = api_config.ApiSettings()
    plan = protected_world.plan_of(world, store)
    assert approvals.gate(store, run, plan=plan, config=config).outcome is (
        approvals.GateOutcome.WAIT
    )
    approvals.approve(store, run.id, by="bob")
    approvals.approve(store, run.id, by="carol")

    gate = approvals.gate(store, run, plan=plan, config=config)
    assert gate.outcome is approvals.GateOutcome.GO
    prepared = runs.prepare(world.config, world.request())
    drill = dataclasses.replace(prepared.drill, approvals=gate.approvers)
    driven = runs.drive(
        world.config, store, binding.make_registry(), run.id, drill=drill, catalog=prepared.catalog
    )

    assert driven.run.state is _S.COMPLETED, driven.run.reason
    verdicts = [e.message for e in store.events(run.id, kind=events.EventKind.GUARDRAIL)]
    assert any(
        "approvals: ok approved by user:default/bob, user:default/carol" in v for v in verdicts
    )
    with pytest.raises(approvals.NotAwaitingApproval, match="completed"):
        approvals.approve(store, run.id, by="dave")


def test_without_the_approvals_the_engine_itself_refuses_the_protected_run(
    world: protected_world.World, store: journal.Journal
) -> None:
    run = _awaiting(world, store)
    prepared = runs.prepare(world.config, world.request())

    driven = runs.drive(
        world.config,
        store,
        binding.make_registry(),
        run.id,
        drill=prepared.drill,
        catalog=prepared.catalog,
    )

    assert driven.run.state is _S.ABORTED and "needs 2 approval(s)" in driven.run.reason


def test_rejection_ends_the_run_aborted_with_the_reason(
    world: protected_world.World, store: journal.Journal
) -> None:
    run = _awaiting(world, store)
    approvals.approve(store, run.id, by="bob")

    ended = approvals.reject(store, run.id, by="carol", reason="  not during the sale  ")

    assert ended.state is _S.ABORTED and ended.finished_at is not None
    assert ended.abort_reason == "rejected by carol: not during the sale"
    assert ended.record.refused is True
    assert store.get_run(run.id).state is _S.ABORTED
    assert approvals.awaiting_approval(store, ended) is False
    assert not approvals.ready(
        store, run.id, plan_hash=approvals.decisions(store, run.id)[0].plan_hash
    )
    kinds = [e.data.get("decision") for e in store.events(run.id, kind=events.EventKind.APPROVAL)]
    assert kinds == ["requested", "approve", "reject"]
    with pytest.raises(approvals.NotAwaitingApproval):
        approvals.reject(store, run.id, by="dave", reason="again")
    with pytest.raises(approvals.NotAwaitingApproval):
        approvals.approve(store, run.id, by="dave")


def test_approving_an_unknown_run_names_it(store: journal.Journal) -> None:
    with pytest.raises(runs.UnknownRun, match="nope"):
        approvals.approve(store, states.RunId("nope"), by="bob")


def test_a_request_opened_twice_keeps_the_first(
    world: protected_world.World, store: journal.Journal
) -> None:
    run = _awaiting(world, store)
    first = approvals.request(store, run.id)

    again = approvals.open_request(store, run, requester="mallory", plan_hash="0" * 64)

    assert again == first and again is not None and again.requester == "alice"
    assert again.required == 2  # read from the run's Environment file


def test_a_protected_run_nobody_asked_approval_for_gets_a_request_at_the_gate_and_waits(
    world: protected_world.World, store: journal.Journal
) -> None:
    run, plan = protected_world.submit(world, store, by="alice")  # queued, never protected

    gate = approvals.gate(store, run, plan=plan, config=api_config.ApiSettings())

    assert gate.outcome is approvals.GateOutcome.WAIT
    opened = approvals.request(store, run.id)
    assert opened is not None and opened.requester == "alice" and opened.required == 2
    assert opened.plan_hash == approvals.plan_hash(plan)
    assert approvals.awaiting_approval(store, store.get_run(run.id)) is True


def _queued_with(
    world: protected_world.World,
    store: journal.Journal,
    *,
    kind: engine.TriggerKind,
    approvers: tuple[str, ...],
) -> tuple[states.Run, planning.Plan]:
    """A queued run of `kind` whose record carries `approvers` (as a schedule's fire does)."""
    prepared = runs.prepare(world.config, world.request())
    plan = protected_world.plan_of(world, store)
    run = runs.submit(
        world.config,
        store,
        binding.make_registry(),
        prepared,
        trigger=engine.Trigger(kind=kind, principal="schedule:weekly"),
    )
    carried = dataclasses.replace(run, record=dataclasses.replace(run.record, approvals=approvers))
    return store.save_run(carried, expected_state=states.RunState.PENDING), plan


def test_a_schedules_fire_carrying_enough_approvers_goes_without_a_request_of_its_own(
    world: protected_world.World, store: journal.Journal
) -> None:
    run, plan = _queued_with(
        world, store, kind=engine.TriggerKind.SCHEDULE, approvers=("bob", "carol", "bob")
    )

    gate = approvals.gate(store, run, plan=plan, config=api_config.ApiSettings())

    assert gate.outcome is approvals.GateOutcome.GO
    assert gate.approvers == ("bob", "carol")
    assert approvals.request(store, run.id) is None


@pytest.mark.parametrize(
    ("kind", "approvers"),
    [
        (engine.TriggerKind.SCHEDULE, ("bob", "bob")),  # one distinct approver of two needed
        (engine.TriggerKind.API, ("bob", "carol")),  # only a schedule's record is trusted
    ],
)
def test_a_run_without_a_schedules_full_approval_gets_a_request_and_waits(
    world: protected_world.World,
    store: journal.Journal,
    kind: engine.TriggerKind,
    approvers: tuple[str, ...],
) -> None:
    run, plan = _queued_with(world, store, kind=kind, approvers=approvers)

    gate = approvals.gate(store, run, plan=plan, config=api_config.ApiSettings())

    assert gate.outcome is approvals.GateOutcome.WAIT
    assert approvals.request(store, run.id) is not None
