"""The game-day report on a real store: the bundled checkout game day played through with
run records in the journal (the report factories' runs, no cluster), rendered as Markdown,
HTML and JSON: post-mortem links, RTOs met and missed, action items and their gaps, people
present and absent, the blameless lint, escaping, secrets, and the refusals."""

from __future__ import annotations

import dataclasses
import datetime as dt
import html.parser
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from drills.api import app as api_app
from drills.api.routes import runs as run_routes
from drills.service import gameday_reports, gamedays
from orchestrator import journal, states
from reports import gameday, linting, rendering, writing
from tests.gamedays import support
from tests.gamedays.support import ALICE, BOB, DAVE
from tests.reports import factories

CAROL = "user:default/carol"  # scribe and observer in the bundled example
DAY = "checkout-gameday"
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)> & a | pipe'
BLAMING = "bob should have scaled the payments pool before the drill"
AT = dt.datetime(2026, 12, 8, 9, 0, tzinfo=dt.UTC)


def _at(minutes: int) -> dt.datetime:
    return AT + dt.timedelta(minutes=minutes)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[journal.Journal]:
    with factories.open_store(tmp_path) as opened:
        yield opened


@dataclasses.dataclass(frozen=True)
class Played:
    """The bundled game day, closed, and the ids of its notes."""

    day: gamedays.GameDay
    hostile: int
    blaming: int
    owned: int
    unowned: int


def _play(store: journal.Journal) -> Played:
    """Drill 1 (auto gate) held within its RTO, drill 2 (manual gate) deviated and missed
    it; a hostile note, a blaming note, an owned and an unowned finding; carol absent."""
    gamedays.create(store, support.EXAMPLE, by="lead", now=_at(-60))
    gamedays.start(store, DAY, now=_at(0))
    factories.record_run(store, run_id="run-az", deviate=False, rto_s=1.5)
    factories.record_run(store, run_id="run-pay", deviate=True, rto_s=90.0)
    held, deviated = states.Verdict.HELD, states.Verdict.DEVIATED
    gamedays.set_drill_result(store, DAY, position=1, run_id="run-az", verdict=held, now=_at(20))
    hostile = gamedays.note(store, DAY, author=BOB, text=HOSTILE, now=_at(25))
    blaming = gamedays.note(store, DAY, author=CAROL, text=BLAMING, now=_at(30))
    gamedays.gate(store, DAY, position=2, decision=gamedays.Decision.GO, by=ALICE, now=_at(35))
    gamedays.set_drill_result(
        store, DAY, position=2, run_id="run-pay", verdict=deviated, now=_at(70)
    )
    owned = gamedays.note(
        store,
        DAY,
        author=ALICE,
        text="Payment provider timeouts paged four minutes after the first failed request",
        finding=gamedays.Finding(
            owner="team-payments",
            due=dt.date(2026, 12, 31),
            ticket_url="https://tickets.example.com/PAY-12",
        ),
        now=_at(75),
    )
    unowned = gamedays.note(
        store,
        DAY,
        author=DAVE,
        text="The runbook has no step for a payment provider outage",
        finding=gamedays.Finding(),
        now=_at(80),
    )
    gamedays.mark_absent(store, DAY, person=CAROL, now=_at(85))
    closed = gamedays.close(
        store, DAY, verdict="Checkout held; payments recovered past its objective.", now=_at(90)
    )
    return Played(
        day=closed, hostile=hostile.id, blaming=blaming.id, owned=owned.id, unowned=unowned.id
    )


@pytest.fixture
def played(store: journal.Journal) -> Played:
    return _play(store)


def _json(store: journal.Journal, key: str = DAY) -> Any:
    """The JSON report as parsed data (read as the API's clients read it)."""
    return json.loads(gameday_reports.render(store, key, fmt="json"))


# ---- the drills: post-mortem links and RTOs ---------------------------------------------


def test_markdown_links_each_drill_to_its_postmortem_and_judges_rto_against_target(
    store: journal.Journal, played: Played
) -> None:
    text = gameday_reports.render(store, DAY, fmt=rendering.Format.MARKDOWN)

    assert text.startswith("# Game-day report: checkout-gameday\n")
    assert "[html](/api/v1/runs/run-az/report?format=html)" in text
    assert "[md](/api/v1/runs/run-pay/report?format=md)" in text
    assert "[json](/api/v1/runs/run-pay/report?format=json)" in text
    drills = _section(text, "Drills")
    assert "| 1 | checkout-az-drill.yaml | staging | auto: go (auto) | `run-az` |" in drills
    assert "| completed | held | Run ended completed; recorded as held. |" in drills
    assert "| 2 | third-party-outage | staging | manual: go (user:default/alice) | `run-pay` |" in (
        drills
    )
    rto = _section(text, "Recovery time objectives")
    assert "1 of 2 drill(s) that ran met the recovery time objective; 1 missed it." in rto
    assert "| 1 | checkout-az-drill.yaml | 1.500 s | 10 min | 60 s | 0.1 | met |" in rto
    assert "| 2 | third-party-outage | 90 s | 10 min | 60 s | 0.1 | MISSED |" in rto
    assert "Checkout held; payments recovered past its objective." in _section(text, "Verdict")


def test_json_carries_each_drill_run_rto_and_postmortem_links_in_camel_case(
    store: journal.Journal, played: Played
) -> None:
    data = _json(store)

    drills = data["drills"]
    assert isinstance(drills, list)
    first, second = drills
    assert first["runId"] == "run-az" and first["runFound"] is True
    assert (first["runState"], first["runVerdict"], first["verdict"]) == (
        "completed",
        "held",
        "held",
    )
    assert (first["achievedRtoS"], first["targetRtoS"], first["scaledTargetRtoS"]) == (
        1.5,
        600.0,
        60.0,
    )
    assert first["rto"] == "met" and second["rto"] == "missed"
    assert second["postmortem"] == {
        "md": "/api/v1/runs/run-pay/report?format=md",
        "html": "/api/v1/runs/run-pay/report?format=html",
        "json": "/api/v1/runs/run-pay/report?format=json",
    }
    assert second["decidedBy"] == ALICE and second["gate"] == "manual"
    assert data["rto"] == {"met": 1, "missed": 1, "notJudged": 0, "notMeasured": 0, "notRun": 0}
    assert data["window"] == {
        "start": "2026-12-08T09:00:00+00:00",
        "end": "2026-12-08T12:00:00+00:00",
        "timezone": "Europe/Berlin",
        "localStart": "2026-12-08 10:00 Europe/Berlin",
        "localEnd": "2026-12-08 13:00 Europe/Berlin",
    }
    assert (data["state"], data["services"], data["linkStyle"]) == (
        "closed",
        ["component:default/checkout", "component:default/payments"],
        "api",
    )
    assert data["verdict"] == "Checkout held; payments recovered past its objective."
    assert data["warnings"] == []


def test_the_json_report_reads_back_into_the_model_with_the_same_fields(
    store: journal.Journal, played: Played
) -> None:
    text = gameday_reports.render(store, DAY, fmt="json")

    again = gameday.GameDayReport.model_validate_json(text)

    assert again == gameday_reports.build(store, DAY)
    assert sorted(json.loads(text)) == [
        "absent",
        "channel",
        "createdBy",
        "drills",
        "findings",
        "id",
        "linkStyle",
        "lint",
        "name",
        "participants",
        "rto",
        "services",
        "state",
        "timeline",
        "title",
        "verdict",
        "warnings",
        "window",
    ]
    assert list(json.loads(text)["drills"][0]) == [
        "position",
        "drill",
        "scenario",
        "environment",
        "gate",
        "decision",
        "decidedBy",
        "decidedAt",
        "runId",
        "runFound",
        "runState",
        "runVerdict",
        "verdict",
        "outcome",
        "achievedRtoS",
        "targetRtoS",
        "scaledTargetRtoS",
        "timeScale",
        "rto",
        "postmortem",
    ]


def test_files_links_point_at_the_postmortems_stormdrill_run_writes(
    store: journal.Journal, played: Played, tmp_path: Path
) -> None:
    reports_dir = tmp_path / "reports"
    for run_id in ("run-az", "run-pay"):
        writing.write_for_run(store.get_run(states.RunId(run_id)), store, None, reports_dir)
    files = gameday.Links(style=gameday.LinkStyle.FILES)

    report = gameday_reports.build(store, DAY, links=files)
    text = gameday_reports.render(store, DAY, fmt="html", links=files)

    links = [url for row in report.drills for url in row.postmortem.values()]
    assert links == [
        "run-az/postmortem.md",
        "run-az/postmortem.html",
        "run-az/postmortem.json",
        "run-pay/postmortem.md",
        "run-pay/postmortem.html",
        "run-pay/postmortem.json",
    ]
    assert all((reports_dir / link).is_file() for link in links)
    assert 'href="run-pay/postmortem.html"' in text


def test_api_links_use_the_prefix_and_route_the_api_serves_post_mortems_at(
    store: journal.Journal, played: Played
) -> None:
    assert gameday.API_PREFIX == api_app.API_PREFIX
    assert "/runs/{run_id}/report" in {getattr(r, "path", None) for r in run_routes.router.routes}
    served = gameday.Links(base_url="https://stormdrill.example.com/")

    report = gameday_reports.build(store, DAY, links=served)

    assert report.drills[0].postmortem[rendering.Format.HTML] == (
        "https://stormdrill.example.com/api/v1/runs/run-az/report?format=html"
    )


def test_a_run_id_the_store_lacks_is_named_in_the_report_and_gets_no_link(
    store: journal.Journal,
) -> None:
    gamedays.create(store, support.EXAMPLE, by="lead")
    gamedays.start(store, DAY, now=_at(0))
    gamedays.set_drill_result(
        store, DAY, position=1, run_id="run-typo", verdict=states.Verdict.HELD
    )

    report = gameday_reports.build(store, DAY)
    text = gameday_reports.render(store, DAY, fmt="md")

    first = report.drills[0]
    assert (first.run_found, first.postmortem, first.rto) == (False, {}, gameday.RtoResult.NOT_RUN)
    assert first.outcome == "Recorded as held; its run is not in the store."
    assert report.warnings == (
        "drill 1: run 'run-typo' is not in the store, so the report has no RTO or post-mortem"
        " for it; check the run id recorded for this drill",
    )
    assert "## About this report" in text and "run-typo" in _section(text, "About this report")


def test_a_run_still_in_flight_gets_no_link_or_rto_until_it_ends(
    store: journal.Journal,
) -> None:
    gamedays.create(store, support.EXAMPLE, by="lead")
    gamedays.start(store, DAY, now=_at(0))
    pending = states.new_run(
        id=states.RunId("run-live"),
        scenario="zone-loss",
        environment="staging",
        environment_source="environments/staging.yaml",
        owner=states.Owner(host="ci-host", pid=1, token="t"),
        at=AT,
    )
    store.create_run(pending)
    gamedays.set_drill_result(
        store, DAY, position=1, run_id="run-live", verdict=states.Verdict.HELD
    )

    report = gameday_reports.build(store, DAY)

    first = report.drills[0]
    assert (first.run_found, first.run_state, first.postmortem) == (True, "pending", {})
    assert first.rto is gameday.RtoResult.NOT_MEASURED
    assert first.outcome == "Its run is pending: it has not ended yet."
    assert report.warnings == (
        "drill 1: run run-live is still pending; its post-mortem and RTO come once it ends"
        " (render this report again then)",
    )


def test_a_planned_game_day_reports_no_verdict_and_every_drill_not_run(
    store: journal.Journal,
) -> None:
    gamedays.create(store, support.EXAMPLE, by="lead")

    report = gameday_reports.build(store, DAY)
    text = gameday_reports.render(store, DAY, fmt="md")

    assert report.state == "planned" and report.verdict is None
    assert [d.outcome for d in report.drills] == ["Not run: its gate was not decided."] * 2
    assert report.rto == gameday.RtoSummary(
        met=0, missed=0, not_judged=0, not_measured=0, not_run=2
    )
    assert "No verdict yet: the game day is planned" in _section(text, "Verdict")
    assert "No finding was recorded." in text and "No note was taken." in text


def test_a_gate_that_said_no_go_shows_the_drill_as_not_run(store: journal.Journal) -> None:
    gamedays.create(store, support.EXAMPLE, by="lead")
    gamedays.start(store, DAY, now=_at(0))
    factories.record_run(store, run_id="run-az", deviate=False)
    gamedays.set_drill_result(store, DAY, position=1, run_id="run-az", verdict=states.Verdict.HELD)
    gamedays.gate(store, DAY, position=2, decision=gamedays.Decision.NO_GO, by=ALICE)

    report = gameday_reports.build(store, DAY)

    assert report.drills[1].outcome == "Not run: its gate said no-go (by user:default/alice)."
    assert report.drills[1].rto is gameday.RtoResult.NOT_RUN
    assert report.rto.met == 1 and report.rto.not_run == 1


# ---- findings, notes and people ---------------------------------------------------------


def test_findings_become_action_items_and_missing_owners_and_due_dates_are_flagged(
    store: journal.Journal, played: Played
) -> None:
    text = gameday_reports.render(store, DAY, fmt="md")
    data = _json(store)

    findings = _section(text, "Findings and action items")
    assert "1 action item(s) lack an owner or a due date." in findings
    assert (
        f"| #{played.owned} | Payment provider timeouts paged four minutes after the first failed"
        " request | user:default/alice | team-payments | 2026-12-31 |"
        " [ticket](https://tickets.example.com/PAY-12) | - |"
    ) in findings
    assert (
        f"| #{played.unowned} | The runbook has no step for a payment provider outage |"
        " user:default/dave | - | - | - | no owner, no due date |"
    ) in findings
    owned, unowned = data["findings"]
    assert owned == {
        "noteId": played.owned,
        "at": "2026-12-08T10:15:00+00:00",
        "raisedBy": ALICE,
        "text": "Payment provider timeouts paged four minutes after the first failed request",
        "owner": "team-payments",
        "due": "2026-12-31",
        "ticketUrl": "https://tickets.example.com/PAY-12",
        "problems": [],
    }
    assert unowned["problems"] == ["no owner", "no due date"]
    assert unowned["owner"] is None and unowned["ticketUrl"] is None


def test_the_timeline_lists_every_note_and_finding_in_time_order_with_its_evidence(
    store: journal.Journal, played: Played
) -> None:
    report = gameday_reports.build(store, DAY)
    text = gameday_reports.render(store, DAY, fmt="md")

    assert [(t.note_id, t.kind.value) for t in report.timeline] == [
        (played.hostile, "note"),
        (played.blaming, "note"),
        (played.owned, "finding"),
        (played.unowned, "finding"),
    ]
    timeline = _section(text, "Timeline")
    assert f"| 2026-12-08 09:30:00.000Z | user:default/carol | note | {BLAMING} |" in timeline
    assert f"note #{played.blaming} |" in timeline
    assert not [f for f in linting.lint(text) if f.rule.startswith("timeline")]


def test_participants_show_their_roles_who_took_part_and_who_was_absent(
    store: journal.Journal, played: Played
) -> None:
    report = gameday_reports.build(store, DAY)
    text = gameday_reports.render(store, DAY, fmt="md")
    data = _json(store)

    people = {p.person: p for p in report.participants}
    assert set(people) == {ALICE, BOB, CAROL, DAVE}
    assert people[CAROL].absent and people[CAROL].roles == ("observer", "scribe")
    assert people[ALICE].gates_decided == (2,) and people[ALICE].notes == 1
    assert people[BOB].took_part and not people[BOB].absent
    assert report.absent == (CAROL,)
    participants = _section(text, "Participants")
    assert "| user:default/carol | observer, scribe | absent | 1 note(s) |" in participants
    assert "| user:default/alice | facilitator | yes | 1 note(s); gate(s) 2 |" in participants
    assert "Absent: user:default/carol." in participants
    assert data["absent"] == [CAROL]
    dave = next(p for p in data["participants"] if p["person"] == DAVE)
    assert dave == {
        "person": DAVE,
        "roles": ["approver", "service-owner"],
        "absent": False,
        "tookPart": True,
        "notes": 1,
        "gatesDecided": [],
    }


def test_someone_who_wrote_no_note_and_decided_no_gate_did_not_take_part(
    store: journal.Journal,
) -> None:
    gamedays.create(store, support.EXAMPLE, by="lead")
    gamedays.start(store, DAY, now=_at(0))
    gamedays.note(store, DAY, author=ALICE, text="Starting with the zone drill")

    report = gameday_reports.build(store, DAY)
    text = gameday_reports.render(store, DAY, fmt="md")

    assert [p.person for p in report.participants if p.took_part] == [ALICE]
    assert "| user:default/bob | operator | yes | no note or gate |" in text


# ---- the blameless lint -----------------------------------------------------------------


def test_the_blameless_lint_names_the_note_that_blames_a_participant(
    store: journal.Journal, played: Played
) -> None:
    report = gameday_reports.build(store, DAY)
    text = gameday_reports.render(store, DAY, fmt="md")
    data = _json(store)

    assert [(w.source, w.note_id, w.rule) for w in report.lint] == [
        ("note", played.blaming, "counterfactual"),
        ("note", played.blaming, "person-blame"),
    ]
    blame = report.lint[1]
    assert blame.message == "'bob' is the subject of 'should'" and blame.author == CAROL
    lint = _section(text, "Blameless lint")
    assert (
        f"- note #{played.blaming} by user:default/carol at 2026-12-08 09:30:00.000Z:"
        " counterfactual: `counterfactual 'should have'` (try: `state what happened"
    ) in lint
    assert "person-blame: `'bob' is the subject of 'should'`" in lint
    assert [w["rule"] for w in data["lint"]] == ["counterfactual", "person-blame"]
    assert data["lint"][0]["noteId"] == played.blaming


def test_the_lint_reads_the_verdict_and_findings_as_cause_fields(
    store: journal.Journal,
) -> None:
    gamedays.create(store, support.EXAMPLE, by="lead")
    gamedays.start(store, DAY, now=_at(0))
    found = gamedays.note(
        store,
        DAY,
        author=DAVE,
        text="Human error during the failover; the root cause was the runbook",
        finding=gamedays.Finding(owner="team-payments", due=dt.date(2026, 12, 31)),
    )
    gamedays.close(store, DAY, verdict="Obviously payments need work")

    report = gameday_reports.build(store, DAY)

    assert [(w.source, w.note_id, w.rule) for w in report.lint] == [
        ("verdict", None, "hindsight"),
        ("finding", found.id, "blocking-term"),
        ("finding", found.id, "single-root-cause"),
    ]
    assert report.lint[0].where == "the verdict"


def test_a_blameless_game_day_gives_a_report_the_lint_finds_nothing_in(
    store: journal.Journal,
) -> None:
    gamedays.create(store, support.EXAMPLE, by="lead")
    gamedays.start(store, DAY, now=_at(0))
    factories.record_run(store, run_id="run-az", deviate=False)
    gamedays.set_drill_result(store, DAY, position=1, run_id="run-az", verdict=states.Verdict.HELD)
    gamedays.note(store, DAY, author=BOB, text="Zone a drained; checkout kept serving")
    gamedays.note(
        store,
        DAY,
        author=CAROL,
        text="The dashboard showed no zone view",
        finding=gamedays.Finding(owner=DAVE, due=dt.date(2027, 1, 15)),
    )
    gamedays.close(store, DAY, verdict="Checkout held through the loss of a zone.")

    report = gameday_reports.build(store, DAY)
    text = gameday_reports.render(store, DAY, fmt="md")

    assert report.lint == ()
    assert "The verdict, notes and findings read blameless." in text
    names = [ALICE, BOB, CAROL, DAVE, "alice", "bob", "carol", "dave"]
    structural = {"missing-section"}  # the post-mortem's sections; a game day has its own
    assert [f for f in linting.lint(text, people=names) if f.rule not in structural] == []


# ---- escaping, secrets, self-containment ------------------------------------------------


class _Tags(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []
        self.by_tag: list[list[tuple[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs += attrs
        self.by_tag.append(attrs)


def test_hostile_note_text_is_escaped_in_html_and_markdown(
    store: journal.Journal, played: Played
) -> None:
    page = gameday_reports.render(store, DAY, fmt="html")
    text = gameday_reports.render(store, DAY, fmt="md")

    escaped = "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;"
    assert escaped + " &amp; a | pipe" in page
    parsed = _Tags()
    parsed.feed(page)
    assert "script" not in parsed.tags and "img" not in parsed.tags
    assert ("onerror", "alert(1)") not in parsed.attrs
    assert (
        '&lt;script&gt;alert("x")&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt; & a \\| pipe'
        in _section(text, "Timeline")
    )
    assert "<script>" not in text


def test_a_hostile_verdict_is_no_heading_link_or_markup_in_either_rendering(
    store: journal.Journal,
) -> None:
    gamedays.create(store, support.EXAMPLE, by="lead")
    gamedays.start(store, DAY, now=_at(0))
    gamedays.close(store, DAY, verdict="# [click](javascript:alert(1)) <b>held</b>")

    text = gameday_reports.render(store, DAY, fmt="md")
    page = gameday_reports.render(store, DAY, fmt="html")

    assert "\\# \\[click\\](javascript:alert(1)) &lt;b&gt;held&lt;/b&gt;" in _section(
        text, "Verdict"
    )
    parsed = _Tags()
    parsed.feed(page)
    assert "b" not in parsed.tags
    assert "# [click](javascript:alert(1)) &lt;b&gt;held&lt;/b&gt;" in page


def test_the_html_page_is_self_contained_with_no_external_assets(
    store: journal.Journal, played: Played
) -> None:
    page = gameday_reports.render(store, DAY, fmt="html")
    parsed = _Tags()
    parsed.feed(page)

    assert "script" not in parsed.tags
    links = [dict(a) for tag, a in zip(parsed.tags, parsed.by_tag, strict=True) if tag == "link"]
    assert links == [{"rel": "icon", "href": "data:,"}]  # an empty icon: no /favicon.ico fetch
    assert not [value for name, value in parsed.attrs if name == "src"]
    external = sorted({v for n, v in parsed.attrs if n == "href" and v and "://" in v})
    assert external == [
        "https://chat.example.com/channels/shop-oncall",
        "https://tickets.example.com/PAY-12",
    ]
    assert '<a href="/api/v1/runs/run-az/report?format=html">html</a>' in page
    assert "MISSED" in page and "no owner, no due date" in page
    assert "Checkout held; payments recovered past its objective." in page


def test_secrets_written_into_notes_never_reach_the_report(store: journal.Journal) -> None:
    gamedays.create(store, support.EXAMPLE, by="lead")
    gamedays.start(store, DAY, now=_at(0))
    gamedays.note(
        store,
        DAY,
        author=BOB,
        text="Probed https://svc:hunter2@pay.internal/health with token=abc123secret",
    )

    rendered = [gameday_reports.render(store, DAY, fmt=f) for f in gameday_reports.FORMATS]

    for text in rendered:
        assert "hunter2" not in text and "abc123secret" not in text
    assert "https://***@pay.internal/health" in rendered[0]


# ---- refusals ---------------------------------------------------------------------------


def test_an_unknown_game_day_is_refused_naming_the_list_command(
    store: journal.Journal,
) -> None:
    with pytest.raises(gamedays.UnknownGameDay, match="no game day has the id or name") as refused:
        gameday_reports.render(store, "gd-nope", fmt="md")

    assert "stormdrill gamedays list" in str(refused.value)


def test_a_bad_format_is_refused_naming_the_formats_before_the_store_is_read(
    store: journal.Journal,
) -> None:
    with pytest.raises(gameday_reports.BadReportFormat) as refused:
        gameday_reports.render(store, "gd-nope", fmt="pdf")

    assert str(refused.value) == (
        "format 'pdf': a game-day report comes as md, html, json; give one of those"
    )


def test_formats_parse_from_their_names_whatever_the_case() -> None:
    assert gameday_reports.parse_format(" HTML ") is rendering.Format.HTML
    assert gameday_reports.parse_format(rendering.Format.JSON) is rendering.Format.JSON
    assert gameday_reports.MEDIA_TYPES[rendering.Format.MARKDOWN].startswith("text/markdown")


def test_the_report_reads_the_same_from_postgresql(postgres_url: str) -> None:
    with journal.open_store(postgres_url) as opened:
        played = _play(opened)
        data = _json(opened, played.day.id)

    assert data["id"] == played.day.id and data["state"] == "closed"
    assert [d["rto"] for d in data["drills"]] == ["met", "missed"]


# ---- helpers ----------------------------------------------------------------------------


def _section(markdown: str, title: str) -> str:
    """The text under `## title`, up to the next `##` heading."""
    head = f"\n## {title}\n"
    assert head in markdown, f"no section {title!r}"
    rest = markdown.split(head, 1)[1]
    return rest.split("\n## ", 1)[0]
