"""Each guardrail rule refuses what it should and passes what it should."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from orchestrator import errors, guardrails, mutations, states
from orchestrator import journal as journal_module
from scenarios import models, quantities
from tests.engine_guardrails import factories as f


def _refused(verdicts: list[guardrails.GuardrailVerdict]) -> list[guardrails.GuardrailVerdict]:
    return guardrails.refusals(verdicts)


# ---- environment and failure mode ------------------------------------------------------------


def test_an_environment_in_the_allow_list_passes() -> None:
    assert _refused(guardrails.check_environment(f.scenario(), f.environment("staging"))) == []


def test_an_environment_outside_the_allow_list_is_refused_naming_both() -> None:
    [verdict] = _refused(guardrails.check_environment(f.scenario(), f.environment("production")))
    assert verdict.rule == guardrails.Rule.ENVIRONMENT
    assert "sandbox, staging" in verdict.message
    assert "production" in verdict.message


def test_a_failure_mode_the_environment_does_not_allow_is_refused() -> None:
    env = f.environment(allowedFailureModes=["dependency", "third-party"])
    [verdict] = _refused(guardrails.check_environment(f.scenario(), env))
    assert verdict.rule == guardrails.Rule.FAILURE_MODE
    assert "availability-zone" in verdict.message


def test_a_failure_mode_the_environment_lists_passes() -> None:
    env = f.environment(allowedFailureModes=["availability-zone"])
    assert _refused(guardrails.check_environment(f.scenario(), env)) == []


# ---- approvals -------------------------------------------------------------------------------


def test_an_unprotected_environment_needs_no_approval() -> None:
    assert _refused(guardrails.check_approvals(f.environment(), [])) == []


def test_a_protected_environment_without_approvals_is_refused() -> None:
    env = f.environment(protected=True)
    [verdict] = _refused(guardrails.check_approvals(env, []))
    assert verdict.rule == guardrails.Rule.APPROVALS
    assert "needs 1 approval" in verdict.message
    assert "--approved-by" in verdict.message


def test_a_protected_environment_counts_distinct_people_only() -> None:
    env = f.environment(protected=True, approvals={"required": 2})
    same_person = ["user:default/alice", "alice"]
    assert _refused(guardrails.check_approvals(env, same_person))
    assert _refused(guardrails.check_approvals(env, ["alice", "bob"])) == []


def test_drill_approvals_and_command_line_names_add_up() -> None:
    env = f.environment(protected=True, approvals={"required": 2})
    recorded = [models.Approval(by="user:default/alice", at=f.NOW)]
    assert _refused(guardrails.check_approvals(env, guardrails.approvers(recorded, ["bob"]))) == []


# ---- namespace opt-in ------------------------------------------------------------------------


def test_namespaces_not_opted_in_are_refused_one_by_one() -> None:
    verdicts = guardrails.check_namespace_opt_in(
        f.environment(), namespaces=["shop", "payments"], opted_in=lambda _ns: {"shop"}
    )
    [verdict] = _refused(verdicts)
    assert verdict.subject == "payments"
    assert "stormdrill.dev/allow-drills=true" in verdict.message


def test_opted_in_namespaces_pass() -> None:
    verdicts = guardrails.check_namespace_opt_in(
        f.environment(), namespaces=["shop"], opted_in=lambda ns: set(ns)
    )
    assert _refused(verdicts) == []


def test_opt_in_is_waived_when_the_environment_says_so() -> None:
    env = f.environment(kubernetes={"inCluster": True, "requireNamespaceOptIn": False})
    verdicts = guardrails.check_namespace_opt_in(env, namespaces=["shop"], opted_in=None)
    assert _refused(verdicts) == []


def test_opt_in_that_cannot_be_read_refuses() -> None:
    def broken(_namespaces: object) -> set[str]:
        raise errors.ProviderPermanent("forbidden: cannot list namespaces")

    verdicts = guardrails.check_namespace_opt_in(
        f.environment(), namespaces=["shop"], opted_in=broken
    )
    [verdict] = _refused(verdicts)
    assert "forbidden" in verdict.message
    assert _refused(
        guardrails.check_namespace_opt_in(f.environment(), namespaces=["shop"], opted_in=None)
    )


def test_the_namespaces_a_plan_touches_come_from_its_refs() -> None:
    sel = f.selection("pods", f.pod("a", "shop"), f.pod("b", "payments"))
    nodes = f.selection("nodes", f.node("n1"))
    assert guardrails.namespaces_of([sel, nodes]) == ["payments", "shop"]


# ---- blast radius ----------------------------------------------------------------------------


def _target(name: str) -> models.Target:
    return f.scenario().spec.targets[name]


def test_a_selection_within_its_count_limit_passes() -> None:
    sel = f.selection("zone-nodes", f.node("n1"), f.node("n2"))
    verdicts = guardrails.check_blast_radius(sel, _target("zone-nodes"), destructive=True)
    assert _refused(verdicts) == []


def test_a_selection_over_its_count_limit_is_refused() -> None:
    sel = f.selection("zone-nodes", f.node("n1"), f.node("n2"), f.node("n3"))
    [verdict] = _refused(
        guardrails.check_blast_radius(sel, _target("zone-nodes"), destructive=True)
    )
    assert "3 of 6" in verdict.message
    assert "blastRadius.max 2" in verdict.message


def test_a_selection_over_its_percentage_is_refused() -> None:
    sel = f.selection("checkout-pods", f.pod("a"), f.pod("b"), f.pod("c"), population=4)
    [verdict] = _refused(
        guardrails.check_blast_radius(sel, _target("checkout-pods"), destructive=True)
    )
    assert "75%" in verdict.message
    assert "at most 2 of 4" in verdict.message


def test_a_selection_at_its_percentage_passes() -> None:
    sel = f.selection("checkout-pods", f.pod("a"), f.pod("b"), population=4)
    verdicts = guardrails.check_blast_radius(sel, _target("checkout-pods"), destructive=True)
    assert _refused(verdicts) == []


def test_an_empty_selection_is_refused_because_it_proves_nothing() -> None:
    sel = f.selection("zone-nodes", population=6, kind="node")
    [verdict] = _refused(
        guardrails.check_blast_radius(sel, _target("zone-nodes"), destructive=False)
    )
    assert "selects nothing" in verdict.message
    assert "proves nothing" in verdict.message


def test_a_destructive_action_on_a_target_without_blast_radius_is_refused() -> None:
    scenario = f.scenario(
        targets={
            "spare-nodes": {
                "provider": "kubernetes",
                "kind": "node",
                "selector": {"names": ["n1"]},
            }
        }
    )
    target = scenario.spec.targets["spare-nodes"]
    sel = f.selection("spare-nodes", f.node("n1"))
    [verdict] = _refused(guardrails.check_blast_radius(sel, target, destructive=True))
    assert "no blastRadius" in verdict.message
    assert _refused(guardrails.check_blast_radius(sel, target, destructive=False)) == []


# ---- services and tiers ----------------------------------------------------------------------


def test_more_impacted_services_than_max_services_is_refused() -> None:
    rails = f.guardrails(maxServices=2)
    impacted = [f.service("inventory", tier=3), f.service("checkout", tier=2, distance=1)]
    assert _refused(guardrails.check_services(rails, impacted)) == []
    impacted.append(f.service("web", tier=1, distance=2))
    [verdict] = _refused(guardrails.check_services(rails, impacted))
    assert verdict.rule == guardrails.Rule.MAX_SERVICES
    assert "3 services" in verdict.message and "web" in verdict.message


def test_touching_a_more_critical_tier_than_max_tier_is_refused() -> None:
    rails = f.guardrails(maxTier=2)
    [verdict] = _refused(guardrails.check_services(rails, [f.service("payments", tier=1)]))
    assert verdict.rule == guardrails.Rule.MAX_TIER
    assert "payments is tier 1" in verdict.message


def test_max_tier_passes_tiers_at_or_below_the_limit_and_ignores_dependents() -> None:
    rails = f.guardrails(maxTier=2)
    impacted = [f.service("inventory", tier=2), f.service("web", tier=1, distance=1)]
    assert _refused(guardrails.check_services(rails, impacted)) == []


def test_service_limits_without_a_cmdb_refuse_only_in_protected_environments() -> None:
    rails = f.guardrails(maxServices=2)
    assert _refused(guardrails.check_services(rails, None, protected=False)) == []
    [verdict] = _refused(guardrails.check_services(rails, None, protected=True))
    assert "no CMDB" in verdict.message


# ---- the orchestrator itself -----------------------------------------------------------------


def test_a_selection_including_the_orchestrator_node_is_refused() -> None:
    env = f.environment(orchestrator={"namespace": "stormdrill", "nodeName": "node-1"})
    sel = f.selection("zone-nodes", f.node("node-1"), f.node("node-2"))
    [verdict] = _refused(guardrails.check_not_orchestrator(sel, env))
    assert verdict.rule == guardrails.Rule.ORCHESTRATOR
    assert "node node-1" in verdict.message


def test_a_selection_including_the_orchestrator_pod_is_refused() -> None:
    env = f.environment(orchestrator={"namespace": "stormdrill", "podName": "stormdrill-0"})
    sel = f.selection("pods", f.pod("stormdrill-0", "stormdrill"), f.pod("web-1", "shop"))
    refused = _refused(guardrails.check_not_orchestrator(sel, env))
    assert [v.subject for v in refused] == [f.pod("stormdrill-0", "stormdrill").key]


def test_a_selection_sparing_the_orchestrator_passes() -> None:
    env = f.environment(orchestrator={"namespace": "stormdrill", "nodeName": "node-1"})
    sel = f.selection("zone-nodes", f.node("node-2"))
    assert _refused(guardrails.check_not_orchestrator(sel, env)) == []


# ---- windows and freezes ---------------------------------------------------------------------


def _window(**fields: object) -> models.Window:
    return models.Window.model_validate(fields)


def test_a_time_inside_a_window_passes_and_outside_is_refused() -> None:
    window = _window(days=["tue"], start="09:00", end="16:00", timezone="Europe/Berlin")
    # 10:30 UTC on Tuesday 3 March 2026 is 11:30 in Berlin.
    assert _refused(guardrails.check_windows([window], f.NOW)) == []
    evening = f.NOW.replace(hour=16)  # 17:00 in Berlin
    [verdict] = _refused(guardrails.check_windows([window], evening))
    assert "outside every window" in verdict.message
    wednesday = f.NOW + timedelta(days=1)
    assert _refused(guardrails.check_windows([window], wednesday))


def test_a_window_ending_before_it_starts_spans_midnight() -> None:
    window = _window(days=["tue"], start="22:00", end="02:00")
    tuesday_late = datetime(2026, 3, 3, 23, 0, tzinfo=UTC)
    wednesday_early = datetime(2026, 3, 4, 1, 0, tzinfo=UTC)
    tuesday_early = datetime(2026, 3, 3, 1, 0, tzinfo=UTC)  # belongs to Monday's night
    assert guardrails.in_window(window, tuesday_late)
    assert guardrails.in_window(window, wednesday_early)
    assert not guardrails.in_window(window, tuesday_early)


def test_no_windows_means_any_time() -> None:
    assert _refused(guardrails.check_windows([], f.NOW)) == []


def test_a_naive_time_is_a_bug() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        guardrails.check_windows([], datetime(2026, 3, 3, 10, 0))


def test_a_change_freeze_in_effect_is_refused_with_its_reason() -> None:
    freeze = models.Freeze(
        start=f.NOW - timedelta(days=1), end=f.NOW + timedelta(days=1), reason="Year-end freeze"
    )
    [verdict] = _refused(guardrails.check_freezes([freeze], f.NOW))
    assert "Year-end freeze" in verdict.message
    assert _refused(guardrails.check_freezes([freeze], f.NOW + timedelta(days=2))) == []


# ---- kill switch and duration ----------------------------------------------------------------


def test_an_engaged_kill_switch_is_refused_naming_who_and_why() -> None:
    [verdict] = _refused(
        guardrails.check_killswitch(f.switch(engaged=True, by="alice", reason="incident"))
    )
    assert "engaged by alice: incident" in verdict.message
    assert _refused(guardrails.check_killswitch(f.switch())) == []


def test_a_kill_switch_file_refuses_while_it_exists(tmp_path: Path) -> None:
    stop = tmp_path / "STOP"
    env = f.environment(killSwitchFile=str(stop))
    extra = tmp_path / "GLOBAL-STOP"
    files = guardrails.killswitch_files(env, extra)
    assert files == [stop, extra]
    assert _refused(guardrails.check_killswitch(f.switch(), files=files)) == []
    extra.touch()
    [verdict] = _refused(guardrails.check_killswitch(f.switch(), files=files))
    assert str(extra) in verdict.message


def test_the_deadline_scales_max_duration_by_the_time_scale() -> None:
    deadline = guardrails.deadline(f.NOW, quantities.Duration(1800), 0.02)
    assert deadline == f.NOW + timedelta(seconds=36)
    assert guardrails.check_deadline(deadline, f.NOW + timedelta(seconds=35)).ok
    verdict = guardrails.check_deadline(
        deadline, f.NOW + timedelta(seconds=36), max_duration=quantities.Duration(1800)
    )
    assert not verdict.ok
    assert "maxDuration 30m" in verdict.message


# ---- overlap ---------------------------------------------------------------------------------


def _store_run(store: journal_module.Journal, run_id: str) -> states.RunId:
    owner = states.Owner(host="h", pid=1, token="t")
    run = states.new_run(
        id=states.RunId(run_id),
        scenario="zone-drain",
        environment="sandbox",
        environment_source="sandbox.yaml",
        owner=owner,
        at=datetime.now(UTC),
    )
    store.create_run(run)
    return run.id


def test_overlapping_targets_are_refused_naming_the_other_run(
    journal: journal_module.Journal,
) -> None:
    first, second = _store_run(journal, "run-a"), _store_run(journal, "run-b")
    keys = [f.node("n1").key, f.node("n2").key]
    assert _refused(guardrails.acquire_targets(journal, first, keys)) == []
    [verdict] = _refused(guardrails.acquire_targets(journal, second, [f.node("n2").key, "x"]))
    assert verdict.rule == guardrails.Rule.OVERLAP
    assert verdict.subject == "run-a"
    assert "run run-a" in verdict.message
    assert journal.held_targets(second) == []
    journal.release_targets(first)
    assert _refused(guardrails.acquire_targets(journal, second, [f.node("n2").key])) == []


def test_raise_refusals_names_the_first_rule_and_every_refusal() -> None:
    verdicts = [
        guardrails.GuardrailVerdict("window", False, "outside"),
        guardrails.GuardrailVerdict("killswitch", True, "off"),
        guardrails.GuardrailVerdict("freeze", False, "frozen", subject="Year-end"),
    ]
    with pytest.raises(errors.GuardrailTripped) as caught:
        guardrails.raise_refusals(verdicts)
    assert caught.value.rule == "window"
    assert "outside" in caught.value.message and "Year-end: frozen" in caught.value.message
    guardrails.raise_refusals(verdicts[1:2])


def test_target_refs_are_what_lock_keys_are_made_of() -> None:
    ref = mutations.TargetRef(provider="kubernetes", kind="node", name="n1")
    assert ref.key == f.node("n1").key
