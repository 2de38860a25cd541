"""Blameless lint: each rule fires on crafted text; generated reports pass."""

from __future__ import annotations

import pytest

from reports import linting, rendering

ACTION_HEAD = (
    "| # | Action | Owner | Due | Priority | Class | Evidence |\n|---|---|---|---|---|---|---|\n"
)


def _document(**sections: str) -> str:
    parts = ["# Report", ""]
    for title in rendering.SECTIONS:
        key = title.lower()
        body = sections.get(key, "")
        if key == "timeline" and not body:
            body = (
                "| Time (UTC) | Kind | Event | Evidence |\n|---|---|---|---|\n"
                "| 2025-01-01 10:00:00.000Z | state | started | event #1 |"
            )
        if key == "action items" and not body:
            body = (
                ACTION_HEAD
                + "| 1 | Add an alert on errors | team-web | 2025-02-01 | P2 | detect | event #1 |"
            )
        if key == "contributing factors" and not body:
            body = "- the retry budget was small\n- the alert threshold was high"
        parts += [f"## {title}", "", body or "- nothing to add", ""]
    return "\n".join(parts)


def _rules(text: str, people: tuple[str, ...] = ("ann", "Ann Lee")) -> set[str]:
    return {finding.rule for finding in linting.lint(text, people=people)}


def test_a_complete_blameless_document_has_no_findings() -> None:
    assert linting.lint(_document(), people=["ann"]) == []


@pytest.mark.parametrize(
    ("section", "text", "rule"),
    [
        ("what went wrong", "- ann forgot to renew the certificate", "person-blame"),
        ("summary", "Ann Lee broke the deploy.", "person-blame"),
        ("summary", "The engineer failed the rollout.", "person-blame"),
        ("what went wrong", "- we should have paged sooner", "counterfactual"),
        ("what went wrong", "- the job failed to retry", "counterfactual"),
        ("summary", "If only the alert had fired.", "counterfactual"),
        ("contributing factors", "- human error\n- a second factor", "blocking-term"),
        ("contributing factors", "- a careless change\n- another", "blocking-term"),
        ("what went wrong", "- the operator was negligent", "blocking-term"),
        ("summary", "The fix was obviously right.", "hindsight"),
        ("summary", "We simply restarted it.", "hindsight"),
    ],
)
def test_wording_rules_fire_on_crafted_text(section: str, text: str, rule: str) -> None:
    findings = linting.lint(_document(**{section: text}), people=["ann", "Ann Lee"])
    assert rule in {f.rule for f in findings}
    found = next(f for f in findings if f.rule == rule)
    assert found.line > 0 and found.suggestion


def test_names_inside_inline_code_are_quoted_material_not_blame() -> None:
    text = _document(summary="The message was `ann failed to ack`.")
    assert linting.lint(text, people=["ann"]) == []


def test_blocking_terms_outside_cause_fields_are_allowed() -> None:
    assert "blocking-term" not in _rules(_document(participants="- human error researcher"))


def test_action_item_without_verb_owner_or_due_date_is_flagged() -> None:
    table = ACTION_HEAD + "| 1 | The alerting | - | soon | P2 | detect | event #1 |"
    assert {"action-verb", "action-owner", "action-due"} <= _rules(
        _document(**{"action items": table})
    )


def test_action_items_as_bullets_are_checked_too() -> None:
    good = "- [ ] Add a canary — owner: team-web — due: 2025-02-01"
    bad = "- [ ] Canary deploys"
    assert linting.lint(_document(**{"action items": good})) == []
    assert {"action-owner", "action-due", "action-verb"} <= _rules(
        _document(**{"action items": bad})
    )


def test_timeline_rows_without_evidence_or_out_of_order_are_flagged() -> None:
    table = (
        "| Time (UTC) | Kind | Event | Evidence |\n|---|---|---|---|\n"
        "| 2025-01-01 10:00:05.000Z | state | started | event #1 |\n"
        "| 2025-01-01 10:00:01.000Z | probe | failed | probe sample #2 |\n"
        "| 2025-01-01 10:00:09.000Z | abort | stopped |  |"
    )
    findings = linting.lint(_document(timeline=table))
    assert [(f.rule, f.line) for f in findings if f.rule.startswith("timeline")] == [
        ("timeline-order", findings[0].line),
        ("timeline-evidence", findings[1].line),
    ]


def test_missing_sections_including_where_we_got_lucky_are_flagged() -> None:
    text = _document().replace("## Where we got lucky", "## Luck")
    findings = [f for f in linting.lint(text) if f.rule == "missing-section"]
    assert len(findings) == 1 and "Where we got lucky" in findings[0].message


def test_single_root_cause_without_contributing_factors_is_flagged() -> None:
    text = _document(
        summary="The root cause was the cache.",
        **{"contributing factors": "- the cache"},
    )
    assert "single-root-cause" in _rules(text)
    plural = _document(summary="The root cause was the cache.")
    assert "single-root-cause" not in _rules(plural)


def test_people_names_come_from_cmdb_users(tmp_path: object) -> None:
    from pathlib import Path

    from tests.reports import factories

    catalog = factories.write_catalog(Path(str(tmp_path)) / "cmdb")
    assert {"ann", "Ann Lee", "ben", "Ben Ode"} <= set(linting.people_names(catalog))
