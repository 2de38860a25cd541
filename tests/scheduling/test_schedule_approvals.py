"""Schedules for protected environments: approved once (two-person rule), not per fire.

Real stores (SQLite and PostgreSQL), the bundled weekly game-day Drill bound to a protected
copy of the staging Environment; fires are made by `claiming.fire_due` at a chosen `now`.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import fastapi
import pytest
from fastapi import testclient
from typer import testing

from drills import settings as settings_mod
from drills.api import config as api_config
from drills.api import deps, problems
from drills.api.routes import schedules as schedule_routes
from drills.commands import schedules as schedule_commands
from drills.scheduling import claiming, model
from drills.service import audit, auth, documents, runs, schedules
from orchestrator import engine, events, journal, states
from orchestrator.providers import builtin
from tests.api import conftest as api_fixtures

EXAMPLES = Path(__file__).resolve().parents[2] / "drills" / "examples"
WEDNESDAY = dt.datetime(2026, 12, 2, 12, tzinfo=dt.UTC)
FIRST = dt.datetime(2026, 12, 8, 9, tzinfo=dt.UTC)  # Tuesday 10:00 Berlin


def _protected(folder: Path, *, required: int) -> Path:
    text = (EXAMPLES / "staging.environment.yaml").read_text(encoding="utf-8")
    text = text.replace("protected: false", "protected: true")
    text = text.replace("required: 0", f"required: {required}")
    # Still named staging: the bundled scenario may run only in sandbox and staging (a fire
    # of another environment is skipped by that guardrail at claim time).
    text = text.replace(
        "../../sandbox/data/catalog-info.yaml",
        str((EXAMPLES / "../../sandbox/data/catalog-info.yaml").resolve()),
    )
    path = folder / "vault.environment.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _drill(folder: Path, *, cron: str = "0 10 * * tue", extra: str = "") -> Path:
    text = (EXAMPLES / "weekly-gameday.drill.yaml").read_text(encoding="utf-8")
    text = text.replace("./staging.environment.yaml", "./vault.environment.yaml")
    text = text.replace('cron: "0 10 * * tue"', f'cron: "{cron}"' + extra)
    path = folder / "weekly-gameday.drill.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def config(tmp_path: Path, store_url: str) -> settings_mod.Settings:
    """On SQLite, then on PostgreSQL (the CLI's commands open the same store)."""
    return settings_mod.Settings(
        data_dir=tmp_path / "data",
        database_url=store_url,
        reports_dir=tmp_path / "reports",
    )


@pytest.fixture
def store(config: settings_mod.Settings) -> Iterator[journal.Journal]:
    with journal.open_store(config.database_url) as opened:
        yield opened


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    found = tmp_path / "drills"
    found.mkdir()
    _protected(found, required=2)
    _drill(found)
    return found


def _fire(store: journal.Journal, at: dt.datetime) -> list[model.Fire]:
    return claiming.fire_due(store, at + dt.timedelta(seconds=1))


def _due(store: journal.Journal, name: str = "weekly-gameday") -> dt.datetime:
    due = schedules.get(store, name).next_due
    assert due is not None
    return due


# ---- the service ------------------------------------------------------------------------------


def test_a_protected_schedule_awaits_approval_and_its_fires_are_skipped_not_lost(
    config: settings_mod.Settings, store: journal.Journal, folder: Path
) -> None:
    schedule = schedules.apply(
        config, store, folder / "weekly-gameday.drill.yaml", owner="alice", now=WEDNESDAY
    )
    view = schedules.view(store, schedule)
    assert view.awaiting_approval is True
    assert view.approval is not None
    assert (view.approval.required, view.approval.requester, view.approval.missing) == (
        2,
        "alice",
        2,
    )

    [fire] = _fire(store, _due(store))

    assert fire.outcome is schedules.Outcome.SKIPPED and fire.run_id is None
    assert fire.reason.startswith("awaiting-approval: 2 more approval(s)")
    assert "other than alice" in fire.reason
    assert store.list_runs(limit=None) == []


def test_the_drills_own_recorded_approvals_do_not_count_for_a_schedule(
    config: settings_mod.Settings, store: journal.Journal, folder: Path
) -> None:
    text = (folder / "weekly-gameday.drill.yaml").read_text(encoding="utf-8")
    text = text.replace(
        '  approvals:\n    - by: user:default/alice\n      at: "2026-11-20T09:30:00Z"\n',
        "  approvals:\n    - by: user:default/bob\n      at: '2026-11-20T09:30:00Z'\n"
        "    - by: user:default/carol\n      at: '2026-11-20T09:31:00Z'\n",
    )
    (folder / "weekly-gameday.drill.yaml").write_text(text, encoding="utf-8")

    schedules.apply(
        config, store, folder / "weekly-gameday.drill.yaml", owner="alice", now=WEDNESDAY
    )

    assert schedules.view(store, schedules.get(store, "weekly-gameday")).awaiting_approval
    [fire] = _fire(store, _due(store))
    assert fire.reason.startswith("awaiting-approval: ")


def test_the_one_who_applied_may_not_approve_in_any_spelling(
    config: settings_mod.Settings, store: journal.Journal, folder: Path
) -> None:
    schedules.apply(
        config, store, folder / "weekly-gameday.drill.yaml", owner="alice", now=WEDNESDAY
    )

    with pytest.raises(auth.Forbidden, match="two-person rule"):
        schedules.approve(store, "weekly-gameday", by="user:default/alice")

    assert schedules.view(store, schedules.get(store, "weekly-gameday")).approval is not None
    _, state = schedules.approval_of(store, "weekly-gameday")
    assert state.approvers == ()


def test_two_distinct_approvers_let_every_fire_start_with_them_as_the_runs_approvals(
    config: settings_mod.Settings, store: journal.Journal, folder: Path
) -> None:
    schedules.apply(
        config, store, folder / "weekly-gameday.drill.yaml", owner="alice", now=WEDNESDAY
    )
    once = schedules.approve(store, "weekly-gameday", by="bob", comment="reviewed")
    again = schedules.approve(store, "weekly-gameday", by="user:default/bob")  # still one
    assert once.awaiting_approval and again.awaiting_approval
    assert again.approval is not None and again.approval.missing == 1

    done = schedules.approve(store, "weekly-gameday", by="carol")

    assert done.awaiting_approval is False
    assert done.approval is not None and done.approval.approved_by == ["bob", "carol"]
    first = _due(store)
    [fire] = _fire(store, first)
    assert fire.outcome is schedules.Outcome.STARTED
    run = store.get_run(states.RunId(fire.run_id or ""))
    assert run.record.approvals == ("bob", "carol")
    # The next week's fire needs no new approval: the approval covers the schedule.
    engine.move_run(store, run, states.RunState.ABORTED, reason="test: make room")
    [second] = _fire(store, _due(store))
    assert second.outcome is schedules.Outcome.STARTED


def test_a_changed_spec_needs_a_new_approval_and_the_same_spec_keeps_it(
    config: settings_mod.Settings, store: journal.Journal, folder: Path
) -> None:
    path = folder / "weekly-gameday.drill.yaml"
    schedules.apply(config, store, path, owner="alice", now=WEDNESDAY)
    schedules.approve(store, "weekly-gameday", by="bob")
    approved = schedules.approve(store, "weekly-gameday", by="carol")
    assert approved.approval is not None
    old_hash = approved.approval.spec_hash

    same = schedules.apply(config, store, path, owner="dave", now=WEDNESDAY)
    assert schedules.view(store, same).awaiting_approval is False
    _, kept = schedules.approval_of(store, "weekly-gameday")
    assert kept.requester == "alice"  # who asked for this spec

    _drill(folder, cron="0 11 * * tue")
    changed = schedules.apply(config, store, path, owner="dave", now=WEDNESDAY)
    view = schedules.view(store, changed)
    assert view.awaiting_approval is True
    assert view.approval is not None
    assert view.approval.spec_hash != old_hash and view.approval.requester == "dave"
    assert view.approval.approved_by == []
    with pytest.raises(schedules.SpecMismatch, match="applied again with changes"):
        schedules.approve(store, "weekly-gameday", by="bob", spec_hash=old_hash)
    with pytest.raises(auth.Forbidden):
        schedules.approve(store, "weekly-gameday", by="dave")
    [fire] = _fire(store, _due(store))
    assert fire.reason.startswith("awaiting-approval: ")


def test_a_rejected_schedule_skips_its_fires_naming_who_and_refuses_approvals(
    config: settings_mod.Settings, store: journal.Journal, folder: Path
) -> None:
    schedules.apply(
        config, store, folder / "weekly-gameday.drill.yaml", owner="alice", now=WEDNESDAY
    )
    schedules.approve(store, "weekly-gameday", by="bob")

    rejected = schedules.reject(store, "weekly-gameday", by="carol", reason="not in peak  week")

    assert rejected.approval is not None and rejected.approval.rejected_by == "carol"
    assert rejected.awaiting_approval is True
    [fire] = _fire(store, _due(store))
    assert fire.reason.startswith("awaiting-approval: rejected by carol: not in peak week")
    with pytest.raises(schedules.ScheduleNotAwaitingApproval, match="was rejected by carol"):
        schedules.approve(store, "weekly-gameday", by="dave")


def test_an_unprotected_schedule_needs_no_approval_and_refuses_one(
    config: settings_mod.Settings, store: journal.Journal
) -> None:
    schedules.apply(
        config, store, EXAMPLES / "weekly-gameday.drill.yaml", owner="alice", now=WEDNESDAY
    )

    assert schedules.view(store, schedules.get(store, "weekly-gameday")).approval is None
    with pytest.raises(schedules.ScheduleNotAwaitingApproval, match="is not protected"):
        schedules.approve(store, "weekly-gameday", by="bob")
    with pytest.raises(schedules.UnknownSchedule):
        schedules.approve(store, "nope", by="bob")


def test_the_approval_ends_with_the_schedule_and_with_its_deletion(
    config: settings_mod.Settings, store: journal.Journal, folder: Path
) -> None:
    path = folder / "weekly-gameday.drill.yaml"
    _drill(folder, extra="\n    maxRuns: 1")
    schedules.apply(config, store, path, owner="alice", now=WEDNESDAY)
    schedules.approve(store, "weekly-gameday", by="bob")
    schedules.approve(store, "weekly-gameday", by="carol")
    [fire] = _fire(store, _due(store))
    assert fire.outcome is schedules.Outcome.STARTED

    ended = schedules.view(store, schedules.get(store, "weekly-gameday"))
    assert ended.approval is not None
    assert (ended.approval.ended, ended.approval.approved) == (True, False)
    with pytest.raises(schedules.ScheduleNotAwaitingApproval, match="has ended"):
        schedules.approve(store, "weekly-gameday", by="dave")

    schedules.delete(store, "weekly-gameday")
    _drill(folder)
    fresh = schedules.apply(config, store, path, owner="alice", now=WEDNESDAY)
    view = schedules.view(store, fresh)
    assert view.awaiting_approval is True
    assert view.approval is not None and view.approval.approved_by == []


# ---- the CLI ----------------------------------------------------------------------------------


def _cli(config: settings_mod.Settings, user: str, *args: str) -> testing.Result:
    env = {"STORMDRILL_DATABASE_URL": config.database_url, "USER": user, "COLUMNS": "200"}
    return testing.CliRunner().invoke(schedule_commands.app, list(args), env=env)


def test_cli_approve_and_reject_follow_the_two_person_rule_and_are_audited(
    config: settings_mod.Settings, store: journal.Journal, folder: Path
) -> None:
    applied = _cli(config, "alice", "apply", str(folder / "weekly-gameday.drill.yaml"))
    assert applied.exit_code == 0, applied.output
    assert "awaits 2 approval(s) by someone other than alice" in applied.output

    own = _cli(config, "alice", "approve", "weekly-gameday")
    assert own.exit_code == engine.ExitCode.INVALID
    assert "alice applied it and may not approve it" in own.output

    bob = _cli(config, "bob", "approve", "weekly-gameday", "--comment", "ok")
    assert bob.exit_code == 0, bob.output
    assert "1 more approval(s) needed" in bob.output
    carol = _cli(config, "carol", "approve", "weekly-gameday", "--format", "json")
    assert carol.exit_code == 0, carol.output
    shown = json.loads(carol.stdout)
    assert shown["awaitingApproval"] is False
    assert shown["approval"]["approvedBy"] == ["bob", "carol"]

    listed = json.loads(_cli(config, "bob", "list", "--format", "json").stdout)
    assert listed[0]["approval"]["approved"] is True

    blank = _cli(config, "dave", "reject", "weekly-gameday", "--reason", "  ")
    assert blank.exit_code == engine.ExitCode.INVALID and "--reason" in blank.output
    dave = _cli(config, "dave", "reject", "weekly-gameday", "--reason", "peak week")
    assert dave.exit_code == 0, dave.output
    table = _cli(config, "dave", "list")
    assert "rejected by dave" in table.output

    entries = audit.entries(store, where=audit.EntryFilter(action="schedule."), oldest_first=True)
    assert [(e.action, e.principal, e.principal_kind) for e in entries] == [
        ("schedule.apply", "alice", "local"),
        ("schedule.approve", "bob", "local"),
        ("schedule.approve", "carol", "local"),
        ("schedule.reject", "dave", "local"),
    ]


# ---- the API ----------------------------------------------------------------------------------


def _app(
    config: settings_mod.Settings, store: journal.Journal, folder: Path, principal: object
) -> fastapi.FastAPI:
    app = fastapi.FastAPI()
    problems.install(app)
    app.include_router(schedule_routes.router, prefix="/api/v1")
    app.state.store = store
    app.state.settings = config
    app.state.api_settings = api_config.ApiSettings(drill_dirs=(folder,))
    app.dependency_overrides[deps.get_principal] = lambda: principal
    return app


def _who(name: str, *roles: auth.Role) -> auth.Principal:
    return auth.Principal(name=name, roles=frozenset(roles))


def test_api_approve_and_reject_need_the_approver_role_and_a_second_person(
    config: settings_mod.Settings, store: journal.Journal, folder: Path
) -> None:
    olga = _who("olga", auth.Role.OPERATOR, auth.Role.APPROVER)
    with testclient.TestClient(_app(config, store, folder, olga)) as client:
        created = client.post("/api/v1/schedules", json={"drill": "weekly-gameday"})
        assert created.status_code == 201, created.text
        body = created.json()
        assert body["awaitingApproval"] is True and body["approval"]["requester"] == "olga"
        own = client.post("/api/v1/schedules/weekly-gameday/approve", json={})
        assert api_fixtures.problem_of(own)["status"] == 403
    with testclient.TestClient(_app(config, store, folder, _who("oscar", auth.Role.OPERATOR))) as c:
        refused = c.post("/api/v1/schedules/weekly-gameday/approve", json={})
        assert api_fixtures.problem_of(refused)["status"] == 403
    spec = body["approval"]["specHash"]
    for name in ("ann", "ben"):
        approver = _who(name, auth.Role.APPROVER)
        with testclient.TestClient(_app(config, store, folder, approver)) as client:
            wrong = client.post(
                "/api/v1/schedules/weekly-gameday/approve", json={"specHash": "0" * 64}
            )
            assert api_fixtures.problem_of(wrong)["status"] == 409
            done = client.post(
                "/api/v1/schedules/weekly-gameday/approve",
                json={"comment": "fine", "specHash": spec},
            )
            assert done.status_code == 200, done.text
    assert done.json()["awaitingApproval"] is False
    assert done.json()["approval"]["approvedBy"] == ["ann", "ben"]
    with testclient.TestClient(_app(config, store, folder, _who("ann", auth.Role.APPROVER))) as c:
        empty = c.post("/api/v1/schedules/weekly-gameday/reject", json={"reason": " "})
        assert api_fixtures.problem_of(empty)["status"] == 422
        rejected = c.post("/api/v1/schedules/weekly-gameday/reject", json={"reason": "freeze"})
        assert rejected.status_code == 200, rejected.text
        assert rejected.json()["approval"]["rejectedBy"] == "ann"
        late = c.post("/api/v1/schedules/weekly-gameday/approve", json={})
        assert api_fixtures.problem_of(late)["status"] == 409
        missing = c.post("/api/v1/schedules/nope/approve", json={})
        assert api_fixtures.problem_of(missing)["status"] == 404


# ---- end to end: the engine's approvals guardrail -----------------------------------------

LOCKED_DRILL = """\
apiVersion: stormdrill.dev/v1
kind: Drill
metadata:
  name: locked-absence
spec:
  scenario: absence-cover
  environment: locked
  parameters:
    person: user:default/alice
  schedule:
    every: 30s
  approvals:
    - by: user:default/mallory
      at: "2026-11-20T09:30:00Z"
"""


def test_a_fire_of_an_approved_schedule_passes_the_engines_approvals_guardrail(
    tmp_path: Path,
) -> None:
    world = api_fixtures.build_world(tmp_path)
    (tmp_path / "data").mkdir()
    (world.drills / "locked-absence.drill.yaml").write_text(LOCKED_DRILL, encoding="utf-8")
    folders = documents.Folders(
        scenarios=(world.scenarios,), environments=(world.environments,), drills=(world.drills,)
    )
    config = world.settings
    with journal.open_store(config.database_url) as store:
        applied = schedules.apply(
            config,
            store,
            world.drills / "locked-absence.drill.yaml",
            owner="alice",
            # The run is driven for real: its start (the fire time) must be now, or the
            # drill's maxDuration deadline, counted from it on the real clock, has passed.
            now=dt.datetime.now(dt.UTC),
            folders=folders,
        )
        assert schedules.view(store, applied).awaiting_approval  # mallory's does not count
        [skipped] = _fire(store, _due(store, "locked-absence"))
        assert skipped.reason.startswith("awaiting-approval: 1 more approval(s)")

        schedules.approve(store, "locked-absence", by="user:default/bob")
        [fire] = _fire(store, _due(store, "locked-absence"))
        assert fire.outcome is schedules.Outcome.STARTED
        run_id = states.RunId(fire.run_id or "")
        assert store.get_run(run_id).record.approvals == ("user:default/bob",)

        stop = threading.Event()
        driving = threading.Thread(
            target=runs.drive,
            args=(config, store, builtin.registry_with_builtins(), run_id),
            kwargs={"drill": runs.rebind(store.get_run(run_id)), "stop": stop},
        )
        driving.start()
        try:
            while not store.events(run_id, kind=events.EventKind.MANUAL):
                assert not store.get_run(run_id).terminal, store.get_run(run_id).reason
                stop.wait(0.1)
        finally:
            stop.set()  # the drill got past its guardrails: stop it, it rolls back
            driving.join(timeout=120)
        guardrails = store.events(run_id, kind=events.EventKind.GUARDRAIL)
        approvals_line = next(e for e in guardrails if e.data.get("rule") == "approvals")
        assert approvals_line.data.get("ok") is True
        assert "bob" in approvals_line.message
