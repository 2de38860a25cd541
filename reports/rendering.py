"""Rendering: a `PostMortem` as Markdown, self-contained HTML and JSON.

Markdown is the editable source of truth after review (the blameless lint reads it);
HTML is one file with inline CSS and no network assets that prints well; JSON is the
model itself (with `achieved_rto` and `target_rto` in seconds). Renderers only format:
every decision lives in `postmortem.build_postmortem`. Recorded text is shown as
inline code, which the lint leaves alone.
"""

from __future__ import annotations

import datetime as dt
import enum
import functools

import jinja2
import markupsafe

from reports import markup, pictures, postmortem, run_facts

SECTIONS: tuple[str, ...] = (
    "Summary",
    "Hypothesis and result",
    "Impact",
    "Timeline",
    "Detection",
    "Response and recovery",
    "What went well",
    "What went wrong",
    "Where we got lucky",
    "Contributing factors",
    "Action items",
    "Participants",
    "Appendix: changes and their undo",
)
"""The sections every post-mortem has, in order (the lint checks they are all there)."""


class Format(enum.StrEnum):
    MARKDOWN = "md"
    HTML = "html"
    JSON = "json"

    @property
    def suffix(self) -> str:
        return {"md": ".md", "html": ".html", "json": ".json"}[self.value]


def utc(value: dt.datetime | None) -> str:
    """`2025-01-01 12:00:00.123Z` (UTC, milliseconds), or `-`."""
    if value is None:
        return "-"
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def seconds(value: float | None) -> str:
    return postmortem.fmt_seconds(value)


def human(value: float | None) -> str:
    """Rounded for people: `0.4 s`, `12 s`, `10 min 56 s` (a derived figure, not a reading)."""
    return run_facts.fmt_duration(value)


def render(
    report: postmortem.PostMortem,
    fmt: Format,
    *,
    figures: pictures.RunPictures | None = None,
) -> str:
    """`report` in `fmt`; HTML shows `figures` (the run's pictures) above the timeline."""
    if fmt is Format.MARKDOWN:
        return to_markdown(report)
    if fmt is Format.HTML:
        return to_html(report, figures=figures)
    return to_json(report)


def to_json(report: postmortem.PostMortem) -> str:
    return report.model_dump_json(indent=2) + "\n"


def to_markdown(report: postmortem.PostMortem) -> str:
    """The report as GitHub-flavoured Markdown (deterministic: golden-tested)."""
    lines: list[str] = [f"# {report.metadata.title}", ""]
    lines += _metadata_md(report)
    lines += ["", "## Summary", "", " ".join(report.summary), ""]
    lines += ["## Hypothesis and result", "", f"> {' '.join(report.hypothesis.split())}", ""]
    lines += [f"**Result:** {report.result}", ""]
    lines += ["## Impact", ""]
    lines += _impact_md(report)
    lines += ["", "## Timeline", ""]
    lines += markup.table(
        ["Time (UTC)", "Kind", "Event", "Evidence"],
        [
            (
                utc(row.at),
                markup.cell(row.kind),
                markup.cell(row.what) + (f" {markup.code(row.quoted)}" if row.quoted else ""),
                markup.cell(row.evidence),
            )
            for row in report.timeline
        ],
    )
    lines += ["", "## Detection", "", report.detection.how, ""]
    lines += _detection_md(report)
    lines += ["", "## Response and recovery", "", report.recovery.text, ""]
    lines += _recovery_md(report)
    lines += _manual_md(report)
    lines += ["", "## What went well", ""] + [f"- {item}" for item in report.went_well]
    lines += ["", "## What went wrong", ""] + [f"- {item}" for item in report.went_wrong]
    lines += [
        f"- {f.text} {markup.code(f.message)} (evidence: {f.evidence})" for f in report.findings
    ]
    lines += ["", "## Where we got lucky", ""] + [f"- {item}" for item in report.lucky]
    lines += ["", "## Contributing factors", ""]
    lines += [f"- {f.text} (evidence: {f.evidence})" for f in report.contributing_factors]
    lines += ["", "## Action items", ""]
    lines += markup.table(
        ["#", "Action", "Owner", "Due", "Priority", "Class", "Evidence"],
        [
            (
                i,
                markup.cell(a.title),
                markup.cell(a.owner),
                a.due.isoformat(),
                a.priority.value,
                a.action_class.value,
                markup.cell(a.evidence),
            )
            for i, a in enumerate(report.action_items, 1)
        ],
    )
    lines += ["", "## Participants", ""]
    lines += markup.table(
        ["Role", "Who", "Details"],
        [
            (
                markup.cell(p.role),
                markup.cell(p.who),
                " ".join(part for part in (markup.cell(p.detail), markup.code(p.quoted)) if part),
            )
            for p in report.participants
        ],
    )
    lines += ["", "## Appendix: changes and their undo", ""]
    if report.appendix:
        lines += markup.table(
            ["Journal #", "Step", "Action", "Target", "State", "Undo", "Attempts", "Error"],
            [
                (
                    m.seq,
                    markup.cell(m.step),
                    markup.code(m.action),
                    markup.code(m.target),
                    m.state,
                    markup.cell(m.undo),
                    m.attempts,
                    markup.code(m.error) if m.error else "",
                )
                for m in report.appendix
            ],
        )
    else:
        lines.append("No change was made to the environment.")
    return "\n".join(lines) + "\n"


def _metadata_md(report: postmortem.PostMortem) -> list[str]:
    meta = report.metadata
    params = ", ".join(markup.code(f"{k}={v}") for k, v in meta.parameters.items())
    source = f" ({markup.code(meta.scenario_source)})" if meta.scenario_source else ""
    rows: list[tuple[str, str]] = [
        ("Type", meta.kind.value),
        ("Status", meta.status.value),
        ("Run", markup.code(meta.run_id)),
        ("Scenario", markup.cell(meta.scenario) + source),
        ("Drill", markup.cell(meta.drill or "-")),
        ("Failure mode", markup.cell(meta.failure_mode)),
        ("Environment", markup.cell(meta.environment)),
        ("State", meta.state),
        ("Verdict", meta.verdict or "-"),
        ("Started (UTC)", utc(meta.started_at)),
        ("Finished (UTC)", utc(meta.finished_at)),
        ("Duration", seconds(meta.duration_s)),
        ("Time scale", f"{meta.time_scale:g}"),
        ("Parameters", params or "-"),
    ]
    return markup.table(["Field", "Value"], rows)


def _impact_md(report: postmortem.PostMortem) -> list[str]:
    if not report.impact:
        return ["No CMDB service was recorded for this run."]
    return markup.table(
        [
            "Service",
            "Tier",
            "System",
            "Reached",
            "Path",
            "Owner",
            "People",
            "On call",
            "RTO",
            "RPO",
            "Findings",
        ],
        [
            (
                markup.cell(row.name + (f" ({row.title})" if row.title else "")),
                row.tier if row.tier is not None else "-",
                markup.cell(row.system or "-"),
                _reached(row),
                markup.cell(" → ".join(row.path)),
                markup.cell(row.owner or "-"),
                markup.cell(", ".join(row.owner_people) or "-"),
                markup.cell(", ".join(row.on_call) or "-"),
                seconds(row.target_rto_s) if row.target_rto_s is not None else "-",
                seconds(row.target_rpo_s) if row.target_rpo_s is not None else "-",
                markup.cell(", ".join(row.findings) or "-"),
            )
            for row in report.impact
        ],
    )


def _reached(row: postmortem.ImpactRow) -> str:
    """How a service came into the report: targeted, downstream, or flagged by a finding."""
    if row.targeted:
        return "targeted"
    if row.flagged:
        return "flagged by analysis"
    return f"downstream ({row.distance})"


def _detection_md(report: postmortem.PostMortem) -> list[str]:
    d = report.detection
    return [
        f"- Signal: {markup.cell(d.signal or 'none')}",
        f"- First signal (UTC): {utc(d.first_signal_at)}",
        f"- Time to detect: {seconds(d.time_to_detect_s)}",
        f"- Abort (UTC): {utc(d.abort_at)}; after {seconds(d.time_to_abort_s)}",
        f"- Evidence: {d.evidence or '-'}",
    ]


def _recovery_md(report: postmortem.PostMortem) -> list[str]:
    r = report.recovery
    met = _met(r.rto_met)
    return [
        f"- First fault (T0, UTC): {utc(r.t0)}",
        f"- First revert (UTC): {utc(r.first_revert_at)};"
        f" after {seconds(r.time_to_first_revert_s)}",
        f"- Achieved RTO: {seconds(r.achieved_rto_s)} real time, of which"
        f" {human(r.manual_wait_s or 0.0)} waiting for people (never scaled);"
        f" real-world equivalent {human(r.real_world_rto_s)}",
        f"- Target RTO: {seconds(r.scaled_target_rto_s)} scaled; {seconds(r.target_rto_s)} real"
        f" at time scale {r.time_scale:g}: {met}",
        f"- Achieved RPO: {seconds(r.achieved_rpo_s)} (scaled time"
        + (f"; canary {markup.cell(r.rpo_canary)}" if r.rpo_canary else "")
        + ")",
        f"- Target RPO: {seconds(r.scaled_target_rpo_s)} scaled; {seconds(r.target_rpo_s)} real"
        f" at time scale {r.time_scale:g}: {_met(r.rpo_met)}",
        f"- Every change undone: {'yes' if r.all_reverted else 'NO'}",
    ]


def _met(value: bool | None) -> str:
    return {True: "met", False: "MISSED", None: "not judged"}[value]


def _manual_md(report: postmortem.PostMortem) -> list[str]:
    if not report.manual_steps:
        return []
    lines = ["", "### Manual steps", ""]
    lines += markup.table(
        [
            "Step",
            "Assigned to",
            "May act",
            "Absent (simulated)",
            "Outcome",
            "Acknowledged by",
            "Waited",
            "Ack evidence",
            "Recorded",
        ],
        [
            (
                markup.cell(m.step),
                markup.cell(f"{m.assignee} ({m.role})"),
                markup.cell(manual_eligible(m)),
                markup.cell(", ".join(m.absent) or "-"),
                markup.cell(m.outcome.value),
                markup.cell(m.acknowledged_by or ("--auto-ack" if m.automated else "-")),
                seconds(m.waited_s),
                markup.code(m.ack_evidence) if m.ack_evidence else "-",
                markup.cell(m.evidence),
            )
            for m in report.manual_steps
        ],
    )
    return lines


def manual_eligible(step: postmortem.ManualStep) -> str:
    """Who could act on a manual step, for people."""
    if step.eligible is None:
        return "anyone (no CMDB)"
    return ", ".join(step.eligible) or f"nobody ({step.problem or 'no one eligible'})"


@functools.cache
def template_environment() -> jinja2.Environment:
    """The jinja2 environment of the report templates (autoescaped, strict, with the
    filters `utc`, `seconds` and `eligible`); the game-day report renders with it too."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("reports", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["utc"] = utc
    env.filters["seconds"] = seconds
    env.filters["eligible"] = manual_eligible
    return env


def to_html(report: postmortem.PostMortem, *, figures: pictures.RunPictures | None = None) -> str:
    """One self-contained HTML page: inline CSS, no scripts, no external URLs.

    `figures` (from `pictures.pictures_of`) are inlined as SVG above the timeline table:
    only that SVG, escaped where it is built, is marked safe; everything else stays
    autoescaped.
    """
    template = template_environment().get_template("postmortem.html.j2")
    svg: dict[str, markupsafe.Markup] | None = None
    if figures is not None:
        duration = figures.timeline.duration_s
        svg = {
            "timeline": markupsafe.Markup(pictures.timeline_svg(figures.timeline)),
            "probes": markupsafe.Markup(
                pictures.probe_strips_svg(figures.probes, duration_s=duration)
            ),
        }
    return template.render(r=report, sections=SECTIONS, figures=svg)
