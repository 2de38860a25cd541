"""Running a game day's drills from the game day: people-only drills (no cluster) submitted
and driven through the application layer, on a real SQLite store (and PostgreSQL for the
race): the slot runs once, gates and roles are enforced, the verdict comes from the run
and opens the next `auto` gate, and a key-person drill's absent person is absent in the
game day too."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from drills import binding, settings
from drills.service import gamedays, killswitches, runs
from orchestrator import journal, mutations, registry, states
from tests.gamedays import drilling, support
from tests.gamedays.drilling import ERIN
from tests.gamedays.support import ALICE, BOB, DAVE

_GO = gamedays.Decision.GO
_NO_GO = gamedays.Decision.NO_GO


@pytest.fixture
def world(tmp_path: Path) -> Path:
    folder = tmp_path / "gameday"
    drilling.write_world(folder)
    return folder


@pytest.fixture
def store(tmp_path: Path) -> Iterator[journal.Journal]:
    with journal.open_store(f"sqlite:///{tmp_path / 'store.db'}") as opened:
        yield opened


@pytest.fixture
def config(tmp_path: Path, store: journal.Journal) -> settings.Settings:
    return drilling.settings_for(tmp_path, store.url)


@pytest.fixture
def reg() -> registry.Registry:
    return binding.make_registry()


def _day(
    store: journal.Journal,
    world: Path,
    *,
    drills: tuple[tuple[str, str], ...] = (("away-dave", "auto"), ("away-frank", "auto")),
) -> gamedays.GameDay:
    path = world / "day.gameday.yaml"
    path.write_text(drilling.document(drills=drills))
    created = gamedays.create(store, path, by="lead")
    return gamedays.start(store, created.id, now=support.IN_WINDOW)  # 10:30 in its window


def _run(
    store: journal.Journal,
    config: settings.Settings,
    reg: registry.Registry,
    day: gamedays.GameDay,
    *,
    position: int = 1,
    by: str = BOB,
) -> gamedays.DrivenDrill:
    started = gamedays.run_drill(store, day.id, position=position, by=by, config=config, reg=reg)
    return gamedays.drive_drill(config, store, reg, started=started)


def test_a_slot_drill_runs_end_to_end_and_its_verdict_opens_the_next_auto_gate(
    store: journal.Journal, world: Path, config: settings.Settings, reg: registry.Registry
) -> None:
    day = _day(store, world)
    assert day.slot(1).ref == str(world / "away-dave.scenario.yaml")  # stored absolute
    assert day.slot(1).environment == str(world / "test.environment.yaml")

    started = gamedays.run_drill(store, day.name, position=1, by=BOB, config=config, reg=reg)

    assert started.run.state is states.RunState.PENDING
    assert started.day.slot(1).run_id == started.run.id  # recorded before it is driven
    trigger = store.get_run(started.run.id).record.trigger
    assert trigger is not None and trigger.kind.value == "gameday"
    assert trigger.principal == f"gameday:{day.id}" and BOB in trigger.reason

    done = gamedays.drive_drill(config, store, reg, started=started)

    assert done.driven.run.state is states.RunState.COMPLETED
    assert done.driven.run.verdict is states.Verdict.HELD
    assert done.slot.verdict is states.Verdict.HELD and done.slot.run_id == started.run.id
    assert (done.day.slot(2).decision, done.day.slot(2).decided_by) == (_GO, gamedays.AUTO)
    assert done.driven.reports is not None and done.driven.reports.written.markdown.is_file()


def test_a_second_run_of_a_slot_is_refused_once_it_has_a_run(
    store: journal.Journal, world: Path, config: settings.Settings, reg: registry.Registry
) -> None:
    day = _day(store, world)
    done = _run(store, config, reg, day)

    with pytest.raises(gamedays.GameDayError, match="started already as run"):
        gamedays.run_drill(store, day.id, position=1, by=ALICE, config=config, reg=reg)
    assert [r.id for r in store.list_runs(limit=None)] == [done.driven.run.id]


def test_two_concurrent_runs_of_one_slot_start_one_run(
    store_url: str, tmp_path: Path, world: Path, reg: registry.Registry
) -> None:
    with journal.open_store(store_url) as shared:
        config = drilling.settings_for(tmp_path, store_url)
        day = _day(shared, world)
        barrier = threading.Barrier(2)
        started: list[gamedays.StartedDrill] = []
        refused: list[str] = []

        def attempt(person: str) -> None:
            barrier.wait()
            try:
                started.append(
                    gamedays.run_drill(
                        shared, day.id, position=1, by=person, config=config, reg=reg
                    )
                )
            except gamedays.GameDayError as exc:
                refused.append(str(exc))

        threads = [threading.Thread(target=attempt, args=(p,)) for p in (BOB, ALICE)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert len(started) == 1 and len(refused) == 1, refused
        assert "drill 1" in refused[0] and "run" in refused[0]
        assert [r.id for r in shared.list_runs(limit=None)] == [started[0].run.id]
        assert gamedays.get(shared, day.id).slot(1).run_id == started[0].run.id


def test_the_reservation_is_decided_at_the_database_even_after_a_stale_check(
    store: journal.Journal, world: Path
) -> None:
    day = _day(store, world)
    stale = day.slot(1)  # what both callers read before either reserved
    at = day.updated_at

    gamedays._reserve(store, day, stale, run_id="run-first", at=at)
    with pytest.raises(gamedays.GameDayError, match="started meanwhile as run run-first"):
        gamedays._reserve(store, day, stale, run_id="run-second", at=at)

    assert gamedays.get(store, day.id).slot(1).run_id == "run-first"


def test_a_drill_whose_gate_did_not_say_go_is_refused_and_nothing_is_written(
    store: journal.Journal, world: Path, config: settings.Settings, reg: registry.Registry
) -> None:
    day = _day(store, world, drills=(("away-frank", "auto"), ("away-dave", "manual")))
    _run(store, config, reg, day)

    with pytest.raises(gamedays.GameDayError, match="drill 2's gate is undecided"):
        gamedays.run_drill(store, day.id, position=2, by=BOB, config=config, reg=reg)
    gamedays.gate(store, day.id, position=2, decision=_NO_GO, by=ALICE)
    with pytest.raises(gamedays.GameDayError, match="drill 2's gate said no-go"):
        gamedays.run_drill(store, day.id, position=2, by=BOB, config=config, reg=reg)

    assert len(store.list_runs(limit=None)) == 1
    assert gamedays.get(store, day.id).slot(2).run_id is None


def test_only_a_present_operator_or_the_facilitator_may_run_a_drill(
    store: journal.Journal, world: Path, config: settings.Settings, reg: registry.Registry
) -> None:
    day = _day(store, world)
    gamedays.mark_absent(store, day.id, person=BOB)

    with pytest.raises(gamedays.GameDayError, match="marked absent"):
        gamedays.run_drill(store, day.id, position=1, by=BOB, config=config, reg=reg)
    with pytest.raises(gamedays.GameDayError, match="may not run drills; an operator"):
        gamedays.run_drill(store, day.id, position=1, by=ERIN, config=config, reg=reg)
    with pytest.raises(gamedays.GameDayError, match="not a participant"):
        gamedays.run_drill(
            store, day.id, position=1, by="user:default/frank", config=config, reg=reg
        )
    assert store.list_runs(limit=None) == []

    started = gamedays.run_drill(store, day.id, position=1, by="alice", config=config, reg=reg)
    trigger = started.run.record.trigger
    assert trigger is not None and trigger.reason.endswith(f"run by {ALICE}")


def test_a_drill_that_is_not_running_or_does_not_exist_is_refused(
    store: journal.Journal, world: Path, config: settings.Settings, reg: registry.Registry
) -> None:
    path = world / "day.gameday.yaml"
    path.write_text(drilling.document())
    planned = gamedays.create(store, path, by="lead")

    with pytest.raises(gamedays.GameDayError, match="that is planned"):
        gamedays.run_drill(store, planned.id, position=1, by=BOB, config=config, reg=reg)
    gamedays.start(store, planned.id, now=support.IN_WINDOW)
    with pytest.raises(gamedays.GameDayError, match="no drill at position 7"):
        gamedays.run_drill(store, planned.id, position=7, by=BOB, config=config, reg=reg)
    with pytest.raises(gamedays.UnknownGameDay):
        gamedays.run_drill(store, "no-such-day", position=1, by=BOB, config=config, reg=reg)


def test_a_verdict_of_a_run_driven_elsewhere_is_synced_and_decides_the_next_auto_gate(
    store: journal.Journal, world: Path, config: settings.Settings, reg: registry.Registry
) -> None:
    day = _day(store, world)
    started = gamedays.run_drill(store, day.id, position=1, by=BOB, config=config, reg=reg)
    runs.drive(config, store, reg, started.run.id)  # another claimant: rebinds from the record

    unsynced = gamedays.get(store, day.id)
    assert unsynced.slot(1).verdict is None and unsynced.slot(2).decision is None

    synced = gamedays.sync_results(store, day.id)
    again = gamedays.sync_results(store, day.id)

    assert synced.slot(1).verdict is states.Verdict.HELD
    assert (synced.slot(2).decision, synced.slot(2).decided_by) == (_GO, gamedays.AUTO)
    assert again.drills == synced.drills


def test_a_run_refused_by_its_guardrails_gives_inconclusive_and_the_next_auto_gate_no_go(
    store: journal.Journal, world: Path, config: settings.Settings, reg: registry.Registry
) -> None:
    day = _day(store, world, drills=(("refused", "auto"), ("away-frank", "auto")))

    done = _run(store, config, reg, day)

    assert done.driven.run.state is states.RunState.ABORTED
    assert done.slot.verdict is states.Verdict.INCONCLUSIVE
    assert (done.day.slot(2).decision, done.day.slot(2).decided_by) == (_NO_GO, gamedays.AUTO)


def test_a_submit_refused_by_a_kill_switch_frees_the_slot_again(
    store: journal.Journal, world: Path, config: settings.Settings, reg: registry.Registry
) -> None:
    day = _day(store, world)
    runs.engage_killswitch(store, environment="test", by="ops", reason="incident")

    with pytest.raises(killswitches.Engaged, match="kill switch"):
        gamedays.run_drill(store, day.id, position=1, by=BOB, config=config, reg=reg)

    assert gamedays.get(store, day.id).slot(1).run_id is None
    assert store.list_runs(limit=None) == []
    runs.release_killswitch(store, environment="test", by="ops")
    assert _run(store, config, reg, day).slot.verdict is states.Verdict.HELD


def test_a_drill_whose_files_went_away_is_refused_naming_the_drill(
    store: journal.Journal, world: Path, config: settings.Settings, reg: registry.Registry
) -> None:
    day = _day(store, world)
    (world / "away-dave.scenario.yaml").unlink()

    with pytest.raises(gamedays.GameDayError, match=r"drill 1 \(.*away-dave.*\) cannot be bound"):
        gamedays.run_drill(store, day.id, position=1, by=BOB, config=config, reg=reg)
    assert gamedays.get(store, day.id).slot(1).run_id is None


def test_a_recorded_result_is_refused_for_a_drill_that_runs_as_a_run(
    store: journal.Journal, world: Path, config: settings.Settings, reg: registry.Registry
) -> None:
    day = _day(store, world)
    started = gamedays.run_drill(store, day.id, position=1, by=BOB, config=config, reg=reg)

    with pytest.raises(gamedays.GameDayError, match=f"runs as run {started.run.id}"):
        gamedays.set_drill_result(
            store, day.id, position=1, run_id=None, verdict=states.Verdict.HELD
        )
    assert gamedays.get(store, day.id).slot(1).verdict is None


def test_the_person_a_key_person_drill_marks_absent_is_absent_in_the_game_day_at_once(
    store: journal.Journal, world: Path, config: settings.Settings, reg: registry.Registry
) -> None:
    day = _day(store, world, drills=(("away-dave", "auto"), ("away-frank", "approval")))
    started = gamedays.run_drill(store, day.id, position=1, by=BOB, config=config, reg=reg)
    seen: list[bool] = []

    def listen(kind: str, _message: str, data: Mapping[str, mutations.JsonValue]) -> None:
        if kind == "mutation" and data.get("state") == "applied":
            dave = gamedays.get(store, day.id).participant(DAVE)
            seen.append(dave is not None and dave.absent)

    done = gamedays.drive_drill(config, store, reg, started=started, listener=listen)

    assert seen == [True]  # absent while the drill still ran, not only after it
    dave = done.day.participant(DAVE)
    assert dave is not None and dave.absent
    assert [p.person for p in done.day.participants if p.absent] == [DAVE]
    with pytest.raises(gamedays.GameDayError, match="marked absent in this game day"):
        gamedays.gate(store, day.id, position=2, decision=_GO, by=DAVE)
    with pytest.raises(gamedays.GameDayError, match="marked absent"):
        gamedays.note(store, day.id, author=DAVE, text="I am back")


def test_a_participant_named_in_short_form_is_matched_to_the_person_the_drill_took_out(
    store: journal.Journal, world: Path, config: settings.Settings, reg: registry.Registry
) -> None:
    day = _day(store, world, drills=(("away-carol", "auto"), ("away-frank", "auto")))

    done = _run(store, config, reg, day)
    carol = done.day.participant("carol")

    assert carol is not None and carol.absent
    with pytest.raises(gamedays.GameDayError, match="marked absent"):
        gamedays.run_drill(store, day.id, position=2, by="carol", config=config, reg=reg)


def test_a_drill_taking_out_someone_who_takes_no_part_marks_nobody_absent(
    store: journal.Journal, world: Path, config: settings.Settings, reg: registry.Registry
) -> None:
    day = _day(store, world, drills=(("away-frank", "auto"), ("away-dave", "auto")))

    done = _run(store, config, reg, day)

    assert not any(p.absent for p in done.day.participants)
    assert store.entries(done.driven.run.id)[0].target.name == "user:default/frank"


def test_an_absence_made_by_a_run_driven_elsewhere_is_recorded_when_the_game_day_syncs(
    store: journal.Journal, world: Path, config: settings.Settings, reg: registry.Registry
) -> None:
    day = _day(store, world)
    started = gamedays.run_drill(store, day.id, position=1, by=BOB, config=config, reg=reg)
    runs.drive(config, store, reg, started.run.id)

    dave_before = gamedays.get(store, day.id).participant(DAVE)
    synced = gamedays.sync_results(store, day.id)
    dave_after = synced.participant(DAVE)

    assert dave_before is not None and not dave_before.absent
    assert dave_after is not None and dave_after.absent
    assert gamedays.sync_absences(store, day.id) == ()  # once
