"""`GET /api/v1/runs/{id}/events`: Server-Sent Events over a live uvicorn, read with httpx.

The run is real: a people-only drill (a person marked unavailable, then a manual step
someone must acknowledge) driven by the engine in a thread against the same SQLite store
the server reads. The test connects while the run waits on the manual step, replays from
`Last-Event-ID`, acknowledges the step, and follows the live events to the terminal state.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import fastapi
import httpx
import pytest

from drills import binding
from drills import settings as settings_mod
from drills import store as store_mod
from drills.api import app as app_mod
from drills.api import config as api_config
from drills.api import deps
from drills.api.routes import events as event_routes
from drills.service import auth, runs, views
from drills.service import events as event_streams
from orchestrator import engine, journal, records, states
from sandbox import stack
from tests.api import live

SCENARIO = """\
apiVersion: stormdrill.dev/v1
kind: Scenario
metadata:
  name: absence-cover
spec:
  description: Alice is away; someone of team-payments covers for her.
  failureMode: key-person
  hypothesis: The team covers.
  targets:
    absent:
      provider: people
      kind: person
      selector:
        refs: [user:default/alice]
      blastRadius:
        max: 1
  guardrails:
    environments: [test]
    maxDuration: 1000h
  steps:
    - name: mark
      action: people.mark-unavailable
      target: absent
    - name: cover
      manual:
        instructions: Restore payments without alice.
        assignee: group:default/team-payments
        role: any
        timeout: 500h
        evidence: [text]
      onTimeout: abort
  objectives:
    rto: 30m
"""

ENVIRONMENT = """\
apiVersion: stormdrill.dev/v1
kind: Environment
metadata:
  name: test
spec:
  timeScale: 0.01
  cmdb:
    backstage: [{catalog}]
"""

ADMIN = auth.Principal(name="test-admin", roles=frozenset({auth.Role.ADMIN}))
FAST = event_streams.Follow(poll_s=0.02, heartbeat_s=15.0, settle_polls=2)
WAIT_S = 60.0


@dataclasses.dataclass(frozen=True)
class Drill:
    request: runs.DrillRequest
    config: settings_mod.Settings


@pytest.fixture
def drill(tmp_path: Path) -> Drill:
    scenario = tmp_path / "absence-cover.yaml"
    scenario.write_text(SCENARIO, encoding="utf-8")
    environment = tmp_path / "test.environment.yaml"
    environment.write_text(
        ENVIRONMENT.format(catalog=stack.catalog_path().parent), encoding="utf-8"
    )
    config = settings_mod.Settings(
        data_dir=tmp_path / "data",
        database_url=f"sqlite:///{tmp_path / 'data' / 'stormdrill.db'}",
        reports_dir=tmp_path / "reports",
    )
    return Drill(
        request=runs.DrillRequest(target=str(scenario), environment=str(environment)),
        config=config,
    )


def _app(config: settings_mod.Settings, follow: event_streams.Follow = FAST) -> fastapi.FastAPI:
    app = app_mod.create_app(
        config, api_config.ApiSettings(drive_runs=False, recover_on_start=False)
    )
    app.dependency_overrides[deps.get_principal] = lambda: ADMIN
    app.dependency_overrides[event_routes.follow_options] = lambda: follow
    return app


@pytest.fixture
def store(drill: Drill) -> Iterator[journal.Journal]:
    with store_mod.open_store(drill.config) as opened:
        yield opened


@dataclasses.dataclass(frozen=True)
class Frame:
    seq: int
    kind: str
    view: views.EventView


def _frames(lines: Iterator[str]) -> Iterator[Frame | str]:
    """Parse `text/event-stream` lines: a `Frame` per event, the text of each comment."""
    fields: dict[str, str] = {}
    for line in lines:
        if line.startswith(":"):
            yield line[1:].strip()
            continue
        if line:
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")
            continue
        if fields:
            yield Frame(
                seq=int(fields["id"]),
                kind=fields["event"],
                view=views.EventView.model_validate_json(fields["data"]),
            )
            fields = {}


def _wait_for(what: str, check: object) -> None:
    assert callable(check)
    deadline = time.monotonic() + WAIT_S
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.05)


def _manual_event(store: journal.Journal, run_id: states.RunId) -> journal.Event | None:
    found = store.events(run_id, kind="manual")
    return found[0] if found else None


def test_a_client_joining_mid_run_gets_the_earlier_events_then_the_live_ones_to_the_end(
    drill: Drill, store: journal.Journal
) -> None:
    prepared = runs.prepare(drill.config, drill.request)
    run = runs.submit(
        drill.config, store, binding.make_registry(), prepared, trigger=engine.Trigger()
    )
    outcome: list[runs.Driven] = []
    driver = threading.Thread(
        target=lambda: outcome.append(
            runs.drive(
                drill.config,
                store,
                binding.make_registry(),
                run.id,
                drill=prepared.drill,
                catalog=prepared.catalog,
            )
        ),
        daemon=True,
    )
    with live.serving(_app(drill.config)) as base:
        driver.start()
        _wait_for("the manual step", lambda: _manual_event(store, run.id) is not None)
        earlier = store.events(run.id)
        assert len(earlier) >= 4
        resume_after = earlier[1].seq  # the client saw the first two events before
        manual = _manual_event(store, run.id)
        assert manual is not None
        eligible = manual.data["eligible"]
        assert isinstance(eligible, list) and eligible

        received: list[Frame] = []
        with (
            httpx.Client(base_url=base, timeout=WAIT_S) as client,
            client.stream(
                "GET",
                f"/api/v1/runs/{run.id}/events",
                headers={"Last-Event-ID": str(resume_after)},
            ) as response,
        ):
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            for frame in _frames(response.iter_lines()):
                if not isinstance(frame, Frame):
                    continue
                received.append(frame)
                if frame.kind == "manual":  # replayed: now let the drill go on, live
                    runs.ack(store, run.id, "cover", by=str(eligible[0]), evidence="restored")
        driver.join(timeout=WAIT_S)

    assert outcome and outcome[0].run.state is states.RunState.COMPLETED
    timeline = store.events(run.id)
    [terminal_at] = [i for i, e in enumerate(timeline) if event_streams.is_terminal_move(e)]
    expected = [e for e in timeline[: terminal_at + 1] if e.seq > resume_after]
    assert [(f.seq, f.kind) for f in received] == [(e.seq, e.kind) for e in expected]
    assert [f.view for f in received] == [views.EventView.from_event(e) for e in expected]
    replayed = [f for f in received if f.seq <= earlier[-1].seq]
    followed = [f for f in received if f.seq > earlier[-1].seq]
    assert [f.seq for f in replayed] == [e.seq for e in earlier[2:]]
    assert any(f.kind == "ack" for f in followed)
    assert received[-1].kind == "state"
    assert received[-1].view.data == {"state": "completed"}


def test_a_finished_run_is_replayed_from_the_lasteventid_query_and_the_stream_ends(
    drill: Drill, store: journal.Journal
) -> None:
    run_id = _finished_run(store)
    timeline = store.events(run_id)

    with live.serving(_app(drill.config)) as base, httpx.Client(base_url=base) as client:
        whole = client.get(f"/api/v1/runs/{run_id}/events")
        resumed = client.get(f"/api/v1/runs/{run_id}/events", params={"lastEventId": 0})
        latest = client.get("/api/v1/runs/latest/events")
        past_end = client.get(
            f"/api/v1/runs/{run_id}/events", headers={"Last-Event-ID": str(timeline[-1].seq)}
        )

    frames = [f for f in _frames(iter(whole.text.splitlines())) if isinstance(f, Frame)]
    assert [(f.seq, f.kind, f.view.message) for f in frames] == [
        (e.seq, e.kind, e.message) for e in timeline
    ]
    assert resumed.text == whole.text  # seqs start above 0
    assert latest.text == whole.text  # run ids resolve as on every run route
    assert past_end.status_code == 200 and past_end.text == ""


def test_a_quiet_run_gets_heartbeats_and_a_client_leaving_stops_its_stream(
    drill: Drill, store: journal.Journal, caplog: pytest.LogCaptureFixture
) -> None:
    run_id = _seeded_run(store, "quiet", state=states.RunState.PENDING)
    beating = event_streams.Follow(poll_s=0.02, heartbeat_s=0.05)
    caplog.set_level(logging.INFO, logger=event_streams.__name__)

    with live.serving(_app(drill.config, beating)) as base:
        with (
            httpx.Client(base_url=base, timeout=WAIT_S) as client,
            client.stream("GET", f"/api/v1/runs/{run_id}/events") as response,
        ):
            first = next(_frames(response.iter_lines()))
        _wait_for(
            "the server to close the abandoned stream",
            lambda: any("the client went away" in r.getMessage() for r in caplog.records),
        )

    assert first == "heartbeat"
    [closed] = [r for r in caplog.records if "event stream of run quiet" in r.getMessage()]
    assert "closed after 0 event(s)" in closed.getMessage()


def test_an_unknown_run_is_404_and_a_malformed_last_event_id_is_422(drill: Drill) -> None:
    with live.serving(_app(drill.config)) as base, httpx.Client(base_url=base) as client:
        unknown = client.get("/api/v1/runs/no-such-run/events")
        malformed = client.get(
            "/api/v1/runs/no-such-run/events", headers={"Last-Event-ID": "yesterday"}
        )

    assert unknown.status_code == 404
    assert "no-such-run" in unknown.text
    assert malformed.status_code == 422


def test_frames_put_seq_kind_and_the_event_view_on_their_own_lines() -> None:
    event = journal.Event(
        seq=7,
        run_id=states.RunId("r"),
        at=datetime(2025, 1, 1, 12, tzinfo=UTC),
        kind="probe",
        message="checkout ok\nsecond line",
        data={"probe": "checkout", "ok": True},
    )

    text = event_routes.frame(event_streams.Delivered(event))

    assert text.endswith("\n\n") and text.count("\n") == 4
    assert text.splitlines()[:2] == ["id: 7", "event: probe"]
    data = json.loads(text.splitlines()[2].removeprefix("data: "))
    assert data == views.EventView.from_event(event).dump()
    assert event_routes.frame(event_streams.Heartbeat()) == ": heartbeat\n\n"


# ---- helpers ------------------------------------------------------------------------------


def _seeded_run(store: journal.Journal, run_id: str, *, state: states.RunState) -> states.RunId:
    run = states.new_run(
        id=states.RunId(run_id),
        scenario="absence-cover",
        environment="test",
        environment_source="test.environment.yaml",
        owner=journal.UNCLAIMED,
        at=datetime(2025, 1, 1, 12, tzinfo=UTC),
        record=records.RunRecord(time_scale=0.01),
    )
    store.create_run(run)
    if state is not states.RunState.PENDING:
        store.save_run(dataclasses.replace(run, state=state), expected_state=run.state)
    return run.id


def _finished_run(store: journal.Journal) -> states.RunId:
    run_id = _seeded_run(store, "done", state=states.RunState.COMPLETED)
    for moved in ("planning", "preflight", "injecting", "completed"):
        store.append_event(run_id, kind="state", message=f"{moved}: ok", data={"state": moved})
    return run_id


def test_following_delivers_replayed_then_live_events_once_each_on_both_backends(
    store_url: str, tmp_path: Path
) -> None:
    config = settings_mod.Settings(
        data_dir=tmp_path / "data", database_url=store_url, reports_dir=tmp_path / "reports"
    )
    with store_mod.open_store(config) as opened:
        run_id = _seeded_run(opened, "followed", state=states.RunState.PENDING)
        first = opened.append_event(
            run_id, kind="state", message="planning", data={"state": "planning"}
        )
        opened.append_event(run_id, kind="step", message="step one", data={"step": "one"})
        later = [("step", "step two", {"step": "two"}), ("state", "done", {"state": "completed"})]

        def write_later() -> None:
            for kind, message, data in later:
                time.sleep(0.05)
                opened.append_event(run_id, kind=kind, message=message, data=data)

        async def collect() -> list[event_streams.Update]:
            got: list[event_streams.Update] = []
            async for update in event_streams.follow(
                opened, run_id, after=first.seq, options=event_streams.Follow(poll_s=0.01)
            ):
                got.append(update)
                if len(got) == 1:
                    threading.Thread(target=write_later, daemon=True).start()
            return got

        got = asyncio.run(collect())
        timeline = opened.events(run_id)

    delivered = [u for u in got if isinstance(u, event_streams.Delivered)]
    assert [d.seq for d in delivered] == [e.seq for e in timeline[1:]]
    assert [d.view().message for d in delivered] == ["step one", "step two", "done"]
