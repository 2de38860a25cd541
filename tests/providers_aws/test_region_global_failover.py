"""aws.rds.global-failover against moto: what moto can show, and what lint requires.

moto (5.x) keeps Aurora global databases (CreateGlobalCluster, members in two regions,
DescribeGlobalClusters) but implements neither FailoverGlobalCluster nor
SwitchoverGlobalCluster: its server answers them with an HTML 500. So planning is tested on
moto's topology, and applying is tested by the request that reaches the wire (recorded with
a botocore event hook on the session, never a patch) and by how moto's refusal is reported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from orchestrator import context, errors
from orchestrator.providers.aws import connecting, global_failover
from scenarios import errors as scenario_errors
from scenarios import linting, loading
from tests.providers_aws import helpers
from tests.scenarios import factories

ENGINE = "aurora-postgresql"
GLOBAL = "shop-global"
EAST_ARN = "arn:aws:rds:us-east-1:123456789012:cluster:shop-east"
WEST_ARN = "arn:aws:rds:us-west-2:123456789012:cluster:shop-west"
_READS = ("Describe", "List")


def regional_rds(conn: connecting.AwsConnection, region: str) -> Any:
    return global_failover.regional(conn, region).rds()


def global_database(
    conn: connecting.AwsConnection, *, secondaries: tuple[str, ...] = ("us-west-2",)
) -> None:
    """`shop-global`: writer `shop-east` (+ instance `shop-east-1`) in us-east-1, and one
    secondary cluster `shop-<region>` per region in `secondaries`."""
    rds = conn.rds()
    rds.create_global_cluster(GlobalClusterIdentifier=GLOBAL, Engine=ENGINE)
    rds.create_db_cluster(
        DBClusterIdentifier="shop-east",
        Engine=ENGINE,
        MasterUsername="shop",
        MasterUserPassword="sandbox-password",
        GlobalClusterIdentifier=GLOBAL,
    )
    rds.create_db_instance(
        DBInstanceIdentifier="shop-east-1",
        DBClusterIdentifier="shop-east",
        Engine=ENGINE,
        DBInstanceClass="db.r5.large",
    )
    for region in secondaries:
        regional_rds(conn, region).create_db_cluster(
            DBClusterIdentifier=f"shop-{region.split('-')[1]}",
            Engine=ENGINE,
            GlobalClusterIdentifier=GLOBAL,
        )


def members(conn: connecting.AwsConnection) -> list[tuple[str, bool]]:
    found = conn.rds().describe_global_clusters(GlobalClusterIdentifier=GLOBAL)["GlobalClusters"]
    return sorted((m["DBClusterArn"], m["IsWriter"]) for m in found[0]["GlobalClusterMembers"])


class Sent:
    """Every non-read RDS call any client of the session sends: (region, operation, params)."""

    def __init__(self, conn: connecting.AwsConnection) -> None:
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        conn.session.events.register("provide-client-params.rds.*", self._hook)

    def _hook(self, params: dict[str, Any], model: Any, **kwargs: Any) -> None:
        if not str(model.name).startswith(_READS):
            region = str(kwargs["context"].get("client_region", ""))
            self.calls.append((region, str(model.name), dict(params)))


def test_global_failover_is_declared_not_revertible() -> None:
    info = helpers.registry_with_aws().catalog().actions[global_failover.NAME]

    assert (info.mutating, info.revertible) == (True, False)
    assert info.target_kinds == frozenset({"global-cluster", "db-instance"})


def test_plan_picks_the_only_secondary_and_touches_nothing(
    ctx: context.RunContext, conn: connecting.AwsConnection
) -> None:
    global_database(conn)
    before = members(conn)
    act = helpers.action(global_failover.NAME)

    (planned,) = helpers.plan(act, ctx, [helpers.ref(global_failover.KIND, GLOBAL)])

    assert planned.pre_state == {
        "writer": EAST_ARN,
        "writerRegion": "us-east-1",
        "secondaries": [WEST_ARN],
    }
    assert dict(planned.undo.data) == {
        "irreversible": True,
        "region": "us-east-1",
        "globalCluster": GLOBAL,
        "mode": "switchover",
        "fromCluster": EAST_ARN,
        "fromRegion": "us-east-1",
        "toCluster": WEST_ARN,
        "toRegion": "us-west-2",
    }
    assert members(conn) == before == [(EAST_ARN, True), (WEST_ARN, False)]


def test_a_member_instance_plans_its_global_database_once(
    ctx: context.RunContext, conn: connecting.AwsConnection
) -> None:
    global_database(conn)
    act = helpers.action(global_failover.NAME)

    planned = helpers.plan(
        act,
        ctx,
        [helpers.ref("db-instance", "shop-east-1"), helpers.ref(global_failover.KIND, GLOBAL)],
        {"mode": "failover", "targetRegion": "us-west-2"},
    )

    assert [(m.target.name, m.undo.data["mode"], m.undo.data["toCluster"]) for m in planned] == [
        ("shop-east-1", "failover", WEST_ARN)
    ]


def test_a_global_database_without_a_secondary_region_is_refused_at_plan(
    ctx: context.RunContext, conn: connecting.AwsConnection
) -> None:
    global_database(conn, secondaries=())
    act = helpers.action(global_failover.NAME)

    with pytest.raises(
        errors.ProviderPermanent, match=r"shop-global has no secondary region.*add a secondary"
    ):
        helpers.plan(act, ctx, [helpers.ref(global_failover.KIND, GLOBAL)])


def test_the_target_region_must_hold_a_secondary(
    ctx: context.RunContext, conn: connecting.AwsConnection
) -> None:
    global_database(conn, secondaries=("us-west-2", "eu-west-1"))
    act = helpers.action(global_failover.NAME)
    ref = [helpers.ref(global_failover.KIND, GLOBAL)]

    with pytest.raises(errors.ProviderPermanent, match="secondaries in eu-west-1, us-west-2"):
        helpers.plan(act, ctx, ref)
    with pytest.raises(errors.ProviderPermanent, match="targetRegion us-east-1 is its primary"):
        helpers.plan(act, ctx, ref, {"targetRegion": "us-east-1"})
    with pytest.raises(errors.ProviderPermanent, match="ap-south-1 holds no secondary"):
        helpers.plan(act, ctx, ref, {"targetRegion": "ap-south-1"})
    (planned,) = helpers.plan(act, ctx, ref, {"targetRegion": "eu-west-1"})
    assert planned.undo.data["toRegion"] == "eu-west-1"


def test_an_instance_outside_any_global_database_and_an_unknown_one_are_refused(
    ctx: context.RunContext, conn: connecting.AwsConnection
) -> None:
    global_database(conn)
    act = helpers.action(global_failover.NAME)

    with pytest.raises(errors.ProviderPermanent, match="not in an Aurora global database"):
        helpers.plan(act, ctx, [helpers.ref("db-instance", "payments-db")])
    with pytest.raises(errors.ProviderPermanent, match="no such Aurora global database"):
        helpers.plan(act, ctx, [helpers.ref(global_failover.KIND, "no-such-global")])


@pytest.mark.parametrize(
    ("mode", "operation", "extra"),
    [
        ("switchover", "SwitchoverGlobalCluster", {}),
        ("failover", "FailoverGlobalCluster", {"AllowDataLoss": True}),
    ],
)
def test_apply_sends_the_call_to_the_secondarys_region_and_moto_lacking_it_is_reported(
    fresh_ctx: context.RunContext,
    conn: connecting.AwsConnection,
    mode: str,
    operation: str,
    extra: dict[str, Any],
) -> None:
    global_database(conn)
    watched = connecting.of(fresh_ctx.connection("aws"))
    sent = Sent(watched)
    act = helpers.action(global_failover.NAME)
    (planned,) = helpers.plan(
        act, fresh_ctx, [helpers.ref(global_failover.KIND, GLOBAL)], {"mode": mode}
    )
    assert sent.calls == []  # planning only reads

    with pytest.raises(errors.ProviderPermanent, match=f"{operation} is not an AWS answer"):
        act.apply(fresh_ctx, mutation=planned)

    assert sent.calls == [
        (
            "us-west-2",
            operation,
            {"GlobalClusterIdentifier": GLOBAL, "TargetDbClusterIdentifier": WEST_ARN, **extra},
        )
    ]
    assert members(conn) == [(EAST_ARN, True), (WEST_ARN, False)]


def test_revert_sends_nothing_and_changes_nothing(
    fresh_ctx: context.RunContext, conn: connecting.AwsConnection
) -> None:
    global_database(conn)
    watched = connecting.of(fresh_ctx.connection("aws"))
    sent = Sent(watched)
    act = helpers.action(global_failover.NAME)
    (planned,) = helpers.plan(act, fresh_ctx, [helpers.ref(global_failover.KIND, GLOBAL)])
    before = members(conn)

    act.revert(fresh_ctx, undo=planned.undo)
    act.revert(fresh_ctx, undo=planned.undo)

    assert sent.calls == []
    assert members(conn) == before


_SCENARIO = """\
apiVersion: stormdrill.dev/v1
kind: Scenario
metadata:
  name: region-db
spec:
  description: Move the shop's database to the secondary region.
  failureMode: region
  hypothesis: Checkout keeps working from us-west-2.
  targets:
    shop-db:
      provider: aws
      kind: db-instance
      selector:
        names: [shop-east-1]
  steadyState:
    - name: www-in-east
      type: aws.route53.resolve
      with:
        zoneName: shop.example
        recordName: www.shop.example
        expect: us-east-1
  guardrails:
    environments: [sandbox]
    maxDuration: 30m
  steps:
    - name: promote-west
      action: aws.rds.global-failover
      target: shop-db
      with:
        mode: failover
        targetRegion: us-west-2
{rollback}
  objectives:
    rto: 15m
"""
_FAIL_BACK = """\
      rollback: none
  rollback:
    - name: fail-back
      action: aws.rds.global-failover
      target: shop-db
      with:
        mode: switchover
        targetRegion: us-east-1"""


def _lint(tmp_path: Path, text: str) -> list[scenario_errors.Problem]:
    result = loading.load_documents([factories.write(tmp_path, "scenario.yaml", text)])
    assert result.ok, result.problems
    return linting.lint(result.documents, catalog=helpers.registry_with_aws().catalog())


def test_lint_requires_an_explicit_fail_back_step(tmp_path: Path) -> None:
    problems = _lint(tmp_path, _SCENARIO.replace("{rollback}\n", ""))

    assert [p.severity for p in problems] == ["error"]
    assert "action 'aws.rds.global-failover' cannot be undone automatically" in str(problems[0])
    assert "spec.steps[0].action" in str(problems[0])


def test_lint_requires_rollback_none_to_come_with_a_fail_back_or_a_reason(
    tmp_path: Path,
) -> None:
    bare = _lint(tmp_path, _SCENARIO.replace("{rollback}", "      rollback: none"))

    assert ["turns off rollback but nothing undoes it" in str(p) for p in bare] == [True]


def test_a_fail_back_step_under_spec_rollback_satisfies_lint(tmp_path: Path) -> None:
    assert _lint(tmp_path, _SCENARIO.replace("{rollback}", _FAIL_BACK)) == []


def test_params_refuse_an_unknown_mode() -> None:
    with pytest.raises(errors.InvalidParams, match="mode"):
        helpers.action(global_failover.NAME).parse_params({"mode": "failback"})


def test_the_region_of_an_arn() -> None:
    assert global_failover.region_of(WEST_ARN) == "us-west-2"
    assert global_failover.region_of("not-an-arn") == ""
