"""Game day started / finished notifications: `start` and `close` leave the state the
collector reads (SQLite, then PostgreSQL); each notice is enqueued once per sink however
often the collector runs, routed by service, and sent as a webhook and in Slack's format to
a loopback receiver."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from drills.service import gamedays
from drills.service.notify import dispatching, notices, outbox, sources
from orchestrator import journal, mutations, states
from tests.gamedays import support
from tests.gamedays.support import ALICE
from tests.notifications import conftest as world

T0 = datetime(2026, 12, 8, 9, 0, tzinfo=UTC)
_STARTED = notices.Kind.GAMEDAY_STARTED
_FINISHED = notices.Kind.GAMEDAY_FINISHED

ROUTED = """\
sinks:
  - {name: everything, type: webhook, url: "http://127.0.0.1:9/all"}
  - {name: checkout-team, type: slack, url: "http://127.0.0.1:9/slack"}
  - {name: search-team, type: webhook, url: "http://127.0.0.1:9/search"}
routes:
  - sinks: [everything]
  - match: {services: [checkout], kinds: [gameday-started, gameday-finished]}
    sinks: [checkout-team]
  - match: {services: [search]}
    sinks: [search-team]
"""


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.fixture
def store(store_url: str) -> Iterator[journal.Journal]:
    with journal.open_store(store_url) as opened:
        yield opened


def _create(store: journal.Journal, tmp_path: Path) -> gamedays.GameDay:
    path = support.write(tmp_path, support.document())
    return gamedays.create(store, path, by="lead", now=T0)


def _rows(store: journal.Journal) -> list[tuple[str, notices.Kind]]:
    return sorted((row.sink, row.kind) for row in outbox.deliveries(store))


def _details(row: outbox.Delivery) -> Mapping[str, mutations.JsonValue]:
    found = row.payload["details"]
    assert isinstance(found, Mapping)
    return found


def test_start_and_close_each_enqueue_one_notice_per_routed_sink_however_often_collected(
    store: journal.Journal, tmp_path: Path
) -> None:
    config = world.load(tmp_path, ROUTED)
    day = _create(store, tmp_path)
    sources.collect(store, "test", config, now=at(1))  # first pass: the past is settled

    gamedays.start(store, day.id, now=at(10))
    first = sources.collect(store, "test", config, now=at(11))
    again = sources.collect(store, "test", config, now=at(12))

    assert _rows(store) == [("checkout-team", _STARTED), ("everything", _STARTED)]
    assert len(first.deliveries) == 2 and again.deliveries == ()

    gamedays.set_drill_result(store, day.id, position=1, run_id="r1", verdict=states.Verdict.HELD)
    gamedays.close(store, day.id, verdict="Checkout held; payments need work.", now=at(100))
    closing = [sources.collect(store, "test", config, now=at(s)) for s in (101, 102, 500, 900)]

    assert [len(c.deliveries) for c in closing] == [2, 0, 0, 0]
    assert _rows(store) == [
        ("checkout-team", _FINISHED),
        ("checkout-team", _STARTED),
        ("everything", _FINISHED),
        ("everything", _STARTED),
    ]
    finished = next(r for r in outbox.deliveries(store) if r.kind is _FINISHED)
    facts = _details(finished)
    assert finished.payload["summary"] == (
        "game day checkout-gameday finished: Checkout held; payments need work."
    )
    assert (facts["gameday"], facts["gamedayId"], facts["facilitator"]) == (
        "checkout-gameday",
        day.id,
        ALICE,
    )
    drills = facts["drills"]
    assert isinstance(drills, list) and len(drills) == 3
    assert drills[0] == {
        "position": 1,
        "ref": str(support.AZ_DRILL),
        "environment": None,
        "gate": "auto",
        "decision": "go",
        "runId": "r1",
        "verdict": "held",
    }
    assert finished.payload["services"] == ["component:default/checkout"]
    assert facts["channel"] == "https://chat.example.com/channels/shop-oncall"


def test_a_game_day_started_and_closed_between_two_passes_gets_both_notices_once(
    store: journal.Journal, tmp_path: Path
) -> None:
    config = world.load(tmp_path, ROUTED)
    day = _create(store, tmp_path)
    sources.collect(store, "test", config, now=at(1))

    gamedays.start(store, day.id, now=at(10))
    gamedays.close(store, day.id, verdict="Called off: an incident.", now=at(20))
    sources.collect(store, "test", config, now=at(30))
    sources.collect(store, "test", config, now=at(31))

    everything = [r.kind for r in outbox.deliveries(store) if r.sink == "everything"]
    assert sorted(everything) == [_FINISHED, _STARTED]


def test_game_days_before_the_first_pass_are_not_announced(
    store: journal.Journal, tmp_path: Path
) -> None:
    config = world.load(tmp_path, ROUTED)
    day = _create(store, tmp_path)
    gamedays.start(store, day.id, now=at(10))
    gamedays.close(store, day.id, verdict="Done.", now=at(20))

    collected = sources.collect(store, "test", config, now=at(30))

    assert collected.deliveries == () and "gamedays" not in collected.skipped
    assert collected.cursors["gamedays"].position > 0


def test_a_planned_game_day_is_not_announced(store: journal.Journal, tmp_path: Path) -> None:
    config = world.load(tmp_path, ROUTED)
    sources.collect(store, "test", config, now=at(0), from_start=True)
    _create(store, tmp_path)

    assert sources.collect(store, "test", config, now=at(5)).deliveries == ()


def test_game_day_notices_reach_a_webhook_and_slack_in_their_formats(
    store: journal.Journal, tmp_path: Path
) -> None:
    with world.Receiver() as receiver:
        config = world.load(
            tmp_path,
            f"""\
sinks:
  - {{name: hook, type: webhook, url: "{receiver.url}/hook", secretEnv: HOOK_SECRET}}
  - {{name: chat, type: slack, url: "{receiver.url}/slack"}}
routes:
  - match: {{kinds: [gameday-started, gameday-finished]}}
    sinks: [hook, chat]
""",
        )
        day = _create(store, tmp_path)
        sources.collect(store, "test", config, now=at(1))
        gamedays.start(store, day.id, now=at(10))
        dispatching.run_pass(store, config, now=at(11), cursor="test")
        dispatching.run_pass(store, config, now=at(12), cursor="test")

    by_path = {r.path: r for r in receiver.requests}
    assert sorted(by_path) == ["/hook", "/slack"] and len(receiver.requests) == 2
    hook = by_path["/hook"]
    body = json.loads(hook.body)
    assert hook.headers["X-Stormdrill-Event"] == "gameday-started"
    assert hook.headers["X-Stormdrill-Signature"].startswith("sha256=")
    assert body["summary"] == (
        "game day checkout-gameday started (3 drill(s), facilitator user:default/alice)"
    )
    slack = json.loads(by_path["/slack"].body)
    assert slack["text"].endswith(body["summary"])
    fields = [
        f["text"] for b in slack["blocks"] if b["type"] == "section" for f in b.get("fields", [])
    ]
    assert "*Game day*\ncheckout-gameday" in fields
    assert "*Facilitator*\nuser:default/alice" in fields
    links = [b["text"]["text"] for b in slack["blocks"] if "text" in b and b["type"] == "section"]
    assert "<https://chat.example.com/channels/shop-oncall|Game day channel>" in links
