"""Post-mortems of key-person runs: findings, manual steps, the absent person, and RPO."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from orchestrator import journal, mutations, states
from orchestrator.cmdb import models as cmdb
from orchestrator.providers.people import analysing
from reports import evidence, linting, postmortem, rendering
from tests.people import factories as people_factories
from tests.reports import factories

PEOPLE = ("alice", "bob", "carol", "dan", "frank", "Alice Ames", "Bob Berg", "Carol Cho")


def _build(
    tmp_path: Path, **kwargs: object
) -> tuple[postmortem.PostMortem, cmdb.Catalog, states.Run]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    store = factories.open_store(tmp_path)
    run = factories.record_key_person_run(store, **kwargs)  # type: ignore[arg-type]
    catalog = factories.write_catalog(tmp_path / "cmdb", factories.KEY_PERSON_CATALOG)
    report = postmortem.build_postmortem(evidence.load(store, run.id), None, cmdb=catalog)
    store.close()
    return report, catalog, run


def _section(markdown: str, title: str) -> str:
    return markdown.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_analysis_findings_show_rule_severity_service_and_suggestion_in_what_went_wrong(
    tmp_path: Path,
) -> None:
    report, _, _ = _build(tmp_path)
    wrong = _section(rendering.to_markdown(report), "What went wrong")

    assert "A finding was recorded" not in wrong
    runbook = next(line for line in wrong.splitlines() if "rule runbook" in line)
    assert runbook.startswith("- payments: its runbook has no other editor")
    assert "severity high" in runbook
    assert "Suggested action: name a second runbook editor" in runbook
    assert "`the runbook of payments is kept by alice alone" in runbook
    assert "(evidence: event #" in runbook
    assert [(f.rule, f.severity, f.service) for f in report.findings] == [
        ("runbook", "high", "payments"),
        ("on-call-coverage", "medium", "payments"),
        ("on-call-coverage", "medium", "payments-db"),
    ]
    factors = [f.text for f in report.contributing_factors]
    assert any(t.startswith("payments: its runbook has no other editor") for t in factors)
    assert not any(t.startswith("None identified") for t in factors)


def test_findings_become_action_items_owned_by_the_services_cmdb_owner_due_by_severity(
    tmp_path: Path,
) -> None:
    report, _, run = _build(tmp_path)
    assert run.finished_at is not None
    end = run.finished_at.date()
    by_title = {a.title: a for a in report.action_items}

    runbook = next(a for t, a in by_title.items() if "runbook editor" in t)
    assert runbook.title.startswith("Add a second runbook editor")
    assert runbook.title.endswith("(for payments)")
    assert (runbook.owner, runbook.priority, runbook.action_class) == (
        "team-payments",
        postmortem.Priority.P1,
        postmortem.ActionClass.MITIGATE,
    )
    assert runbook.due == end + dt.timedelta(days=7)

    on_call = [a for t, a in by_title.items() if t.startswith("Add a responder to layer primary")]
    assert {(a.owner, a.service) for a in on_call} == {
        ("team-payments", "payments"),
        ("team-data", "payments-db"),
    }
    assert all(a.priority is postmortem.Priority.P2 for a in on_call)
    assert all(a.due == end + dt.timedelta(days=30) for a in on_call)


def test_findings_sharing_a_suggestion_and_owner_make_one_action_item(tmp_path: Path) -> None:
    twice = (
        factories.ANALYSIS_FINDINGS[1],
        {**factories.ANALYSIS_FINDINGS[1], "service": "component:default/checkout"},
    )
    report, _, _ = _build(tmp_path, findings=twice)

    on_call = [a for a in report.action_items if a.title.startswith("Add a responder")]
    assert len(on_call) == 2  # payments (team-payments) and checkout (team-checkout)
    same_owner = (
        factories.ANALYSIS_FINDINGS[1],
        {**factories.ANALYSIS_FINDINGS[1], "message": "again"},
    )
    report, _, _ = _build(tmp_path / "again", findings=same_owner)
    [merged] = [a for a in report.action_items if a.title.startswith("Add a responder")]
    assert merged.evidence.startswith("events #")


def test_services_the_analysis_flagged_are_listed_in_the_impact(tmp_path: Path) -> None:
    report, _, _ = _build(tmp_path)
    rows = {row.name: row for row in report.impact}

    assert rows["payments"].targeted
    assert rows["payments"].findings == ["runbook (high)", "on-call-coverage (medium)"]
    assert rows["payments-db"].flagged and not rows["payments-db"].targeted
    assert rows["payments-db"].owner == "team-data"
    assert rows["payments-db"].findings == ["on-call-coverage (medium)"]
    impact = _section(rendering.to_markdown(report), "Impact")
    assert "| flagged by analysis |" in impact
    lucky = " ".join(report.lucky)
    assert "payments-db" not in lucky  # flagged, not a dependent of the target


def test_participants_show_the_absent_person_who_could_act_and_who_acknowledged(
    tmp_path: Path,
) -> None:
    report, _, _ = _build(tmp_path)
    roles = {(p.role, p.who): p for p in report.participants}

    assert ("Absent (simulated)", "alice") in roles
    assert "journal #" in roles[("Absent (simulated)", "alice")].detail
    assert ("Eligible for restore-payments", "bob, carol") in roles
    acked = roles[("Acknowledged restore-payments", "bob")]
    assert acked.quoted == "https://notes.example/inc-1"
    assert acked.detail.startswith("after ")
    [manual] = report.manual_steps
    assert manual.outcome is postmortem.ManualOutcome.ACKNOWLEDGED
    assert manual.eligible == ["bob", "carol"] and manual.absent == ["alice"]
    assert manual.waited_s is not None and manual.waited_s > 0
    timeline = [row.what for row in report.timeline]
    assert any(
        w.startswith("manual step restore-payments assigned to team-payments (on-call)")
        and "may act: bob, carol" in w
        and "absent (simulated): alice" in w
        for w in timeline
    )
    assert any(
        w.startswith("manual step restore-payments acknowledged by bob after") for w in timeline
    )
    assert "Manual step restore-payments was acknowledged by bob with evidence" in " ".join(
        report.went_well
    )


def test_an_automatic_acknowledgement_is_shown_as_automated_not_as_a_person(
    tmp_path: Path,
) -> None:
    report, _, _ = _build(tmp_path, ack="auto")
    [manual] = report.manual_steps

    assert manual.outcome is postmortem.ManualOutcome.AUTOMATED
    assert manual.acknowledged_by is None and manual.waited_s == 2.0
    roles = {p.role: p for p in report.participants}
    assert roles["Acknowledged restore-payments"].who.startswith("automated (--auto-ack)")
    assert not any(p.who == "stormdrill --auto-ack" for p in report.participants)
    assert any("--auto-ack" in row.what for row in report.timeline if row.kind == "ack")
    assert any("acknowledged automatically" in item for item in report.lucky)
    assert not any("acknowledged by" in item for item in report.went_well)


def test_a_manual_step_nobody_could_act_on_gives_process_action_items_for_its_team(
    tmp_path: Path,
) -> None:
    report, catalog, _ = _build(tmp_path, findings=(), eligible=[])
    [manual] = report.manual_steps

    assert manual.outcome is postmortem.ManualOutcome.NOBODY_ELIGIBLE
    rules = [(f.rule, f.step) for f in report.findings]
    assert rules == [
        ("no-eligible-assignee", "restore-payments"),
        ("manual-timeout", "restore-payments"),
    ]
    items = {a.title: a for a in report.action_items}
    add = next(a for t, a in items.items() if t.startswith("Add an eligible person"))
    review = next(a for t, a in items.items() if t.startswith("Review the runbook of manual"))
    for item in (add, review):
        assert item.owner == "team-payments"
        assert item.action_class is postmortem.ActionClass.PROCESS
        assert item.priority is postmortem.Priority.P1
    assert "time limit of 36 s" in review.title
    wrong = _section(rendering.to_markdown(report), "What went wrong")
    assert "Manual step restore-payments: nobody eligible was available to act on it" in wrong
    roles = {p.role: p.who for p in report.participants}
    assert roles["Eligible for restore-payments"] == "nobody"
    assert roles["Acknowledged restore-payments"] == "nobody (nobody eligible)"
    markdown = rendering.to_markdown(report)
    assert linting.lint(markdown, people=linting.people_names(catalog)) == []


def test_a_manual_step_that_timed_out_is_reported_with_its_wait(tmp_path: Path) -> None:
    report, catalog, _ = _build(tmp_path, ack=None)
    [manual] = report.manual_steps

    assert manual.outcome is postmortem.ManualOutcome.TIMED_OUT
    assert manual.acknowledged_by is None and manual.waited_s is not None
    assert any(a.title.startswith("Review the runbook of manual step") for a in report.action_items)
    markdown = rendering.to_markdown(report)
    assert linting.lint(markdown, people=linting.people_names(catalog)) == []


def test_the_key_person_report_lints_clean_in_markdown_and_renders_in_html(
    tmp_path: Path,
) -> None:
    report, catalog, _ = _build(tmp_path)
    markdown = rendering.to_markdown(report)

    assert linting.lint(markdown, people=linting.people_names(catalog)) == []
    page = rendering.to_html(report)
    for text in ("flagged by analysis", "Absent (simulated)", "Manual steps", "rule runbook"):
        assert text in page


def test_achieved_rpo_is_in_the_summary_the_recovery_and_the_json(tmp_path: Path) -> None:
    report, _, _ = _build(tmp_path)

    assert any(
        "Data loss (RPO) was 2.500 s against an objective of 6 s" in s for s in report.summary
    )
    assert report.recovery.achieved_rpo_s == 2.5 and report.recovery.rpo_met is True
    assert report.recovery.rpo_canary == "payments-canary"
    assert "not measured" not in report.recovery.text
    recovery = _section(rendering.to_markdown(report), "Response and recovery")
    assert "- Achieved RPO: 2.500 s (scaled time; canary payments-canary)" in recovery
    assert "- Target RPO: 6 s scaled; 5 min real at time scale 0.02: met" in recovery
    body = json.loads(rendering.to_json(report))
    assert body["achieved_rpo"] == 2.5 and body["target_rpo"] == 6.0
    assert body["recovery"]["target_rpo_s"] == 300.0
    assert "Data loss stayed within its objective (2.500 s)." in report.went_well


def test_rpo_over_its_objective_is_wrong_a_factor_and_an_action_item(tmp_path: Path) -> None:
    objectives: dict[str, mutations.JsonValue] = {
        "achieved_rto_s": 0.5,
        "target_rto_s": 1800.0,
        "scaled_target_rto_s": 36.0,
        "rto_met": True,
        "achieved_rpo_s": 9.0,
        "target_rpo_s": 300.0,
        "scaled_target_rpo_s": 6.0,
        "rpo_met": False,
        "rpo_canary": {"probe": "payments-canary", "achieved_rpo_s": 9.0, "all_lost": True},
    }
    report, _, _ = _build(tmp_path, objectives=objectives)

    assert any(
        ": missed." in s and "every acknowledged canary write was lost" in s for s in report.summary
    )
    assert "Data loss (RPO) was 9 s, over the objective of 6 s." in report.went_wrong
    assert any("More data was lost" in f.text for f in report.contributing_factors)
    item = next(a for a in report.action_items if a.title.startswith("Reduce the data loss"))
    assert item.action_class is postmortem.ActionClass.MITIGATE and "5 min" in item.title
    assert "MISSED" in _section(rendering.to_markdown(report), "Response and recovery")


def test_a_run_without_canary_or_rpo_objective_says_so(tmp_path: Path) -> None:
    report, _, _ = _build(tmp_path, objectives={"achieved_rto_s": 0.5, "rto_met": None})

    assert report.recovery.achieved_rpo_s is None and report.recovery.target_rpo_s is None
    assert "no canary probe and no RPO objective" in report.recovery.text
    assert json.loads(rendering.to_json(report))["achieved_rpo"] is None


# -- every rule of the people provider, through the real analysis ------------------------


def _user(name: str) -> cmdb.User:
    return cmdb.User(
        ref=people_factories.user(name),
        source=cmdb.SourceLocation("test", 1),
        display_name=f"{name.capitalize()} Example",
        email=f"{name}@shop.example",
    )


def _catalog_with_every_gap() -> cmdb.Catalog:
    alice, frank = people_factories.user("alice"), people_factories.user("frank")
    ref = cmdb.EntityRef(cmdb.EntityKind.COMPONENT, "default", "payments")
    team = people_factories.group("team-payments")
    service = cmdb.Service(
        ref=ref,
        name="payments",
        kind=cmdb.EntityKind.COMPONENT,
        type="service",
        system=None,
        owner=team,
        tier=1,
        lifecycle="production",
        objectives=cmdb.Objectives(),
        source=cmdb.SourceLocation("test", 1),
        people=cmdb.People(
            owners=(alice,),
            on_call=(cmdb.RotationName("payments"),),
            break_glass=(alice, frank),
            runbook_owner=alice,
            runbook_editors=(alice,),
            repo_path="src",
        ),
    )
    rotation = people_factories.rotation(
        "payments", people_factories.layer("primary", "alice", "bob"), team=team
    )
    return cmdb.Catalog(
        services={ref: service},
        rotations={rotation.name: rotation},
        users={u.ref: u for u in (_user("alice"), _user("bob"), _user("frank"))},
    )


def test_every_people_rule_suggestion_makes_a_verb_first_item_and_lints_clean(
    tmp_path: Path,
) -> None:
    repo = people_factories.GitRepo(tmp_path / "repo")
    repo.commit("alice", {"src/a.py": "a = 1\n", "src/b.py": "b = 1\n"})
    catalog = _catalog_with_every_gap()
    found = analysing.Analysis(
        catalog=catalog,
        absent=frozenset({people_factories.user("alice")}),
        window=analysing.Window(people_factories.T0, people_factories.T0 + dt.timedelta(hours=8)),
        repository=repo.root,
    ).run(list(catalog.services.values()))
    assert {f.rule for f in found} == set(analysing.Rule)

    with journal.open_store(f"sqlite:///{tmp_path / 'journal.db'}") as store:
        run = factories.record_key_person_run(store, findings=tuple(f.to_json() for f in found))
        report = postmortem.build_postmortem(evidence.load(store, run.id), None, cmdb=catalog)

    markdown = rendering.to_markdown(report)
    assert linting.lint(markdown, people=PEOPLE) == []
    for finding in found:
        first = finding.suggestion.split()[1:3]
        assert any(" ".join(first) in a.title for a in report.action_items), finding.suggestion
        assert any(f"rule {finding.rule.value}" in f.text for f in report.findings)
    classes = {a.title.split()[0]: a.action_class for a in report.action_items}
    assert classes["Spread"] is postmortem.ActionClass.PREVENT
    assert classes["Extend"] is postmortem.ActionClass.MITIGATE


def test_an_acknowledgement_by_someone_not_eligible_is_set_aside_and_worded_blamelessly(
    tmp_path: Path,
) -> None:
    store = factories.open_store(tmp_path)
    run = factories.record_key_person_run(store, findings=())
    store.append_event(
        run.id,
        kind="ack",
        message="step restore-payments acknowledged by dan: done",
        data={"step": "restore-payments", "by": "dan", "evidence": "done", "automated": False},
    )
    store.append_event(
        run.id,
        kind="finding",
        message="acknowledgement of restore-payments by dan ignored: not among the people who"
        " may act on it",
        data={"step": "restore-payments", "rule": "ack-by-ineligible", "severity": "medium"},
    )
    catalog = factories.write_catalog(tmp_path / "cmdb", factories.KEY_PERSON_CATALOG)
    report = postmortem.build_postmortem(evidence.load(store, run.id), None, cmdb=catalog)
    store.close()

    [manual] = report.manual_steps
    assert manual.acknowledged_by == "bob"
    assert any("by dan set aside" in row.what for row in report.timeline)
    item = next(a for a in report.action_items if a.title.startswith("Review who may"))
    assert item.owner == "team-payments" and item.priority is postmortem.Priority.P2
    markdown = rendering.to_markdown(report)
    assert linting.lint(markdown, people=linting.people_names(catalog)) == []
