"""aws.route53.fail-health-check against moto: plan, apply, undo, markers, drift, selection,
blast radius and the sweep."""

from __future__ import annotations

import logging

import pytest

from orchestrator import context, errors, guardrails
from orchestrator.providers.aws import connecting, markers, route53, selecting
from tests.providers_aws import helpers
from tests.providers_aws import region_helpers as r53h


def test_plan_touches_nothing_and_records_the_previous_inverted_flag(
    ctx: context.RunContext, conn: connecting.AwsConnection
) -> None:
    check = r53h.health_check(conn)
    before = r53h.snapshot(conn, check)
    act = helpers.action(route53.NAME)

    (planned,) = helpers.plan(act, ctx, [helpers.ref(route53.KIND, check)])

    assert planned.pre_state == {"inverted": False, "disabled": False, "version": 1}
    assert dict(planned.undo.data) == {
        "runId": "run-1",
        "healthCheckId": check,
        "previousInverted": False,
    }
    assert r53h.snapshot(conn, check) == before


def test_apply_marks_and_inverts_the_check_and_undo_restores_it_exactly(
    ctx: context.RunContext, conn: connecting.AwsConnection
) -> None:
    check = r53h.health_check(conn, tags={"Name": "shop-east", "service": "shop"})
    before = r53h.snapshot(conn, check)
    act = helpers.action(route53.NAME)
    planned = helpers.plan(act, ctx, [helpers.ref(route53.KIND, check)])

    (token,) = helpers.apply_all(act, ctx, planned)

    assert r53h.inverted(conn, check) is True
    tags = r53h.tags(conn, check)
    assert tags[markers.RUN_ID] == "run-1"
    assert markers.EXPIRES_AT in tags
    assert tags[route53.PREVIOUS_INVERTED] == "false"
    assert tags["service"] == "shop"

    act.revert(ctx, undo=token)

    assert r53h.snapshot(conn, check) == before
    assert markers.RUN_ID not in r53h.tags(conn, check)
    act.revert(ctx, undo=token)  # twice is harmless
    assert r53h.snapshot(conn, check) == before


def test_applying_twice_is_harmless_and_one_undo_restores(
    ctx: context.RunContext, conn: connecting.AwsConnection
) -> None:
    check = r53h.health_check(conn)
    before = r53h.snapshot(conn, check)
    act = helpers.action(route53.NAME)
    (planned,) = helpers.plan(act, ctx, [helpers.ref(route53.KIND, check)])

    act.apply(ctx, mutation=planned)
    token = act.apply(ctx, mutation=planned)

    assert token is not None and token.data["previousInverted"] is False
    assert r53h.inverted(conn, check) is True
    act.revert(ctx, undo=token)
    assert r53h.snapshot(conn, check) == before


def test_undo_with_the_planned_token_finds_the_previous_value_in_the_tags(
    ctx: context.RunContext, conn: connecting.AwsConnection
) -> None:
    check = r53h.health_check(conn)
    before = r53h.snapshot(conn, check)
    act = helpers.action(route53.NAME)
    (planned,) = helpers.plan(act, ctx, [helpers.ref(route53.KIND, check)])
    act.apply(ctx, mutation=planned)

    act.revert(ctx, undo=planned.undo)  # as if we crashed before refining the token

    assert r53h.snapshot(conn, check) == before


def test_undo_of_a_never_applied_failure_changes_nothing(
    ctx: context.RunContext, conn: connecting.AwsConnection
) -> None:
    check = r53h.health_check(conn)
    before = r53h.snapshot(conn, check)
    act = helpers.action(route53.NAME)
    (planned,) = helpers.plan(act, ctx, [helpers.ref(route53.KIND, check)])

    act.revert(ctx, undo=planned.undo)

    assert r53h.snapshot(conn, check) == before


def test_a_check_someone_set_back_during_the_drill_is_left_alone_and_reported(
    ctx: context.RunContext, conn: connecting.AwsConnection, caplog: pytest.LogCaptureFixture
) -> None:
    check = r53h.health_check(conn)
    act = helpers.action(route53.NAME)
    (token,) = helpers.apply_all(
        act, ctx, helpers.plan(act, ctx, [helpers.ref(route53.KIND, check)])
    )
    r53h.r53(conn).update_health_check(HealthCheckId=check, Inverted=False, Port=8443)
    calls: list[str] = []
    r53h.r53(conn).meta.events.register(
        "before-call.route53.UpdateHealthCheck",
        lambda **_: calls.append("UpdateHealthCheck"),
        unique_id="test-route53-updates",
    )

    try:
        with caplog.at_level(logging.WARNING, logger=route53.__name__):
            act.revert(ctx, undo=token)
    finally:
        r53h.r53(conn).meta.events.unregister(
            "before-call.route53.UpdateHealthCheck", unique_id="test-route53-updates"
        )

    assert calls == []
    config = r53h.snapshot(conn, check)["config"]
    assert (config["Inverted"], config["Port"]) == (False, 8443)
    assert markers.RUN_ID not in r53h.tags(conn, check)
    assert f"health check {check}" in caplog.text and "someone else" in caplog.text


def test_a_check_a_person_already_inverted_is_not_planned(
    ctx: context.RunContext, conn: connecting.AwsConnection
) -> None:
    check = r53h.health_check(conn, inverted=True)
    before = r53h.snapshot(conn, check)
    act = helpers.action(route53.NAME)

    assert helpers.plan(act, ctx, [helpers.ref(route53.KIND, check)]) == []
    assert r53h.snapshot(conn, check) == before


def test_a_check_failed_by_another_run_is_refused_at_plan(
    ctx: context.RunContext, expired_ctx: context.RunContext, conn: connecting.AwsConnection
) -> None:
    check = r53h.health_check(conn)
    act = helpers.action(route53.NAME)
    refs = [helpers.ref(route53.KIND, check)]
    helpers.apply_all(act, expired_ctx, helpers.plan(act, expired_ctx, refs))

    with pytest.raises(errors.ProviderPermanent, match="already failed by run run-dead"):
        helpers.plan(act, ctx, refs)


def test_an_unknown_health_check_is_a_permanent_error_naming_it(
    ctx: context.RunContext, aws_endpoint_url: str
) -> None:
    act = helpers.action(route53.NAME)

    with pytest.raises(errors.ProviderPermanent, match=r"no-such-check.*no such Route 53"):
        helpers.plan(act, ctx, [helpers.ref(route53.KIND, "no-such-check")])


def test_health_checks_are_selected_by_tag_and_by_id(
    ctx: context.RunContext, conn: connecting.AwsConnection
) -> None:
    east = r53h.health_check(conn, tags={"Name": "shop-east", "region": "us-east-1"})
    r53h.health_check(conn, fqdn="west.shop.example", tags={"region": "us-west-2"})
    resolver = selecting.RegionResolver()

    by_tag = resolver.resolve(
        ctx, name="primary", target=r53h.unlisted_target(route53.KIND, tags={"region": "us-east-1"})
    )
    by_id = resolver.resolve(ctx, name="one", target=r53h.unlisted_target(route53.KIND, ids=[east]))
    by_name = resolver.resolve(
        ctx, name="named", target=r53h.unlisted_target(route53.KIND, names=["shop-east"])
    )

    assert [r.name for r in by_tag.refs] == [east]
    assert [r.name for r in by_id.refs] == [east]
    assert [r.name for r in by_name.refs] == [east]
    assert by_tag.population == 2
    assert by_tag.hints[0].resource_ids == (f"route53-health-check:{east}",)


def test_selecting_more_checks_than_the_blast_radius_allows_is_refused(
    ctx: context.RunContext, conn: connecting.AwsConnection
) -> None:
    for fqdn in ("east.shop.example", "east2.shop.example"):
        r53h.health_check(conn, fqdn=fqdn, tags={"service": "shop"})
    target = r53h.unlisted_target(route53.KIND, blast_max=1, tags={"service": "shop"})
    selection = selecting.RegionResolver().resolve(ctx, name="checks", target=target)

    (verdict,) = guardrails.check_blast_radius(selection, target, destructive=True)

    assert not verdict.ok
    assert "selects 2 of 2 health-check(s)" in verdict.message
    assert helpers.registry_with_aws().catalog().actions[route53.NAME].destructive


def test_the_sweep_heals_a_dead_runs_check_and_leaves_a_live_runs_alone(
    ctx: context.RunContext, expired_ctx: context.RunContext, conn: connecting.AwsConnection
) -> None:
    dead, live = r53h.health_check(conn), r53h.health_check(conn, fqdn="live.shop.example")
    dead_before = r53h.snapshot(conn, dead)
    act = helpers.action(route53.NAME)
    for run_ctx, check in ((expired_ctx, dead), (ctx, live)):
        helpers.apply_all(
            act, run_ctx, helpers.plan(act, run_ctx, [helpers.ref(route53.KIND, check)])
        )

    findings = route53.Route53Sweeper().sweep(
        ctx, is_orphan=lambda run_id, _: run_id == "run-dead", dry_run=False
    )

    by_check = {f.target.name: f for f in findings}
    assert by_check[dead].healed and by_check[dead].expired
    assert not by_check[live].healed and by_check[live].message == "run still alive; left alone"
    assert r53h.snapshot(conn, dead) == dead_before
    assert r53h.inverted(conn, live) is True
