"""The runs service: plan, submit, drive, start, abort, ack, recover, list and show."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta
from pathlib import Path

import pytest

from drills import binding, store
from drills.service import runs, views
from orchestrator import engine, errors, events, journal, records, states
from tests.service import world

_S = states.RunState


@pytest.fixture
def files(tmp_path: Path) -> world.Files:
    return world.write(tmp_path)


def _request(files: world.Files, *sets: str) -> runs.DrillRequest:
    return runs.DrillRequest(
        target=str(files.scenario), environment=str(files.environment), sets=sets
    )


def _open(files: world.Files) -> journal.Journal:
    return store.open_store(files.config)


def test_prepare_binds_the_drill_and_loads_the_cmdb_its_environment_names(
    files: world.Files,
) -> None:
    prepared = runs.prepare(files.config, _request(files, "why=practice"))

    assert prepared.drill.scenario.metadata.name == "absence"
    assert prepared.drill.parameters["why"] == "practice"
    assert prepared.catalog is not None and prepared.catalog.users
    assert prepared.notes == ()


def test_plan_touches_nothing_and_its_view_is_the_plan_json_contract(files: world.Files) -> None:
    prepared = runs.prepare(files.config, _request(files))
    with _open(files) as opened:
        planned = runs.plan(files.config, opened, binding.make_registry(), prepared)
        assert opened.list_runs() == []

    view = planned.view()
    body = view.dump()
    assert view.scenario == "absence" and view.refused is False
    assert view.targets["absent"].refs == ["people person user:default/alice"]
    assert views.PlanView.model_validate_json(json.dumps(body)) == planned.view()
    assert world.TOKEN_DEFAULT not in json.dumps(planned.masking.json(body))


def test_submit_queues_a_pending_unclaimed_run_with_its_trigger(files: world.Files) -> None:
    prepared = runs.prepare(files.config, _request(files))
    trigger = engine.Trigger(kind=engine.TriggerKind.API, principal="alice")
    with _open(files) as opened:
        run = runs.submit(files.config, opened, binding.make_registry(), prepared, trigger=trigger)
        stored = opened.get_run(run.id)

    assert stored.state is _S.PENDING
    assert stored.owner == journal.UNCLAIMED
    assert stored.record.trigger == trigger
    assert stored.record.scenario_source == str(files.scenario)
    assert stored.record.parameters["token"] == "***"  # the secret never reaches the store


def test_start_drives_the_drill_to_the_end_here_and_writes_its_reports(
    files: world.Files, tmp_path: Path
) -> None:
    prepared = runs.prepare(files.config, _request(files))
    heard: list[str] = []
    with _open(files) as opened:
        driven = runs.start(
            files.config,
            opened,
            binding.make_registry(),
            prepared,
            trigger=engine.Trigger(principal="bob"),
            listener=lambda kind, _message, _data: heard.append(kind),
            junit_path=tmp_path / "extra.xml",
        )
        stored = opened.get_run(driven.run.id)

    assert driven.run.state is _S.COMPLETED and driven.exit_code == 0
    assert stored.owner == states.Owner.current()  # the process that drove it claimed it
    assert events.EventKind.STATE in heard
    assert driven.reports is not None and driven.reports.postmortem.is_file()
    assert driven.reports.junit == tmp_path / "extra.xml" and driven.reports.junit.is_file()


def test_drive_in_another_process_rebinds_the_drill_from_the_record(files: world.Files) -> None:
    prepared = runs.prepare(files.config, _request(files, "why=practice"))
    with _open(files) as opened:
        run = runs.submit(
            files.config, opened, binding.make_registry(), prepared, trigger=engine.Trigger()
        )
    with _open(files) as elsewhere:  # a runner that never saw the DrillInput
        driven = runs.drive(files.config, elsewhere, binding.make_registry(), run.id)

    assert driven.run.state is _S.COMPLETED, driven.run.reason
    assert driven.run.record.parameters["why"] == "practice"
    assert driven.reports is not None and driven.reports.postmortem.is_file()


def test_rebinding_proves_a_masked_secret_default_by_its_fingerprint(files: world.Files) -> None:
    prepared = runs.prepare(files.config, _request(files))
    with _open(files) as opened:
        run = runs.submit(
            files.config, opened, binding.make_registry(), prepared, trigger=engine.Trigger()
        )
        rebound = runs.rebind(opened.get_run(run.id))

    assert rebound.parameters["token"] == world.TOKEN_DEFAULT


def test_drive_elsewhere_refuses_a_secret_set_on_the_command_line(files: world.Files) -> None:
    prepared = runs.prepare(files.config, _request(files, "token=only-the-submitter-knows"))
    with _open(files) as opened:
        run = runs.submit(
            files.config, opened, binding.make_registry(), prepared, trigger=engine.Trigger()
        )
    with _open(files) as elsewhere, pytest.raises(runs.SecretUnavailable, match="'token'"):
        runs.drive(files.config, elsewhere, binding.make_registry(), run.id)
    with _open(files) as opened:
        assert opened.get_run(run.id).state is _S.PENDING  # nothing ran with `***`


def test_drive_refuses_a_run_that_already_ended(files: world.Files) -> None:
    prepared = runs.prepare(files.config, _request(files))
    with _open(files) as opened:
        driven = runs.start(
            files.config, opened, binding.make_registry(), prepared, trigger=engine.Trigger()
        )
        with pytest.raises(engine.NotClaimable, match="only a pending run"):
            runs.drive(files.config, opened, binding.make_registry(), driven.run.id)


def test_drive_of_a_crashed_run_finishes_it_by_recovery(files: world.Files) -> None:
    with _open(files) as opened:
        rid = world.crashed_run(opened, "crashed", environment_source=str(files.environment))
        running = opened.get_run(rid)
        crashed = states.transition(running, _S.CRASHED, reason="gone", at=running.updated_at)
        opened.save_run(crashed, expected_state=_S.INJECTING)
        driven = runs.drive(files.config, opened, binding.make_registry(), rid)

    assert driven.run.state is _S.FAILED
    assert driven.outcome.leftovers == ()
    assert driven.reports is not None and driven.reports.postmortem.is_file()


def test_abort_asks_the_driver_and_refuses_a_run_that_ended(files: world.Files) -> None:
    prepared = runs.prepare(files.config, _request(files))
    with _open(files) as opened:
        queued = runs.submit(
            files.config, opened, binding.make_registry(), prepared, trigger=engine.Trigger()
        )
        runs.abort(opened, queued.id, source="the API")
        [request] = opened.events(queued.id, kind=events.EventKind.ABORT_REQUEST)
        ended = runs.start(
            files.config, opened, binding.make_registry(), prepared, trigger=engine.Trigger()
        )
        with pytest.raises(runs.RunEnded, match="already ended"):
            runs.abort(opened, ended.run.id)

    assert request.message == "abort requested from the API"


def test_ack_refuses_a_step_that_is_not_waiting(files: world.Files) -> None:
    prepared = runs.prepare(files.config, _request(files))
    with _open(files) as opened:
        queued = runs.submit(
            files.config, opened, binding.make_registry(), prepared, trigger=engine.Trigger()
        )
        with pytest.raises(errors.AckRejected, match="no manual step 'task' waiting"):
            runs.ack(opened, queued.id, "task", by="alice", evidence="done")
        assert opened.events(queued.id, kind=events.EventKind.ACK) == []


def test_killswitch_engages_and_releases(files: world.Files) -> None:
    with _open(files) as opened:
        engaged = runs.killswitch(opened, engaged=True, by="alice", reason="incident")
        released = runs.killswitch(opened, engaged=False, by="alice", reason="over")

    assert engaged.engaged and engaged.by == "alice"
    assert not released.engaged


def test_recover_finishes_each_crashed_run_and_writes_its_reports(files: world.Files) -> None:
    with _open(files) as opened:
        rid = world.crashed_run(opened, "crashed", environment_source=str(files.environment))
        done = runs.recover(files.config, opened, binding.make_registry())
        again = runs.recover(files.config, opened, binding.make_registry())

    [item] = done
    assert (item.item.run_id, item.item.found_state, item.item.final_state) == (
        rid,
        _S.INJECTING,
        _S.FAILED,
    )
    assert item.item.reverted == 1
    assert item.reports is not None and item.reports.warning is None
    assert (files.config.reports_dir / rid / "postmortem.md").is_file()
    assert again == []


def test_recover_of_a_run_whose_environment_is_gone_hands_it_back_unfinished(
    files: world.Files, tmp_path: Path
) -> None:
    with _open(files) as opened:
        rid = world.crashed_run(opened, "lost", environment_source=str(tmp_path / "gone.yaml"))
        [first] = runs.recover(files.config, opened, binding.make_registry())
        [second] = runs.recover(files.config, opened, binding.make_registry())
        stored = opened.get_run(rid)

    assert first.reports is None and first.item.final_state is _S.CRASHED
    assert second.item.run_id == rid  # the same process may try again
    assert stored.owner == journal.UNCLAIMED


def _stored(
    opened: journal.Journal,
    run_id: str,
    *,
    minutes: int,
    state: states.RunState = _S.COMPLETED,
    verdict: states.Verdict | None = states.Verdict.HELD,
    trigger: engine.TriggerKind = engine.TriggerKind.MANUAL,
    service: str = "component:default/checkout",
) -> states.Run:
    at = world.LONG_AGO + timedelta(minutes=minutes)
    run = states.new_run(
        id=states.RunId(run_id),
        scenario="absence",
        environment="test",
        environment_source="test",
        owner=journal.UNCLAIMED,
        at=at,
        record=records.RunRecord(
            trigger=records.Trigger(kind=trigger, principal="p"),
            impact=(records.ImpactRow(ref=service),),
        ),
    )
    opened.create_run(run)
    final = dataclasses.replace(run, state=state, verdict=verdict)
    return opened.save_run(final, expected_state=_S.PENDING)


def test_list_filters_runs_and_pages_through_them_with_a_cursor(files: world.Files) -> None:
    with _open(files) as opened:
        for n in range(5):
            _stored(opened, f"held-{n}", minutes=n)
        _stored(opened, "deviated", minutes=10, verdict=states.Verdict.DEVIATED)
        _stored(opened, "scheduled", minutes=11, trigger=engine.TriggerKind.SCHEDULE)
        _stored(opened, "payments", minutes=12, service="component:default/payments")
        first = runs.list_runs(opened, limit=2)
        second = runs.list_runs(opened, limit=2, cursor=first.next_cursor)
        held = runs.list_runs(
            opened,
            where=runs.RunFilter(
                verdict=frozenset({states.Verdict.HELD}),
                trigger=engine.TriggerKind.MANUAL,
                service="component:default/checkout",
                since=world.LONG_AGO + timedelta(minutes=1),
                until=world.LONG_AGO + timedelta(minutes=4),
            ),
        )
        last = runs.list_runs(opened, limit=100)
        with pytest.raises(runs.BadCursor):
            runs.list_runs(opened, cursor="not-a-cursor")

    assert [r.id for r in first.runs] == ["payments", "scheduled"]
    assert [r.id for r in second.runs] == ["deviated", "held-4"]
    assert [r.id for r in held.runs] == ["held-3", "held-2", "held-1"]
    assert held.next_cursor is None and last.next_cursor is None and len(last.runs) == 8


def test_record_filters_page_through_batches_without_losing_or_repeating_a_run(
    files: world.Files,
) -> None:
    # 450 runs; every 7th was scheduled: more than one SQL batch (200) holds no full page
    with _open(files) as opened:
        for n in range(450):
            trigger = engine.TriggerKind.SCHEDULE if n % 7 == 0 else engine.TriggerKind.MANUAL
            _stored(opened, f"run-{n:03d}", minutes=n, trigger=trigger)
        where = runs.RunFilter(trigger=engine.TriggerKind.SCHEDULE)
        seen: list[str] = []
        cursor: str | None = None
        pages = 0
        while True:
            page = runs.list_runs(opened, where=where, limit=20, cursor=cursor)
            seen.extend(r.id for r in page.runs)
            pages += 1
            if page.next_cursor is None:
                break
            cursor = page.next_cursor

    expected = [f"run-{n:03d}" for n in reversed(range(450)) if n % 7 == 0]
    assert seen == expected
    assert pages == 4  # 65 runs, 20 a page


def test_show_returns_the_run_with_its_timeline_and_journal(files: world.Files) -> None:
    prepared = runs.prepare(files.config, _request(files))
    with _open(files) as opened:
        driven = runs.start(
            files.config, opened, binding.make_registry(), prepared, trigger=engine.Trigger()
        )
        detail = runs.show(opened, driven.run.id)
        with pytest.raises(errors.JournalError, match="no run"):
            runs.show(opened, states.RunId("missing"))

    assert detail.run.id == driven.run.id
    assert [e.action for e in detail.entries] == ["people.mark-unavailable"]
    view = detail.view()
    body = view.dump()
    assert body["state"] == "completed" and view.journal[0].state.value == "reverted"
    assert views.RunDetailView.model_validate_json(json.dumps(body)) == detail.view()
