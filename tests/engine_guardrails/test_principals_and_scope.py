"""Rules over planned mutations: protected principals (both providers), cluster scope, refusals."""

from __future__ import annotations

from orchestrator import guardrails, mutations
from tests.engine_guardrails import factories as f

BREAK_GLASS = {"frank": ("payments",)}


def _suspend(user: str) -> mutations.PlannedMutation:
    target = mutations.TargetRef(provider="aws", kind="iam-user", name=user, region="us-east-1")
    return mutations.PlannedMutation(
        step="s",
        target=target,
        action="aws.iam.suspend-access",
        params={},
        pre_state={},
        undo=mutations.UndoToken(action="aws.iam.suspend-access", data={}),
    )


def test_suspending_the_cmdb_break_glass_holder_in_aws_is_refused() -> None:
    verdicts = guardrails.check_protected_principals(
        f.environment(), selections=(), planned=[_suspend("frank")], break_glass=BREAK_GLASS
    )

    assert [v.ok for v in verdicts] == [False]
    assert "break-glass holder in the CMDB (for payments)" in verdicts[0].message


def test_an_aws_protected_principal_given_as_an_arn_is_refused() -> None:
    env = f.environment(
        aws={"region": "us-east-1", "protectedPrincipals": ["arn:aws:iam::123456789012:user/grace"]}
    )

    verdicts = guardrails.check_protected_principals(
        env, selections=(), planned=[_suspend("grace"), _suspend("bob")], break_glass={}
    )

    assert [(v.subject, v.ok) for v in verdicts] == [("aws bob", True), ("aws grace", False)]


def test_a_refusal_an_action_found_while_planning_becomes_a_verdict() -> None:
    mutation = mutations.PlannedMutation(
        step="s",
        target=mutations.TargetRef(provider="kubernetes", kind="node", name="n1"),
        action="kubernetes.nodes.drain",
        params={},
        pre_state={"refusals": [{"rule": "unowned-pods", "subject": "pod a/b", "message": "lost"}]},
        undo=mutations.UndoToken(action="kubernetes.nodes.drain", data={}),
    )

    verdicts = guardrails.check_action_refusals([mutation])

    assert [(v.rule, v.ok, v.subject, v.message) for v in verdicts] == [
        ("unowned-pods", False, "pod a/b", "lost")
    ]


def test_an_evicted_pod_in_stormdrills_namespace_is_refused_as_the_orchestrator() -> None:
    pod = f.pod("db-0", namespace="stormdrill")
    mutation = mutations.PlannedMutation(
        step="s",
        target=f.node("n1"),
        action="kubernetes.nodes.drain",
        params={},
        pre_state={"touches": [pod.to_json()]},
        undo=mutations.UndoToken(action="kubernetes.nodes.drain", data={}),
    )
    env = f.environment(orchestrator={"namespace": "stormdrill", "podName": "stormdrill-0"})

    verdicts = guardrails.check_mutations_not_orchestrator([mutation], env)

    assert [v.ok for v in verdicts] == [False] and "db-0" in verdicts[0].message
