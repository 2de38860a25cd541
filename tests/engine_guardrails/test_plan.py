"""evaluate_plan runs every plan-time rule over a plan's facts."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from orchestrator import guardrails
from tests.engine_guardrails import factories as f


def _all_opted_in(namespaces: Sequence[str]) -> Collection[str]:
    return set(namespaces)


def _facts(**changes: Any) -> guardrails.PlanFacts:
    base = guardrails.PlanFacts(
        scenario=f.scenario(guardrails={"maxServices": 3}),
        environment=f.environment(),
        selections={
            "zone-nodes": f.selection("zone-nodes", f.node("n1")),
            "checkout-pods": f.selection("checkout-pods", f.pod("c1"), population=4),
        },
        runtime=guardrails.RuntimeFacts(now=f.NOW, killswitch=f.switch(), opted_in=_all_opted_in),
        destructive_targets=frozenset({"zone-nodes"}),
        impacted=(f.service("checkout", tier=2),),
    )
    return dataclasses.replace(base, **changes)


def test_a_sound_plan_has_no_refusals_and_reports_every_rule() -> None:
    verdicts = guardrails.evaluate_plan(_facts())
    assert guardrails.refusals(verdicts) == []
    rules = {v.rule for v in verdicts}
    assert {
        "environment",
        "failure-mode",
        "approvals",
        "killswitch",
        "window",
        "freeze",
        "blast-radius",
        "orchestrator-self",
        "namespace-opt-in",
        "max-services",
    } <= rules


def test_a_plan_collects_refusals_from_several_rules(tmp_path: Path) -> None:
    stop = tmp_path / "STOP"
    stop.touch()
    facts = _facts(
        environment=f.environment("staging", protected=True),
        selections={
            "zone-nodes": f.selection("zone-nodes", population=6, kind="node"),
            "checkout-pods": f.selection(
                "checkout-pods", f.pod("c1"), f.pod("c2"), f.pod("c3"), population=4
            ),
        },
        runtime=guardrails.RuntimeFacts(
            now=f.NOW,
            killswitch=f.switch(),
            opted_in=lambda _ns: set(),
            extra_killswitch_file=stop,
        ),
    )
    refused = {(v.rule, v.subject) for v in guardrails.refusals(guardrails.evaluate_plan(facts))}
    assert refused == {
        ("approvals", "staging"),
        ("killswitch", str(stop)),
        ("blast-radius", "zone-nodes"),
        ("blast-radius", "checkout-pods"),
        ("namespace-opt-in", "shop"),
    }


def test_a_target_left_unresolved_is_refused() -> None:
    facts = _facts(selections={"zone-nodes": f.selection("zone-nodes", f.node("n1"))})
    [verdict] = guardrails.refusals(guardrails.evaluate_plan(facts))
    assert verdict.subject == "checkout-pods"
    assert "not resolved" in verdict.message


def test_a_plan_during_a_freeze_outside_its_window_is_refused_twice() -> None:
    facts = _facts(
        scenario=f.scenario(
            guardrails={"windows": [{"days": ["mon"], "start": "09:00", "end": "17:00"}]}
        ),
        environment=f.environment(
            freezes=[
                {
                    "start": (f.NOW - timedelta(hours=1)).isoformat(),
                    "end": (f.NOW + timedelta(hours=1)).isoformat(),
                    "reason": "Launch day",
                }
            ]
        ),
    )
    rules = [v.rule for v in guardrails.refusals(guardrails.evaluate_plan(facts))]
    assert rules == ["window", "freeze"]
