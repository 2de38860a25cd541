"""Collecting: what the store records becomes deliveries, routed, once per delivery id."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import pydantic
import pytest
import sqlalchemy as sa

from drills import tables_outbox, tables_schedules
from drills.service import approvals
from drills.service.notify import notices, outbox, routing, sources
from orchestrator import engine, events, journal, states
from tests.notifications import conftest as world

ROUTED = """\
sinks:
  - {name: paging, type: webhook, url: "http://127.0.0.1:9/page"}
  - {name: payments, type: slack, url: "http://127.0.0.1:9/slack"}
  - {name: everything, type: webhook, url: "http://127.0.0.1:9/all"}
routes:
  - match: {kinds: [rollback-failed]}
    sinks: [paging]
  - match: {teams: [payments], minSeverity: warning}
    sinks: [payments]
  - match: {services: [checkout], environments: [staging]}
    sinks: [everything]
"""


def _kinds_by_sink(store: journal.Journal) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for row in outbox.deliveries(store):
        found.setdefault(row.sink, []).append(row.kind.value)
    return {sink: sorted(kinds) for sink, kinds in found.items()}


def test_each_recorded_happening_becomes_its_kind_of_notice(store: journal.Journal) -> None:
    config = routing.Config(
        sinks={
            notices.SinkName("all"): routing.Sink(
                notices.SinkName("all"),
                routing.SinkType.WEBHOOK,
                url=pydantic.SecretStr("http://127.0.0.1:9"),
            )
        },
        routes=(routing.Route(sinks=(notices.SinkName("all"),)),),
    )
    held = world.finish(store, world.inject(store, world.start(store, world.new_run(store))))
    tripped = world.inject(store, world.start(store, world.new_run(store)))
    world.trip(store, tripped)
    world.fail_rollback(store, tripped)
    aborted = world.new_run(store)
    world.start(store, aborted)
    engine.move_run(
        store,
        store.get_run(aborted.id),
        states.RunState.ABORTED,
        reason="refused by guardrails: window",
    )

    collected = sources.collect(store, "test", config, now=world.T0, from_start=True)

    by_run: dict[str | None, list[tuple[str, str]]] = {}
    for row in outbox.deliveries(store):
        by_run.setdefault(row.run_id, []).append((row.kind.value, row.severity.value))
    assert sorted(by_run[held.id]) == [("finished", "info"), ("started", "info")]
    assert sorted(by_run[tripped.id]) == [
        ("guardrail-tripped", "warning"),
        ("rollback-failed", "critical"),
        ("started", "info"),
    ]
    assert sorted(by_run[aborted.id]) == [("aborted", "warning"), ("started", "info")]
    assert collected.notices == 7 and len(collected.deliveries) == 7
    [aborted_row] = [r for r in outbox.deliveries(store) if r.kind is notices.Kind.ABORTED]
    assert world.details(aborted_row)["reason"] == "refused by guardrails: window"


def test_rollback_failures_alone_reach_the_paging_sink(
    store: journal.Journal, tmp_path: Path
) -> None:
    config = world.load(tmp_path, ROUTED)
    run = world.inject(store, world.start(store, world.new_run(store)))
    world.trip(store, run)
    world.fail_rollback(store, run)
    other_team = world.start(
        store,
        world.new_run(store, owner="group:default/search", service="component:default/search"),
    )
    world.trip(store, world.inject(store, other_team))

    sources.collect(store, "test", config, now=world.T0, from_start=True)

    kinds = _kinds_by_sink(store)
    assert kinds["paging"] == ["rollback-failed"]
    assert kinds["payments"] == ["guardrail-tripped", "rollback-failed"]  # warning and above
    assert kinds["everything"] == ["guardrail-tripped", "rollback-failed", "started"]
    assert all(r.run_id == run.id for r in outbox.deliveries(store) if r.sink != "everything")


def test_collecting_again_from_the_start_adds_no_second_delivery(
    store: journal.Journal, tmp_path: Path
) -> None:
    config = world.load(tmp_path, ROUTED)
    run = world.inject(store, world.start(store, world.new_run(store)))
    world.fail_rollback(store, run)

    first = sources.collect(store, "test", config, now=world.T0, from_start=True)
    again = sources.collect(store, "test", config, now=world.T0)
    # as after a crash that lost the cursor: every event is read again
    with store.transaction(write=True) as conn:
        conn.execute(tables_outbox.cursors_table.delete())
    reread = sources.collect(store, "test", config, now=world.T0, from_start=True)

    assert len(first.deliveries) == 4
    assert again.deliveries == () and again.notices == 0
    assert reread.deliveries == () and reread.notices == first.notices
    ids = [row.delivery_id for row in outbox.deliveries(store)]
    assert sorted(ids) == sorted(first.deliveries)


def test_a_first_collection_starts_at_the_end_of_the_timeline(
    store: journal.Journal, tmp_path: Path
) -> None:
    config = world.load(tmp_path, ROUTED)
    world.fail_rollback(store, world.inject(store, world.start(store, world.new_run(store))))

    first = sources.collect(store, "test", config, now=world.T0)
    world.fail_rollback(store, world.inject(store, world.start(store, world.new_run(store))))
    second = sources.collect(store, "test", config, now=world.T0)

    assert first.deliveries == ()
    assert len(second.deliveries) == 4


def test_a_run_awaiting_approval_is_announced_with_what_it_needs(
    store: journal.Journal, tmp_path: Path
) -> None:
    config = world.load(tmp_path, ROUTED)
    run = world.new_run(store)
    approvals.open_request(store, run, requester="alice", plan_hash="h1", required=2, now=world.T0)
    approvals.replanned(store, run.id, plan_hash="h2", now=world.T0)

    sources.collect(store, "test", config, now=world.T0, from_start=True)

    rows = [r for r in outbox.deliveries(store) if r.sink == "everything"]
    assert [r.kind for r in rows] == [notices.Kind.AWAITING_APPROVAL] * 2
    details = world.details(rows[0])
    assert (details["requester"], details["required"]) == ("alice", 2)


def test_schedule_fires_skipped_and_upcoming_are_announced_once(
    store: journal.Journal, tmp_path: Path
) -> None:
    config = world.load(
        tmp_path,
        ROUTED.replace("match: {services: [checkout], environments: [staging]}", "match: {}"),
    )
    schedules, fires = tables_schedules.schedules_table, tables_schedules.fires_table
    soon = world.later(10 * 60)
    with store.transaction(write=True) as conn:
        for sid, next_due, paused in (
            ("s1", soon, False),
            ("s2", world.later(3600), False),
            ("s3", soon, True),
        ):
            conn.execute(
                schedules.insert().values(
                    id=sid,
                    name=f"weekly-{sid}",
                    drill={"environment": "staging"},
                    trigger={"cron": "0 10 * * 2"},
                    timezone="Europe/Berlin",
                    owner="alice",
                    paused=paused,
                    next_nominal=next_due,
                    next_due=next_due,
                    runs_started=0,
                    created_at=world.T0,
                    updated_at=world.T0,
                )
            )
        conn.execute(
            fires.insert().values(
                schedule_id="s2",
                nominal_fire_time=world.later(-60),
                actual_time=world.later(-60),
                outcome="skipped",
                reason="blackout: release freeze",
                recorded_at=world.later(-60),
            )
        )
        conn.execute(
            fires.insert().values(
                schedule_id="s2",
                nominal_fire_time=world.later(-120),
                actual_time=world.later(-120),
                outcome="started",
                run_id=None,
                reason="",
                recorded_at=world.later(-120),
            )
        )

    first = sources.collect(store, "test", config, now=world.T0, from_start=True)
    second = sources.collect(store, "test", config, now=world.later(60))

    everything = [r for r in outbox.deliveries(store) if r.sink == "everything"]
    rows = {r.kind: r for r in everything}
    assert len(everything) == 2  # s2 is not due soon, s3 is paused, a started fire is quiet
    assert set(rows) == {notices.Kind.UPCOMING, notices.Kind.FIRE_SKIPPED}
    assert world.details(rows[notices.Kind.UPCOMING])["schedule"] == "weekly-s1"
    assert "release freeze" in str(rows[notices.Kind.FIRE_SKIPPED].payload["summary"])
    assert first.skipped == {} and second.deliveries == ()


def test_sources_whose_tables_are_absent_are_skipped_and_named(
    store_url: str, tmp_path: Path
) -> None:
    config = world.load(tmp_path, ROUTED)
    present = [
        t for t in journal.metadata.sorted_tables if t.name not in ("schedule_fires", "schedules")
    ]
    engine = sa.create_engine(journal.normalise_url(store_url))
    journal.metadata.create_all(engine, tables=present)
    engine.dispose()
    with journal.open_store(store_url, create_tables=False) as store:
        world.fail_rollback(store, world.inject(store, world.start(store, world.new_run(store))))
        collected = sources.collect(store, "test", config, now=world.T0, from_start=True)

    assert set(collected.skipped) == {"fires", "upcoming", "schedule-approvals"}
    assert "schedule" in collected.skipped["fires"]
    assert "schedules" in collected.skipped["schedule-approvals"]
    assert len(collected.deliveries) == 4


@pytest.mark.postgres
def test_an_event_committed_late_is_collected_and_the_cursor_waits_for_it(
    postgres_url: str, tmp_path: Path
) -> None:
    config = world.load(tmp_path, ROUTED)
    with journal.open_store(postgres_url) as store:
        run = world.inject(store, world.start(store, world.new_run(store)))
        sources.collect(store, "test", config, now=world.T0, from_start=True)
        # A transaction takes a seq and stays open while a later event commits.
        slow = store.engine.connect()
        slow_tx = slow.begin()
        slow.execute(
            journal.events_table.insert().values(
                run_id=run.id,
                at=world.T0,
                kind=events.EventKind.ROLLBACK_FAILED.value,
                message="rollback failed",
                data={"leftovers": [], "by": "engine"},
            )
        )
        world.trip(store, run)
        during = sources.collect(store, "test", config, now=world.later(1))
        slow_tx.commit()
        slow.close()
        after = sources.collect(store, "test", config, now=world.later(2))
        with store.transaction() as conn:
            position = conn.execute(
                sa.select(tables_outbox.cursors_table.c.position).where(
                    tables_outbox.cursors_table.c.name == "test/events"
                )
            ).scalar_one()
            top = conn.execute(sa.select(sa.func.max(journal.events_table.c.seq))).scalar_one()

    assert {notices.Kind.GUARDRAIL_TRIPPED} == {
        r.kind for r in outbox.deliveries(store) if r.delivery_id in during.deliveries
    }
    assert {r.kind for r in outbox.deliveries(store) if r.delivery_id in after.deliveries} == {
        notices.Kind.ROLLBACK_FAILED
    }
    assert position == top


def test_a_gap_that_never_fills_is_stepped_over_after_the_grace() -> None:
    start = sources.CursorState(10)
    held = sources._advance(start, [11, 13, 14], now=world.T0, grace=timedelta(seconds=60))
    still = sources._advance(held, [13, 14], now=world.later(59), grace=timedelta(seconds=60))
    over = sources._advance(still, [13, 14], now=world.later(61), grace=timedelta(seconds=60))

    assert held == sources.CursorState(11, world.T0)
    assert still == held
    assert over == sources.CursorState(14, None)


def test_delivery_ids_differ_per_sink_and_never_per_reading() -> None:
    a = notices.delivery_id("event:7", notices.SinkName("paging"))
    assert a == notices.delivery_id("event:7", notices.SinkName("paging"))
    assert a != notices.delivery_id("event:7", notices.SinkName("chat"))
    assert a != notices.delivery_id("event:8", notices.SinkName("paging"))
    assert a.startswith("dlv-") and len(a) == 36
    assert uuid.UUID(a[4:])  # 32 hex digits
