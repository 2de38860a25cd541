"""Pictures: the run timeline, probe strips and coverage trend SVG, parsed back and checked."""

from __future__ import annotations

import datetime as dt
import re
import xml.etree.ElementTree as ET
from pathlib import Path

from orchestrator import mutations, records, states
from reports import coverage, coverage_rendering, evidence, pictures, policy, postmortem, writing
from tests.reports import factories

SVG = "{http://www.w3.org/2000/svg}"
X0, X1 = 190.0, 975.0
NASTY = '<script>&"'


def _built(tmp_path: Path, **kwargs: object) -> tuple[evidence.RunEvidence, pictures.RunPictures]:
    store = factories.open_store(tmp_path)
    run = factories.record_run(store, **kwargs)  # type: ignore[arg-type]
    found = evidence.load(store, run.id)
    report = postmortem.build_postmortem(found, factories.scenario(tmp_path / "scenario"))
    store.close()
    return found, pictures.pictures_of(found, report)


def _parse(text: str) -> ET.Element:
    root = ET.fromstring(text)
    assert root.tag == f"{SVG}svg" and root.get("role") == "img"
    assert root.get("width") == "100%" and root.get("viewBox", "").startswith("0 0 1000 ")
    assert root.find(f"{SVG}title") is not None and root.find(f"{SVG}desc") is not None
    assert root.find(f".//{SVG}g[@data-kind='legend']") is not None
    return root


def _kind(root: ET.Element, kind: str) -> list[ET.Element]:
    return [e for e in root.iter() if e.get("data-kind") == kind]


def _x(seconds: float, duration: float) -> float:
    return X0 + (X1 - X0) * min(max(seconds, 0.0), duration) / duration


def _since(found: evidence.RunEvidence, at: dt.datetime) -> float:
    return (at - found.run.started_at).total_seconds()


def _mutation_times(found: evidence.RunEvidence, state: str) -> dict[int, float]:
    return {
        int(str(e.data["seq"])): _since(found, e.at)
        for e in found.events
        if e.kind == "mutation" and e.data.get("state") == state
    }


def test_change_bars_start_when_applied_and_end_when_reverted(tmp_path: Path) -> None:
    found, figures = _built(tmp_path)
    root = _parse(pictures.timeline_svg(figures.timeline))
    duration = figures.timeline.duration_s
    assert duration == _since(found, found.run.finished_at or found.run.started_at)
    applied, reverted = _mutation_times(found, "applied"), _mutation_times(found, "reverted")

    bars = _kind(root, "mutation")
    assert [int(b.get("data-seq", "0")) for b in bars] == [1, 2]
    for bar in bars:
        seq = int(bar.get("data-seq", "0"))
        assert float(bar.get("data-start-s", "")) == applied[seq]
        assert float(bar.get("data-end-s", "")) == reverted[seq]
        assert abs(float(bar.get("x", "")) - _x(applied[seq], duration)) < 0.02
        width = float(bar.get("width", ""))
        assert abs(width - (_x(reverted[seq], duration) - _x(applied[seq], duration))) < 0.03
        assert bar.get("data-target") == f"kubernetes node node-a-{seq}"
        assert bar.get("data-state") == "reverted" and bar.get("data-open") is None


def test_a_change_never_reverted_draws_to_the_end_labelled_not_reverted(tmp_path: Path) -> None:
    _, figures = _built(tmp_path, revert_fails=True)
    root = _parse(pictures.timeline_svg(figures.timeline))

    left = [b for b in _kind(root, "mutation") if b.get("data-open") == "true"]
    assert [b.get("data-seq") for b in left] == ["1"]
    assert left[0].get("data-state") == "revert_failed" and left[0].get("fill") == "#ffffff"
    assert float(left[0].get("data-end-s", "")) == figures.timeline.duration_s
    end = float(left[0].get("x", "")) + float(left[0].get("width", ""))
    assert abs(end - X1) < 0.02
    labels = [e.text for e in root.iter() if e.get("data-label")]
    assert labels == ["not reverted"]
    assert "1 not reverted" in (root.findtext(f"{SVG}desc") or "")


def test_guardrail_trip_and_abort_are_markers_at_their_events(tmp_path: Path) -> None:
    found, figures = _built(tmp_path)
    root = _parse(pictures.timeline_svg(figures.timeline))
    duration = figures.timeline.duration_s
    trip = next(e for e in found.events if e.kind == "guardrail" and e.data.get("ok") is False)
    abort = next(e for e in found.events if e.kind == "abort")

    for kind, event in (("guardrail", trip), ("abort", abort)):
        (marker,) = _kind(root, kind)
        assert marker.get("data-seq") == str(event.seq)
        assert float(marker.get("data-at-s", "")) == _since(found, event.at)
        assert abs(float(marker.get("data-x", "")) - _x(_since(found, event.at), duration)) < 0.02
    assert "guardrail abort-when tripped" in (
        _kind(root, "guardrail")[0].findtext(f"{SVG}title") or ""
    )


def test_held_run_has_no_markers_and_phases_follow_the_state_events(tmp_path: Path) -> None:
    found, figures = _built(tmp_path, deviate=False)
    root = _parse(pictures.timeline_svg(figures.timeline))

    assert _kind(root, "guardrail") == [] and _kind(root, "abort") == []
    phases = [(b.get("data-phase"), float(b.get("data-start-s", ""))) for b in _kind(root, "phase")]
    states_seen = [
        (str(e.data["state"]), _since(found, e.at)) for e in found.events if e.kind == "state"
    ]
    assert phases == states_seen
    assert [p for p, _ in phases] == ["planning", "injecting", "rolling_back", "verifying"]


def test_t0_and_recovery_lines_sit_at_their_times_and_a_late_target_is_flagged(
    tmp_path: Path,
) -> None:
    found, figures = _built(tmp_path)
    root = _parse(pictures.timeline_svg(figures.timeline))
    duration = figures.timeline.duration_s
    t0 = _since(found, found.run.record.objectives.t0)  # type: ignore[union-attr,arg-type]
    lines = {g.get("data-line"): g for g in _kind(root, "line")}

    assert float(lines["t0"].get("data-at-s", "")) == round(t0, 3)
    assert abs(float(lines["t0"].get("data-x", "")) - _x(t0, duration)) < 0.02
    assert float(lines["recovery"].get("data-at-s", "")) == round(t0 + 1.5, 3)
    target = lines["rto-target"]
    assert float(target.get("data-at-s", "")) == round(t0 + 60.0, 3)
    assert target.get("data-beyond") == "true" and float(target.get("data-x", "")) == X1


def test_lines_inside_the_run_are_drawn_proportionally() -> None:
    timeline = pictures.RunTimeline(
        title="t",
        duration_s=200.0,
        lines=(
            pictures.Line(kind="t0", at_s=20.0, label="T0"),
            pictures.Line(kind="rto-target", at_s=120.0, label="RTO target"),
        ),
    )
    root = _parse(pictures.timeline_svg(timeline))
    xs = {g.get("data-line"): float(g.get("data-x", "")) for g in _kind(root, "line")}
    assert xs == {"t0": round(_x(20, 200), 2), "rto-target": round(_x(120, 200), 2)}
    assert all(g.get("data-beyond") is None for g in _kind(root, "line"))


def test_probe_strip_marks_pass_as_dots_and_failures_as_crosses_at_their_times(
    tmp_path: Path,
) -> None:
    found, figures = _built(tmp_path)
    duration = figures.timeline.duration_s
    root = _parse(pictures.probe_strips_svg(figures.probes, duration_s=duration))
    samples = [e for e in found.events if e.kind == "probe"]

    (strip,) = _kind(root, "probe-strip")
    assert strip.get("data-probe") == "web-healthy" and strip.get("data-samples") == "4"
    marks = _kind(root, "sample")
    assert [(m.tag, m.get("data-ok")) for m in marks] == [
        (f"{SVG}circle", "true"),
        (f"{SVG}path", "false"),
        (f"{SVG}path", "false"),
        (f"{SVG}circle", "true"),
    ]
    for mark, event in zip(marks, samples, strict=True):
        assert float(mark.get("data-at-s", "")) == round(_since(found, event.at), 3)
        assert abs(float(mark.get("data-x", "")) - _x(_since(found, event.at), duration)) < 0.02
    assert [m.get("data-phase") for m in marks] == ["before", "during", "during", "after"]
    assert _kind(root, "latency") == []  # these samples measured no latency


def test_many_samples_are_bucketed_and_the_description_says_so() -> None:
    taken = tuple(
        pictures.Sample(at_s=i * 0.5, ok=i % 100 != 7, phase="during", latency_ms=float(i % 40))
        for i in range(1500)
    )
    root = _parse(pictures.probe_strips_svg([pictures.ProbeStrip("api", taken)], duration_s=750.0))

    marks = _kind(root, "sample")
    assert len(marks) == pictures.MAX_SAMPLES
    assert sum(int(m.get("data-count", "1")) for m in marks) == 1500
    failed = [m for m in marks if m.get("data-ok") == "false"]
    assert len(failed) == 15 and all(m.get("data-failed") == "1" for m in failed)
    desc = root.findtext(f"{SVG}desc") or ""
    assert "1500 sample(s), 15 failed, shown in 600 time bucket(s)" in desc
    (latency,) = _kind(root, "latency")
    assert latency.get("data-max-ms") == "39"


def test_more_changes_than_the_cap_become_one_counted_band() -> None:
    bars = tuple(
        pictures.Bar(
            kind="mutation",
            label=f"#{i} step: act",
            target=f"node-{i}",
            start_s=float(i),
            end_s=float(i + 10),
            state="reverted",
            seq=i,
        )
        for i in range(1, 651)
    )
    root = _parse(pictures.timeline_svg(pictures.RunTimeline("big", 700.0, bars=bars)))

    assert len(_kind(root, "mutation")) == pictures.MAX_BARS
    (band,) = _kind(root, "mutation-aggregate")
    assert band.get("data-count") == "150"
    assert band.get("data-start-s") == "501" and band.get("data-end-s") == "660"
    assert any(e.text == "+150 more change(s)" for e in root.iter(f"{SVG}text"))


def test_names_are_escaped_and_no_active_content_is_written() -> None:
    timeline = pictures.RunTimeline(
        title=NASTY,
        duration_s=10.0,
        bars=(pictures.Bar("mutation", NASTY, NASTY, 1.0, 2.0, "applied", 1, open_ended=True),),
        markers=(pictures.Marker("abort", 3.0, NASTY, 9),),
    )
    strips = [pictures.ProbeStrip(NASTY, (pictures.Sample(1.0, True, "during"),))]
    trend = [pictures.WeekCount(NASTY, dt.date(2025, 3, 3), 2)]
    for text in (
        pictures.timeline_svg(timeline),
        pictures.probe_strips_svg(strips, duration_s=10.0),
        pictures.coverage_trend_svg(trend),
    ):
        root = _parse(text)
        assert "<script" not in text and "foreignObject" not in text and "url(" not in text
        assert not re.search(r"\son[a-z]+=", text)
        assert any(NASTY in (e.text or "") for e in root.iter())
        assert any(NASTY in v for e in root.iter() for v in e.attrib.values())


def _contrast(colour: str) -> float:
    def channel(value: int) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    lum = 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)
    return 1.05 / (lum + 0.05)


def test_marks_and_text_have_aa_contrast_against_white(tmp_path: Path) -> None:
    _, figures = _built(tmp_path, revert_fails=True)
    text = pictures.timeline_svg(figures.timeline) + pictures.probe_strips_svg(
        figures.probes, duration_s=figures.timeline.duration_s
    )
    root = ET.fromstring(
        "<all>" + re.sub(r"<svg[^>]*>", "<svg>", text).replace("</svg>", "</svg>") + "</all>"
    )
    colours = set()
    for element in root.iter():
        tag = element.tag.rpartition("}")[2]
        if tag in ("text", "path", "circle") and element.get("fill", "none") != "none":
            colours.add(element.get("fill", ""))
        if (element.get("stroke") and tag != "line") or element.get("data-kind") == "line":
            colours.add(element.get("stroke", ""))
    colours.discard("")
    colours.discard("#ffffff")
    assert colours and all(_contrast(c) >= 4.5 for c in colours), {
        c: round(_contrast(c), 2) for c in colours
    }


def test_the_html_post_mortem_shows_the_pictures_and_the_markdown_does_not(
    tmp_path: Path,
) -> None:
    store = factories.open_store(tmp_path)
    run = factories.record_run(store, revert_fails=True)
    written = writing.write_for_run(store.get_run(run.id), store, None, tmp_path / "reports")
    store.close()
    page = written.html.read_text(encoding="utf-8")
    markdown = written.markdown.read_text(encoding="utf-8")

    timeline = page.index('data-picture="timeline"')
    assert page.index('<h2 id="timeline">') < timeline < page.index("<th>Time (UTC)</th>")
    assert page.index('data-picture="probes"') < page.index("<th>Time (UTC)</th>")
    for svg in re.findall(r"<svg.*?</svg>", page, flags=re.S):
        _parse(svg)
    assert "<svg" not in markdown and "data-kind" not in markdown
    assert "<script" not in page and "url(" not in page


def test_a_secret_in_a_step_name_or_target_never_reaches_the_html_svg(tmp_path: Path) -> None:
    secret = "sekrit-Zq9-value"
    store = factories.open_store(tmp_path)
    rid = states.RunId("run-secret")
    owner = states.Owner(host="h", pid=1, token="t")
    store.create_run(
        states.new_run(
            id=rid,
            scenario="zone-loss",
            environment="staging",
            environment_source="e.yaml",
            owner=owner,
            at=factories.T0,
        )
    )
    store.append_event(rid, kind="state", message="injecting", data={"state": "injecting"})
    entry = store.record_intent(
        rid,
        mutations.PlannedMutation(
            step=f"drain-{secret}",
            target=mutations.TargetRef(provider="kubernetes", kind="node", name=f"n-{secret}"),
            action="kubernetes.nodes.taint",
            params={},
            pre_state={},
            undo=mutations.UndoToken(action="kubernetes.nodes.taint", data={}),
        ),
    )
    store.mark_applied(entry.seq)
    store.append_event(rid, kind="mutation", message="applied", data={"seq": 1, "state": "applied"})
    store.mark_reverted(entry.seq)
    store.append_event(
        rid, kind="mutation", message="reverted", data={"seq": 1, "state": "reverted"}
    )
    last = store.events(rid)[-1].at
    store.save_run(
        states.Run(
            id=rid,
            scenario="zone-loss",
            environment="staging",
            environment_source="e.yaml",
            state=states.RunState.COMPLETED,
            started_at=factories.T0,
            updated_at=last,
            finished_at=last,
            owner=owner,
            verdict=states.Verdict.HELD,
            record=records.RunRecord(),
        ),
        expected_state=states.RunState.PENDING,
    )
    assert secret in store.entries(rid)[0].step  # the journal keeps the step as written
    store.mask_secrets([secret])

    written = writing.write_for_run(store.get_run(rid), store, None, tmp_path / "reports")
    store.close()
    page = written.html.read_text(encoding="utf-8")
    (svg,) = re.findall(r'<svg[^>]*data-picture="timeline".*?</svg>', page, flags=re.S)
    (bar,) = _kind(_parse(svg), "mutation")
    assert bar.get("data-target") == "kubernetes node n-***"
    assert secret not in page


def _summary(mode: str, days_ago: float, *, passed: bool = True) -> coverage.RunSummary:
    return coverage.RunSummary(
        run_id=f"{mode}-{days_ago}",
        scenario=f"{mode}-drill",
        failure_mode=mode,
        finished_at=TREND_NOW - dt.timedelta(days=days_ago),
        passed=passed,
        result="completed/held" if passed else "aborted/deviated",
        impacted={"component:default/web": 0, "component:default/api": 0},
        fingerprints={},
        achieved_rto_s=1.0,
    )


TREND_NOW = dt.datetime(2025, 6, 4, 12, tzinfo=dt.UTC)  # a Wednesday


def test_coverage_trend_has_a_bar_per_week_per_mode_counting_fresh_passes(
    tmp_path: Path,
) -> None:
    catalog = factories.write_catalog(tmp_path / "cmdb")
    runs = [
        _summary("availability-zone", 15),  # two weeks back (Mon 2025-05-19 week)
        _summary("region", 1),
        _summary("region", 8, passed=False),
    ]
    counts = pictures.weekly_fresh(
        catalog=catalog, rules=policy.load(), runs=runs, now=TREND_NOW, weeks=3
    )
    root = _parse(pictures.coverage_trend_svg(counts))
    bars = {
        (b.get("data-mode"), b.get("data-week")): b.get("data-fresh") for b in _kind(root, "trend")
    }

    weeks = ["2025-05-19", "2025-05-26", "2025-06-02"]
    assert {w for _, w in bars} == set(weeks)
    assert [bars[("availability-zone", w)] for w in weeks] == ["2", "2", "2"]
    assert [bars[("region", w)] for w in weeks] == ["0", "0", "2"]
    assert len(bars) == 3 * len({m for m, _ in bars})
    matrix = coverage.build_matrix(catalog=catalog, rules=policy.load(), runs=runs, now=TREND_NOW)
    latest = {r.label: r.fresh for r in matrix.by_mode}
    assert all(int(bars[(m, weeks[-1])] or 0) == f for m, f in latest.items())

    page = coverage_rendering.render(matrix, coverage_rendering.Format.HTML, trend=counts)
    assert page.index('data-picture="trend"') < page.index("<h2>Roll-ups</h2>")
    plain = coverage_rendering.render(matrix, coverage_rendering.Format.HTML)
    assert "<svg" not in plain
    assert "<svg" not in coverage_rendering.render(matrix, coverage_rendering.Format.MARKDOWN)


def test_coverage_trend_without_runs_says_so() -> None:
    root = _parse(pictures.coverage_trend_svg([]))
    assert _kind(root, "trend") == []
    assert any(e.text == "No runs yet." for e in root.iter(f"{SVG}text"))
