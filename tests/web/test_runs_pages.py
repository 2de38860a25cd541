"""The runs pages: `/runs` (filters, search, Older pages) and `/runs/{id}` (one run).

Real tokens and sessions, a real store, the app `serve` runs. Runs are seeded straight into
the store where only their state matters, and driven for real by the engine where the page
must draw what happened: a people-only drill (a person marked unavailable, a manual step)
with an `http` steady-state probe against a loopback HTTP server (port 0). Pages are parsed
with `html.parser` (`parse`); the SVG pictures too (they are XML inside the page).
Abort and Ack go through their forms: CSRF, roles, the idempotency key, the audit trail.
"""

from __future__ import annotations

import contextlib
import dataclasses
import html.parser
import http.server
import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from drills import binding
from drills.service import audit, auth
from drills.service import events as event_streams
from drills.service import runs as run_service
from drills.web.pages import runs as runs_page
from orchestrator import engine, events, journal, mutations, records, states
from tests.web.conftest import Web

_S = states.RunState
WAIT_S = 60.0
FAST = event_streams.Follow(poll_s=0.02, heartbeat_s=15.0, settle_polls=2)


# ---- parsing pages ----------------------------------------------------------------------


@dataclasses.dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    children: list[Element | str] = dataclasses.field(default_factory=list)

    def text(self) -> str:
        parts = [c if isinstance(c, str) else c.text() for c in self.children]
        return " ".join(" ".join(parts).split())

    def walk(self) -> Iterator[Element]:
        yield self
        for child in self.children:
            if isinstance(child, Element):
                yield from child.walk()

    def find_all(self, tag: str | None = None, **attrs: str) -> list[Element]:
        wanted = {k.rstrip("_").replace("_", "-"): v for k, v in attrs.items()}
        return [
            e
            for e in self.walk()
            if (tag is None or e.tag == tag)
            and all(_matches(e.attrs, k, v) for k, v in wanted.items())
        ]

    def find(self, tag: str | None = None, **attrs: str) -> Element:
        found = self.find_all(tag, **attrs)
        assert found, f"no <{tag} {attrs}> in <{self.tag} {self.attrs}>"
        return found[0]

    def by_id(self, element_id: str) -> Element | None:
        found = self.find_all(id=element_id)
        return found[0] if found else None


def _matches(attrs: dict[str, str], name: str, value: str) -> bool:
    """`class` matches one of the element's classes; any other attribute its whole value."""
    if name == "class":
        return value in attrs.get("class", "").split()
    return attrs.get(name) == value


_VOID = frozenset({"input", "meta", "link", "br", "hr", "img", "col", "area", "base", "source"})


class _Builder(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(element)
        if tag not in _VOID:
            self.stack.append(element)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(Element(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        for index in range(len(self.stack) - 1, 0, -1):
            if self.stack[index].tag == tag:
                del self.stack[index:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def parse(text: str) -> Element:
    builder = _Builder()
    builder.feed(text)
    builder.close()
    return builder.root


def forms_posting_to(page: Element, action: str) -> list[Element]:
    return [f for f in page.find_all("form") if f.attrs.get("action") == action]


def hidden(form: Element, name: str) -> str:
    return form.find("input", name=name).attrs["value"]


# ---- runs in the store ------------------------------------------------------------------


def seed(
    store: journal.Journal,
    run_id: str,
    *,
    state: states.RunState,
    at: datetime,
    scenario: str = "absence-cover",
    environment: str = "test",
    verdict: states.Verdict | None = None,
    trigger: engine.TriggerKind = engine.TriggerKind.MANUAL,
    owner: states.Owner = journal.UNCLAIMED,
    impact: tuple[records.ImpactRow, ...] | None = None,
) -> states.Run:
    """A run in `state` (no timeline), as a store would hold it."""
    run = states.new_run(
        id=states.RunId(run_id),
        scenario=scenario,
        environment=environment,
        environment_source="test.environment.yaml",
        owner=owner,
        at=at,
        record=records.RunRecord(trigger=engine.Trigger(kind=trigger), impact=impact),
    )
    store.create_run(run)
    if state is _S.PENDING:
        return run
    moved = dataclasses.replace(
        run,
        state=state,
        verdict=verdict,
        finished_at=at + timedelta(seconds=42) if state in states.TERMINAL else None,
    )
    return store.save_run(moved, expected_state=_S.PENDING)


def waiting_on_cover(
    store: journal.Journal,
    run_id: str = "20250101T120000Z-manual00",
    *,
    impact: tuple[records.ImpactRow, ...] | None = None,
) -> states.Run:
    """A driven run whose manual step `cover` waits for bob or carol (alice is absent)."""
    run = seed(
        store,
        run_id,
        state=_S.INJECTING,
        at=datetime.now(UTC),
        owner=states.Owner.current(),
        impact=impact,
    )
    store.append_event(
        run.id,
        kind=events.EventKind.MANUAL,
        message="waiting for group:default/team-payments: Restore payments without alice.",
        data={
            "step": "cover",
            "assignee": "group:default/team-payments",
            "role": "any",
            "timeout_s": 1800.0,
            "evidence": ["text"],
            "eligible": ["user:default/bob", "user:default/carol"],
            "absent": ["user:default/alice"],
        },
    )
    return run


PROBED = """\
apiVersion: stormdrill.dev/v1
kind: Scenario
metadata:
  name: probed-absence
spec:
  description: Alice is away while the web stays healthy.
  failureMode: key-person
  hypothesis: The web stays healthy without alice.
  targets:
    absent:
      provider: people
      kind: person
      selector:
        refs: [user:default/alice]
      blastRadius:
        max: 1
  steadyState:
    - name: web-healthy
      type: http
      with:
        url: "{url}"
        expectStatus: 200
      when: [before, after]
  guardrails:
    environments: [test]
    maxDuration: 1h
  steps:
    - name: mark
      action: people.mark-unavailable
      target: absent
    - name: check
      probe: web-healthy
  objectives:
    rto: 30m
"""


class _Healthy(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:
        return None


@contextlib.contextmanager
def healthz() -> Iterator[str]:
    """A loopback HTTP server (port 0) answering 200 `ok`; yields its URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Healthy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/healthz"
    finally:
        server.shutdown()
        server.server_close()


def drive_probed(web: Web) -> states.Run:
    """Run `probed-absence` to the end in this thread (the engine, the app's store)."""
    with healthz() as url:
        scenario = web.world.scenarios / "probed-absence.yaml"
        scenario.write_text(PROBED.format(url=url), encoding="utf-8")
        prepared = run_service.prepare(
            web.world.settings,
            run_service.DrillRequest(
                target=str(scenario),
                environment=str(web.world.environments / "test.environment.yaml"),
            ),
        )
        driven = run_service.start(
            web.world.settings,
            web.store,
            binding.make_registry(),
            prepared,
            trigger=engine.Trigger(kind=engine.TriggerKind.MANUAL, principal="test"),
        )
    assert driven.run.state is _S.COMPLETED, driven.run.reason
    return driven.run


def audit_of(store: journal.Journal, action: str) -> list[audit.Entry]:
    return list(audit.entries(store, where=audit.EntryFilter(action=action)))


def wait_for(what: str, check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.05)


# ---- the list ---------------------------------------------------------------------------


def _rows(page: Element) -> list[Element]:
    table = page.find("table", class_="runs")
    return table.find("tbody").find_all("tr")


def _ids(page: Element) -> list[str]:
    return (
        [row.attrs["data-run"] for row in _rows(page)]
        if page.find_all("table", class_="runs")
        else []
    )


def test_the_runs_pages_need_a_session(web: Web) -> None:
    for path in ("/runs", "/runs/latest", "/runs/x/events"):
        answer = web.client.get(path)
        assert answer.status_code == 303, path
        assert answer.headers["location"].startswith(
            "/login?next=" + urllib.parse.quote(path, safe="")
        )


def test_the_list_shows_each_run_with_its_state_in_words_and_links_to_it(web: Web) -> None:
    at = datetime(2025, 1, 1, 12, tzinfo=UTC)
    seed(
        web.store,
        "20250101T120000Z-aaaa0001",
        state=_S.COMPLETED,
        at=at,
        verdict=states.Verdict.HELD,
    )
    seed(web.store, "20250101T130000Z-aaaa0002", state=_S.ABORTED, at=at + timedelta(hours=1))
    web.login(auth.Role.VIEWER)

    answer = web.client.get("/runs")

    assert answer.status_code == 200
    page = parse(answer.text)
    rows = _rows(page)
    assert [r.attrs["data-run"] for r in rows] == [
        "20250101T130000Z-aaaa0002",
        "20250101T120000Z-aaaa0001",
    ]
    newest, oldest = rows
    assert newest.find("a").attrs["href"] == "/runs/20250101T130000Z-aaaa0002"
    cells = oldest.find_all("td")
    assert [c.text() for c in cells[:2]] == ["absence-cover", "test"]
    state = oldest.find("td", data_state="completed")
    assert "COMPLETED" in state.text() and "✓" in state.text()  # a word and a symbol
    assert "state-passed" in state.find("span").attrs["class"]
    assert "held" in oldest.find("td", data_verdict="held").text()
    assert oldest.find("time").attrs["datetime"] == at.isoformat()
    assert "42 s" in oldest.text()  # the duration
    headers = [th.text() for th in page.find("table", class_="runs").find("thead").find_all("th")]
    assert headers[:7] == [
        "Run",
        "Scenario",
        "Environment",
        "State",
        "Verdict",
        "Trigger",
        "Started",
    ]
    for field in page.find("form", class_="filters", method="get").find_all("select") + [
        i for i in page.find_all("input") if i.attrs.get("type") != "hidden"
    ]:
        assert page.find_all("label", for_=field.attrs["id"]), field.attrs  # every field labelled


def test_filters_narrow_the_list_as_the_api_filters(web: Web) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    old = now - timedelta(days=30)
    seed(
        web.store,
        "20250101T120000Z-done0001",
        state=_S.COMPLETED,
        at=old,
        verdict=states.Verdict.HELD,
    )
    seed(
        web.store,
        "20250101T120000Z-dev00001",
        state=_S.COMPLETED,
        at=now - timedelta(hours=1),
        verdict=states.Verdict.DEVIATED,
        scenario="with-secret",
    )
    seed(
        web.store,
        "20250101T120000Z-abrt0001",
        state=_S.ABORTED,
        at=now - timedelta(hours=2),
        environment="locked",
    )
    seed(
        web.store,
        "20250101T120000Z-sched001",
        state=_S.PENDING,
        at=now - timedelta(minutes=5),
        trigger=engine.TriggerKind.SCHEDULE,
    )
    web.login(auth.Role.VIEWER)

    def ids(query: str) -> list[str]:
        answer = web.client.get("/runs?" + query)
        assert answer.status_code == 200, answer.text
        return _ids(parse(answer.text))

    assert len(ids("")) == 4
    assert ids("state=completed") == ["20250101T120000Z-dev00001", "20250101T120000Z-done0001"]
    assert sorted(ids("state=aborted&state=pending")) == [
        "20250101T120000Z-abrt0001",
        "20250101T120000Z-sched001",
    ]
    assert ids("verdict=deviated") == ["20250101T120000Z-dev00001"]
    assert ids("scenario=with-secret") == ["20250101T120000Z-dev00001"]
    assert ids("environment=locked") == ["20250101T120000Z-abrt0001"]
    assert ids("trigger=schedule") == ["20250101T120000Z-sched001"]
    assert "20250101T120000Z-done0001" not in ids("since=7d")
    assert ids("until=" + (old + timedelta(days=1)).date().isoformat()) == [
        "20250101T120000Z-done0001"
    ]
    # empty fields (what a browser sends for an untouched form) filter nothing
    assert len(ids("state=&verdict=&scenario=&environment=&service=&trigger=&since=&until=")) == 4
    # the form shows what it filtered by
    page = parse(web.client.get("/runs?state=completed&scenario=with-secret").text)
    selected = [
        o.attrs["value"]
        for o in page.find("select", id="filter-state").find_all("option")
        if "selected" in o.attrs
    ]
    assert selected == ["completed"]
    assert page.find("input", id="filter-scenario").attrs["value"] == "with-secret"


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("state=sleeping", "state 'sleeping': choose one of pending"),
        ("since=yesterday", "write a duration back from now"),
        ("until=soon", "until 'soon': write an ISO date"),
        ("limit=0", "limit 0: write a whole number from 1 to 500"),
        ("cursor=nonsense", "not one `runs list` handed out"),
    ],
)
def test_a_filter_that_does_not_parse_answers_422_with_the_form_and_why(
    web: Web, query: str, says: str
) -> None:
    web.login(auth.Role.VIEWER)
    answer = web.client.get("/runs?" + query)
    assert answer.status_code == 422
    page = parse(answer.text)
    assert says in page.find(id="filters-error").text()
    assert page.find("form", class_="filters")  # still there to fix the filter


def test_a_filter_that_does_not_parse_is_shown_again_as_typed(web: Web) -> None:
    web.login(auth.Role.VIEWER)
    page = parse(web.client.get("/runs?since=yesterday&scenario=absence-cover").text)
    assert page.find("input", id="filter-since").attrs["value"] == "yesterday"
    assert page.find("input", id="filter-scenario").attrs["value"] == "absence-cover"


def test_the_older_link_pages_through_every_run_once_with_the_same_filters(web: Web) -> None:
    start = datetime(2025, 3, 1, tzinfo=UTC)
    made = [
        seed(
            web.store,
            f"20250301T{i:02d}0000Z-page{i:04d}",
            state=_S.COMPLETED,
            at=start + timedelta(hours=i),
        ).id
        for i in range(5)
    ]
    seed(web.store, "20250301T230000Z-other000", state=_S.ABORTED, at=start + timedelta(hours=23))
    web.login(auth.Role.VIEWER)

    seen: list[str] = []
    address: str | None = "/runs?state=completed&limit=2"
    pages = 0
    while address is not None:
        page = parse(web.client.get(address).text)
        seen += _ids(page)
        older = page.by_id("older")
        address = None if older is None else older.attrs["href"]
        if address is not None:
            query = urllib.parse.parse_qs(urllib.parse.urlparse(address).query)
            assert query["state"] == ["completed"] and query["limit"] == ["2"] and query["cursor"]
        pages += 1
    assert seen == list(reversed(made))  # newest first, each once, the aborted one filtered out
    assert pages == 3


def test_the_search_box_opens_a_run_by_a_unique_prefix_and_lists_the_ambiguous(web: Web) -> None:
    at = datetime(2025, 1, 1, tzinfo=UTC)
    seed(web.store, "20250101T120000Z-abcd1111", state=_S.COMPLETED, at=at)
    seed(web.store, "20250101T130000Z-abcd2222", state=_S.COMPLETED, at=at + timedelta(hours=1))
    web.login(auth.Role.VIEWER)

    unique = web.client.get("/runs?q=abcd1")
    ambiguous = web.client.get("/runs?q=abcd")
    unknown = web.client.get("/runs?q=zzzz")

    assert (
        unique.status_code == 303
        and unique.headers["location"] == "/runs/20250101T120000Z-abcd1111"
    )
    page = parse(ambiguous.text)
    assert "Several runs match 'abcd'" in page.find("p", class_="notice").text()
    links = [a.attrs["href"] for a in page.find("ul", class_="candidates").find_all("a")]
    assert links == ["/runs/20250101T130000Z-abcd2222", "/runs/20250101T120000Z-abcd1111"]
    assert "No run has the id 'zzzz'" in parse(unknown.text).find("p", class_="notice").text()


# ---- one run ----------------------------------------------------------------------------


def test_an_unknown_run_is_a_404_page(web: Web) -> None:
    web.login(auth.Role.VIEWER)
    for path in ("/runs/nope", "/runs/nope/report", "/runs/nope/events"):
        answer = web.client.get(path)
        assert answer.status_code == 404, path
        assert "no run 'nope'" in parse(answer.text).find("p", class_="error").text()


def test_a_finished_run_shows_its_timeline_picture_mutations_probes_and_post_mortem(
    web: Web,
) -> None:
    run = drive_probed(web)
    entries = web.store.entries(run.id)
    samples = web.store.events(run.id, kind=events.EventKind.PROBE)
    assert entries and samples
    web.login(auth.Role.VIEWER)

    answer = web.client.get(f"/runs/{run.id[-8:]}")  # a unique prefix of its random part

    assert answer.status_code == 200
    page = parse(answer.text)
    assert page.find("h1").text() == f"Run {run.id}"
    assert page.by_id("run-state") is not None and page.by_id("run-state").text() == "COMPLETED"  # type: ignore[union-attr]
    assert "data-live" not in page.find(id="run").attrs  # a finished run is not followed
    # the timeline picture: a bar per change, where the journal says, with its state
    timeline = page.find(id="timeline-picture").find("svg")
    assert timeline.attrs["role"] == "img"
    bars = timeline.find_all("rect", data_kind="mutation")
    assert sorted(int(b.attrs["data-seq"]) for b in bars) == sorted(e.seq for e in entries)
    for bar in bars:
        entry = next(e for e in entries if e.seq == int(bar.attrs["data-seq"]))
        assert bar.attrs["data-state"] == entry.state.value == "reverted"
        assert float(bar.attrs["data-end-s"]) >= float(bar.attrs["data-start-s"])
    phases = [r.attrs["data-phase"] for r in timeline.find_all("rect", data_kind="phase")]
    assert {"injecting", "rolling_back", "verifying"} <= set(phases)
    # the changes table: the same entries, what was done to each target
    changes = page.find("table", class_="changes").find("tbody").find_all("tr")
    assert [(int(r.attrs["data-seq"]), r.attrs["data-state"]) for r in changes] == [
        (e.seq, "reverted") for e in sorted(entries, key=lambda e: (str(e.target), e.seq))
    ]
    assert "user:default/alice" in changes[0].text() and "reverted" in changes[0].text()
    # the probes: the strip has every sample, the table sums them up
    strip = page.find(id="probes-picture").find("g", data_kind="probe-strip")
    assert strip.attrs["data-probe"] == "web-healthy"
    assert int(strip.attrs["data-samples"]) == len(samples)
    marks = strip.find_all(data_kind="sample")
    assert [m.attrs["data-ok"] for m in marks] == ["true"] * len(samples)
    probe_row = page.find("table", class_="probes").find("tr", data_probe="web-healthy")
    assert probe_row.find_all("td")[0].text() == str(len(samples))
    # guardrail verdicts at plan time
    verdicts = page.find("table", class_="guardrails").find("tbody").find_all("tr")
    assert verdicts and all(v.attrs["data-ok"] == "true" for v in verdicts)
    # the journal lists the timeline
    listed = [int(li.attrs["data-seq"]) for li in page.find("ol", id="journal").find_all("li")]
    shown = [e.seq for e in web.store.events(run.id) if e.kind != events.EventKind.REPORT_FACTS]
    assert listed == shown
    # the post-mortem, as the API serves it
    postmortem = page.find(id="postmortem")
    assert postmortem.find("a", id="report-link").attrs["href"] == f"/runs/{run.id}/report"
    report = web.client.get(f"/runs/{run.id}/report")
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/html")
    assert 'data-kind="mutation"' in report.text and run.id in report.text
    markdown = web.client.get(f"/runs/{run.id}/report?format=md")
    assert (
        markdown.headers["content-type"].startswith("text/markdown") and "<svg" not in markdown.text
    )
    # no forms for a finished run, whoever looks
    assert not page.find_all("form", class_="abort") and not page.find_all("form", class_="ack")


def test_a_change_that_could_not_be_undone_is_a_banner_and_a_row_in_words(web: Web) -> None:
    run = seed(
        web.store, "20250101T120000Z-stuck000", state=_S.ROLLBACK_FAILED, at=datetime.now(UTC)
    )
    node = mutations.TargetRef(provider="kubernetes", kind="node", name="node-b1")
    entry = web.store.record_intent(
        run.id,
        mutations.PlannedMutation(
            step="drain",
            target=node,
            action="kubernetes.nodes.drain",
            params={},
            pre_state={},
            undo=mutations.UndoToken(action="kubernetes.nodes.uncordon", data={}),
        ),
    )
    web.store.mark_applied(entry.seq)
    web.store.mark_revert_failed(entry.seq, error="the API server refused: 503", attempts=3)
    web.login(auth.Role.VIEWER)

    page = parse(web.client.get(f"/runs/{run.id}").text)

    banner = page.find("p", class_="banner")
    assert banner.attrs["role"] == "alert" and "could not be undone" in banner.text()
    [row] = page.find("table", class_="changes").find("tbody").find_all("tr")
    assert row.attrs["data-state"] == "revert_failed"
    assert "revert failed" in row.text() and "⚠" in row.text()
    assert "the API server refused: 503" in row.text() and "node-b1" in row.text()
    bar = page.find(id="timeline-picture").find("rect", data_kind="mutation")
    assert bar.attrs["data-state"] == "revert_failed" and bar.attrs["data-open"] == "true"
    assert page.by_id("run-state").text() == "ROLLBACK_FAILED"  # type: ignore[union-attr]


def test_the_page_is_complete_without_inline_script_and_loads_run_js(web: Web) -> None:
    run = waiting_on_cover(web.store)
    web.login(auth.Role.VIEWER)
    text = web.client.get(f"/runs/{run.id}").text
    assert "<script>" not in text and "onclick" not in text.lower() and "javascript:" not in text
    page = parse(text)
    scripts = [s.attrs["src"] for s in page.find_all("script")]
    assert "/static/run.js" in scripts
    root = page.find(id="run")
    assert root.attrs["data-live"] == f"/runs/{run.id}/events"
    assert int(root.attrs["data-last-seq"]) == web.store.events(run.id)[-1].seq
    assert "completed" in root.attrs["data-terminal"].split()
    assert page.by_id("run-state").text() == "INJECTING"  # type: ignore[union-attr]
    for path in ("/static/run.js", "/static/run.css"):
        assert web.client.get(path).status_code == 200


# ---- who sees Abort and Ack -------------------------------------------------------------


def test_a_viewer_sees_no_abort_or_ack_form_and_an_eligible_operator_sees_both(web: Web) -> None:
    run = waiting_on_cover(web.store)
    abort_to = f"/runs/{run.id}/abort"
    ack_to = f"/runs/{run.id}/steps/cover/ack"

    web.login(auth.Role.VIEWER, name="bob")
    as_viewer = parse(web.client.get(f"/runs/{run.id}").text)
    web.login(auth.Role.OPERATOR, name="bob")
    as_bob = parse(web.client.get(f"/runs/{run.id}").text)
    web.login(auth.Role.OPERATOR, name="ops")
    as_ops = parse(web.client.get(f"/runs/{run.id}").text)

    assert not forms_posting_to(as_viewer, abort_to) and not forms_posting_to(as_viewer, ack_to)
    assert "may not acknowledge" in as_viewer.find("section", id="step-cover").text()
    [abort] = forms_posting_to(as_bob, abort_to)
    assert abort.attrs["data-confirm"] and abort.attrs["method"] == "post"
    assert hidden(abort, "csrf_token") and hidden(abort, "idempotency_key")
    assert abort.find("button").text() == "Abort drill"
    [ack] = forms_posting_to(as_bob, ack_to)
    evidence = ack.find("textarea", name="evidence_text")
    assert "required" in evidence.attrs
    assert as_bob.find("label", for_=evidence.attrs["id"]).text() == "What was done"
    assert hidden(ack, "csrf_token") and hidden(ack, "idempotency_key")
    # an operator the step is not assigned to may abort but is told why there is no Ack
    assert forms_posting_to(as_ops, abort_to) and not forms_posting_to(as_ops, ack_to)
    why = as_ops.find("section", id="step-cover").find("p", class_="why-not").text()
    assert "ops" in why and "bob" in why


CHECKOUT = records.ImpactRow(ref="component:default/checkout", owner="group:default/team-payments")


def test_a_scoped_role_acts_only_on_runs_targeting_its_teams_services(web: Web) -> None:
    run = waiting_on_cover(web.store, impact=(CHECKOUT,))
    abort_to, ack_to = f"/runs/{run.id}/abort", f"/runs/{run.id}/steps/cover/ack"

    def page_as(team: str) -> Element:
        secret = web.issue(auth.Role.OPERATOR, name="bob", teams=[team])
        assert web.client.post("/login", data={"token": secret, "next": "/"}).status_code == 303
        return parse(web.client.get(f"/runs/{run.id}").text)

    outside = page_as("group:default/team-storefront")
    csrf = web.csrf(f"/runs/{run.id}")
    refused = web.client.post(
        ack_to, data={"csrf_token": csrf, "idempotency_key": "k1", "evidence_text": "done"}
    )
    inside = page_as("group:default/team-payments")

    assert not forms_posting_to(outside, abort_to) and not forms_posting_to(outside, ack_to)
    assert "outside its scope" in outside.find("p", class_="why-not").text()
    assert refused.status_code == 403
    assert "outside its scope" in parse(refused.text).find("p", class_="error").text()
    assert [e.status for e in audit_of(web.store, "run.ack")] == [403]
    assert forms_posting_to(inside, abort_to) and forms_posting_to(inside, ack_to)


def test_a_finished_run_has_no_abort_form_even_for_an_admin(web: Web) -> None:
    run = seed(web.store, "20250101T120000Z-done0000", state=_S.COMPLETED, at=datetime.now(UTC))
    web.login(auth.Role.ADMIN)
    page = parse(web.client.get(f"/runs/{run.id}").text)
    assert not forms_posting_to(page, f"/runs/{run.id}/abort")
    assert page.find(id="postmortem")


# ---- abort ------------------------------------------------------------------------------


def _abort_form(web: Web, run_id: str) -> dict[str, str]:
    page = parse(web.client.get(f"/runs/{run_id}").text)
    [form] = forms_posting_to(page, f"/runs/{run_id}/abort")
    return {
        "csrf_token": hidden(form, "csrf_token"),
        "idempotency_key": hidden(form, "idempotency_key"),
    }


def test_abort_without_the_csrf_token_is_403_and_changes_nothing(web: Web) -> None:
    run = seed(web.store, "20250101T120000Z-queued00", state=_S.PENDING, at=datetime.now(UTC))
    web.login(auth.Role.OPERATOR)
    missing = web.client.post(f"/runs/{run.id}/abort", data={"idempotency_key": "k1"})
    wrong = web.client.post(
        f"/runs/{run.id}/abort", data={"csrf_token": "nope", "idempotency_key": "k2"}
    )
    assert missing.status_code == 403 and wrong.status_code == 403
    assert "CSRF" in parse(missing.text).find("p", class_="error").text()
    assert web.store.get_run(run.id).state is _S.PENDING


def test_a_viewer_may_not_abort_and_the_refusal_is_audited(web: Web) -> None:
    run = seed(web.store, "20250101T120000Z-queued00", state=_S.PENDING, at=datetime.now(UTC))
    csrf = web.login(auth.Role.VIEWER, name="reader")
    answer = web.client.post(
        f"/runs/{run.id}/abort", data={"csrf_token": csrf, "idempotency_key": "k"}
    )
    assert answer.status_code == 403
    assert "may not abort runs" in parse(answer.text).find("p", class_="error").text()
    assert web.store.get_run(run.id).state is _S.PENDING
    [entry] = audit_of(web.store, "run.abort")
    assert (entry.status, entry.principal, entry.target) == (403, "reader", f"runs/{run.id}/abort")
    assert entry.method == "POST" and entry.path == f"/runs/{run.id}/abort"


def test_an_operator_aborts_a_queued_run_once_however_often_the_form_is_sent(web: Web) -> None:
    run = seed(web.store, "20250101T120000Z-queued00", state=_S.PENDING, at=datetime.now(UTC))
    web.login(auth.Role.OPERATOR, name="ops")
    form = _abort_form(web, run.id)

    first = web.client.post(f"/runs/{run.id[-8:]}/abort", data=form)
    again = web.client.post(f"/runs/{run.id[-8:]}/abort", data=form)  # a double click

    assert first.status_code == again.status_code == 303
    assert first.headers["location"] == again.headers["location"] == f"/runs/{run.id}"
    stopped = web.store.get_run(run.id)
    assert stopped.state is _S.ABORTED
    assert stopped.abort_reason == "aborted by ops from the web pages"
    [entry] = audit_of(web.store, "run.abort")  # acted once, audited once
    assert (entry.status, entry.principal, entry.target) == (200, "ops", f"runs/{run.id}/abort")
    # a new send (a fresh key) of a run that ended is refused: 409, audited
    late = web.client.post(f"/runs/{run.id}/abort", data={**form, "idempotency_key": "fresh"})
    assert late.status_code == 409
    assert "already ended (aborted)" in parse(late.text).find("p", class_="error").text()
    assert sorted(e.status for e in audit_of(web.store, "run.abort")) == [200, 409]


def test_aborting_a_driven_run_asks_its_driver(web: Web) -> None:
    run = waiting_on_cover(web.store)
    web.login(auth.Role.OPERATOR, name="ops")
    answer = web.client.post(f"/runs/{run.id}/abort", data=_abort_form(web, run.id))
    assert answer.status_code == 303
    [request] = web.store.events(run.id, kind=events.EventKind.ABORT_REQUEST)
    assert "the web pages (ops)" in request.message


# ---- acknowledge ------------------------------------------------------------------------


def _ack_form(web: Web, run_id: str, step: str = "cover") -> dict[str, str]:
    page = parse(web.client.get(f"/runs/{run_id}").text)
    [form] = forms_posting_to(page, f"/runs/{run_id}/steps/{step}/ack")
    return {
        "csrf_token": hidden(form, "csrf_token"),
        "idempotency_key": hidden(form, "idempotency_key"),
    }


def test_an_eligible_person_acknowledges_a_step_with_evidence_once(web: Web) -> None:
    run = waiting_on_cover(web.store)
    web.login(auth.Role.OPERATOR, name="bob")
    form = {**_ack_form(web, run.id), "evidence_text": "payments restored via the runbook"}

    done = web.client.post(f"/runs/{run.id}/steps/cover/ack", data=form)
    again = web.client.post(f"/runs/{run.id}/steps/cover/ack", data=form)

    assert done.status_code == again.status_code == 303
    assert done.headers["location"] == f"/runs/{run.id}#step-cover"
    [ack] = web.store.events(run.id, kind=events.EventKind.ACK)
    assert ack.data["by"] == "bob" and ack.data["evidence"] == "payments restored via the runbook"
    [entry] = audit_of(web.store, "run.ack")
    assert (entry.status, entry.principal, entry.target) == (
        200,
        "bob",
        f"runs/{run.id}/steps/cover/ack",
    )
    page = parse(web.client.get(f"/runs/{run.id}").text)
    step = page.find("section", id="step-cover")
    assert step.attrs["data-waiting"] == "false" and "by bob" in step.text()
    assert not forms_posting_to(page, f"/runs/{run.id}/steps/cover/ack")


@pytest.mark.parametrize(
    ("role", "name", "says"),
    [
        (auth.Role.OPERATOR, "alice", "unavailable"),  # absent for the drill
        (auth.Role.OPERATOR, "ops", "who may be: bob, carol"),  # not in team-payments
        (auth.Role.VIEWER, "bob", "may not acknowledge manual steps"),  # the role
    ],
)
def test_an_ack_by_someone_the_step_is_not_for_is_refused_and_audited(
    web: Web, role: auth.Role, name: str, says: str
) -> None:
    run = waiting_on_cover(web.store)
    csrf = web.login(role, name=name)
    answer = web.client.post(
        f"/runs/{run.id}/steps/cover/ack",
        data={"csrf_token": csrf, "idempotency_key": "k", "evidence_text": "done"},
    )
    assert answer.status_code == 403
    assert says in parse(answer.text).find("p", class_="error").text()
    assert web.store.events(run.id, kind=events.EventKind.ACK) == []
    [entry] = audit_of(web.store, "run.ack")
    assert (entry.status, entry.principal) == (403, name)


def test_an_ack_needs_the_evidence_its_step_asks_for_and_a_csrf_token(web: Web) -> None:
    run = waiting_on_cover(web.store)
    web.login(auth.Role.OPERATOR, name="bob")
    form = _ack_form(web, run.id)
    empty = web.client.post(f"/runs/{run.id}/steps/cover/ack", data={**form, "evidence_text": "  "})
    no_csrf = web.client.post(f"/runs/{run.id}/steps/cover/ack", data={"evidence_text": "done"})
    no_step = web.client.post(
        f"/runs/{run.id}/steps/other/ack", data={**form, "evidence_text": "x"}
    )
    assert empty.status_code == 422
    assert "fill in 'what was done'" in parse(empty.text).find("p", class_="error").text()
    assert no_csrf.status_code == 403
    assert no_step.status_code == 403
    assert "no manual step 'other' waiting" in parse(no_step.text).find("p", class_="error").text()
    assert web.store.events(run.id, kind=events.EventKind.ACK) == []
    # the key was released by the refusal: the same form, completed, goes through
    fixed = web.client.post(
        f"/runs/{run.id}/steps/cover/ack", data={**form, "evidence_text": "done"}
    )
    assert fixed.status_code == 303
    assert len(web.store.events(run.id, kind=events.EventKind.ACK)) == 1


def test_the_evidence_text_joins_each_kind_asked_for_and_checks_it() -> None:
    both = runs_page.evidence_text(
        {"evidence_text": "restored", "evidence_url": "https://chat.example/1"},
        asked=["text", "url"],
        choices=(),
        step="cover",
    )
    assert both == "restored; url: https://chat.example/1"
    chose = runs_page.evidence_text(
        {"evidence_choice": "failover"}, asked=["choice"], choices=("failover", "restore"), step="s"
    )
    assert chose == "choice: failover"
    with pytest.raises(runs_page.EvidenceMissing, match="not an http"):
        runs_page.evidence_text({"evidence_url": "chat"}, asked=["url"], choices=(), step="s")
    with pytest.raises(runs_page.EvidenceMissing, match="not one of its choices"):
        runs_page.evidence_text(
            {"evidence_choice": "x"}, asked=["choice"], choices=("a", "b"), step="s"
        )


# ---- the page's event stream -------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Frame:
    seq: int
    kind: str
    data: str


def frames(text: str) -> list[Frame | str]:
    """`text/event-stream` parsed: a `Frame` per event, the text of each comment."""
    found: list[Frame | str] = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        if block.startswith(":"):
            found.append(block[1:].strip())
            continue
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        found.append(Frame(seq=int(fields["id"]), kind=fields["event"], data=fields["data"]))
    return found


def test_the_event_stream_replays_a_run_from_last_event_id_to_its_end(web: Web) -> None:
    run = drive_probed(web)
    web.client.app.dependency_overrides[runs_page.follow_options] = lambda: FAST  # type: ignore[attr-defined]
    every = web.store.events(run.id)
    after = every[2].seq
    web.login(auth.Role.VIEWER)

    whole = web.client.get(f"/runs/{run.id}/events")
    resumed = web.client.get(f"/runs/{run.id}/events", headers={"Last-Event-ID": str(after)})
    by_query = web.client.get(f"/runs/{run.id}/events?lastEventId={after}")

    assert whole.status_code == 200 and whole.headers["content-type"].startswith(
        "text/event-stream"
    )
    assert whole.headers["cache-control"] == "no-cache"
    got = [f for f in frames(whole.text) if isinstance(f, Frame)]
    terminal = next(e for e in every if event_streams.is_terminal_move(e))
    assert [f.seq for f in got] == [e.seq for e in every if e.seq <= terminal.seq]
    assert got[-1].kind == "state" and '"state":"completed"' in got[-1].data
    replayed = [f.seq for f in frames(resumed.text) if isinstance(f, Frame)]
    assert replayed == [e.seq for e in every if after < e.seq <= terminal.seq]
    assert [f.seq for f in frames(by_query.text) if isinstance(f, Frame)] == replayed
    # the frames are the API's, byte for byte
    from drills.api.routes import events as api_events

    assert whole.text.startswith(api_events.frame(event_streams.Delivered(every[0])))


def test_the_event_stream_ends_for_a_run_that_ended_before_the_cursor(web: Web) -> None:
    run = seed(web.store, "20250101T120000Z-done0000", state=_S.COMPLETED, at=datetime.now(UTC))
    web.client.app.dependency_overrides[runs_page.follow_options] = lambda: FAST  # type: ignore[attr-defined]
    web.login(auth.Role.VIEWER)
    answer = web.client.get(f"/runs/{run.id}/events", headers={"Last-Event-ID": "999"})
    assert answer.status_code == 200 and frames(answer.text) == []


def test_each_entry_state_has_words_and_a_symbol() -> None:
    for state in mutations.EntryState:
        css, symbol, words = runs_page.ENTRY_STYLES[state.value]
        assert css.startswith("state-") and symbol and re.search("[a-z]", words)
    for run_state in _S:
        css, symbol = runs_page.STATE_STYLES[run_state.value]
        assert css.startswith("state-") and symbol


def test_durations_read_as_people_write_them() -> None:
    assert runs_page.duration_text(0.42) == "0.4 s"
    assert runs_page.duration_text(42) == "42 s"
    assert runs_page.duration_text(185) == "3m 05s"
    assert runs_page.duration_text(7800) == "2h 10m"
    assert runs_page.duration_text(None) == "—"
