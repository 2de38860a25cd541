"""Roles and their scopes: what each role may do, and team/service scoping against the CMDB.

The scope checks use the sandbox's catalog (team-payments owns payments, checkout and
payments-db; team-storefront owns web and inventory) and a small catalog with a parent team.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from drills.service import auth
from orchestrator import records
from orchestrator.cmdb import backstage, impact, models
from tests.cmdb import factories

_R = auth.Role
_P = auth.Permission


def _principal(
    role: auth.Role, *, teams: tuple[str, ...] = (), services: tuple[str, ...] = ()
) -> auth.Principal:
    grant = auth.Grant.scoped_to(role, teams=teams, services=services)
    return auth.Principal.from_grants("pat", [grant], kind="token")


def _targets(catalog: models.Catalog, *refs: str) -> tuple[auth.ScopedService, ...]:
    reached = impact.impact(catalog, [catalog.lookup(ref) for ref in refs])
    return auth.services_of_plan(reached, catalog=catalog)


@pytest.fixture(scope="module")
def shop() -> models.Catalog:
    return backstage.load_catalog([factories.SAMPLE])


EXPECTED: dict[auth.Role, set[auth.Permission]] = {
    _R.VIEWER: {_P.READ},
    _R.OPERATOR: {_P.READ, _P.PLAN, _P.START, _P.ABORT, _P.ACK},
    _R.APPROVER: {_P.READ, _P.APPROVE},
    _R.ADMIN: set(auth.Permission),
}


@pytest.mark.parametrize("role", list(auth.Role))
@pytest.mark.parametrize("permission", list(auth.Permission))
def test_each_role_is_granted_exactly_its_permissions(
    role: auth.Role, permission: auth.Permission
) -> None:
    principal = auth.Principal(name="pat", roles=frozenset({role}))

    if permission in EXPECTED[role]:
        auth.authorize(principal, permission)
    else:
        with pytest.raises(auth.Forbidden) as refused:
            auth.authorize(principal, permission)
        assert f"may not {permission.doing}: that needs the role" in str(refused.value)
        assert "stormdrill tokens create --role" in str(refused.value)


def test_a_principal_without_any_role_may_not_even_read() -> None:
    nobody = auth.Principal(name="nobody", roles=frozenset(), kind="oidc")

    with pytest.raises(auth.Forbidden, match=r"nobody \(no role\) may not read runs"):
        auth.authorize(nobody, _P.READ)


def test_an_operator_of_team_payments_may_start_a_drill_on_its_own_database(
    shop: models.Catalog,
) -> None:
    operator = _principal(_R.OPERATOR, teams=("team-payments",))
    targets = _targets(shop, "resource:payments-db")

    # web (team-storefront) depends on it transitively: consumers are reached, not targeted
    assert [s.ref for s in targets] == ["resource:default/payments-db"]
    auth.authorize(operator, _P.START, services=targets)


def test_an_operator_of_team_payments_may_not_start_a_drill_that_targets_only_web(
    shop: models.Catalog,
) -> None:
    operator = _principal(_R.OPERATOR, teams=("team-payments",))

    with pytest.raises(auth.Forbidden) as refused:
        auth.authorize(operator, _P.START, services=_targets(shop, "web"))

    message = str(refused.value)
    assert "component:default/web (owner group:default/team-storefront)" in message
    assert "outside its scope (operator of group:default/team-payments)" in message


def test_a_drill_that_targets_services_of_two_teams_needs_a_scope_covering_both(
    shop: models.Catalog,
) -> None:
    targets = _targets(shop, "checkout", "web")
    payments_only = _principal(_R.OPERATOR, teams=("team-payments",))
    both = _principal(_R.OPERATOR, teams=("team-payments", "team-storefront"))
    payments_and_web = _principal(_R.OPERATOR, teams=("team-payments",), services=("web",))

    with pytest.raises(auth.Forbidden, match="component:default/web"):
        auth.authorize(payments_only, _P.START, services=targets)
    auth.authorize(both, _P.START, services=targets)
    auth.authorize(payments_and_web, _P.START, services=targets)


def test_a_service_scope_covers_that_service_only(shop: models.Catalog) -> None:
    operator = _principal(_R.OPERATOR, services=("checkout",))

    auth.authorize(operator, _P.ABORT, services=_targets(shop, "checkout"))
    with pytest.raises(auth.Forbidden):
        auth.authorize(operator, _P.ABORT, services=_targets(shop, "payments"))


def test_a_scoped_role_never_vouches_for_a_drill_whose_services_are_unknown() -> None:
    operator = _principal(_R.OPERATOR, teams=("team-payments",))

    for permission in (_P.PLAN, _P.START, _P.ACK):
        with pytest.raises(auth.Forbidden, match="map to no CMDB service"):
            auth.authorize(operator, permission, services=())
    # aborting only stops faults: a queued run whose targets are not known yet may be aborted
    auth.authorize(operator, _P.ABORT, services=())
    # an unscoped operator may: nothing to check a scope against
    auth.authorize(_principal(_R.OPERATOR), _P.START, services=())


def test_scopes_do_not_limit_reads_or_a_route_s_first_role_check(shop: models.Catalog) -> None:
    viewer = _principal(_R.VIEWER, teams=("team-payments",))
    operator = _principal(_R.OPERATOR, teams=("team-payments",))

    auth.authorize(viewer, _P.READ, services=_targets(shop, "web"))
    auth.authorize(operator, _P.START)  # services not known yet: the role alone is checked


def test_an_unscoped_grant_among_scoped_ones_covers_everything(shop: models.Catalog) -> None:
    principal = auth.Principal.from_grants(
        "pat",
        [
            auth.Grant.scoped_to(_R.OPERATOR, teams=("team-payments",)),
            auth.Grant(role=_R.ADMIN),
        ],
        kind="oidc",
    )

    auth.authorize(principal, _P.START, services=_targets(shop, "web"))


def test_a_scope_on_another_role_does_not_lend_its_permission(shop: models.Catalog) -> None:
    principal = auth.Principal.from_grants(
        "pat",
        [
            auth.Grant.scoped_to(_R.VIEWER, teams=("team-storefront",)),
            auth.Grant.scoped_to(_R.OPERATOR, teams=("team-payments",)),
        ],
        kind="oidc",
    )

    with pytest.raises(auth.Forbidden):  # the storefront scope is a viewer's, not an operator's
        auth.authorize(principal, _P.START, services=_targets(shop, "web"))


def test_a_parent_team_s_scope_covers_its_child_teams_services(tmp_path: Path) -> None:
    (tmp_path / "catalog-info.yaml").write_text(
        textwrap.dedent(
            """\
            apiVersion: backstage.io/v1alpha1
            kind: Group
            metadata: {name: team-shop}
            spec: {type: department, children: [team-cart]}
            ---
            apiVersion: backstage.io/v1alpha1
            kind: Group
            metadata: {name: team-cart}
            spec: {type: team, parent: team-shop, children: []}
            ---
            apiVersion: backstage.io/v1alpha1
            kind: Component
            metadata: {name: cart}
            spec: {type: service, lifecycle: production, owner: group:team-cart}
            """
        ),
        encoding="utf-8",
    )
    catalog = backstage.load_catalog([tmp_path], strict=True)
    targets = _targets(catalog, "cart")

    assert targets == (
        auth.ScopedService(
            ref="component:default/cart",
            owners=("group:default/team-cart", "group:default/team-shop"),
        ),
    )
    auth.authorize(_principal(_R.OPERATOR, teams=("team-shop",)), _P.START, services=targets)


def test_a_run_s_recorded_targets_are_its_scope_check(shop: models.Catalog) -> None:
    record = records.RunRecord(
        impact=(
            records.ImpactRow(ref="component:default/web", owner="group:default/team-storefront"),
            records.ImpactRow(
                ref="component:default/inventory",
                owner="group:default/team-storefront",
                distance=1,
            ),
        )
    )
    services = auth.services_of_run(record, catalog=shop)

    assert services == (
        auth.ScopedService(ref="component:default/web", owners=("group:default/team-storefront",)),
    )
    with pytest.raises(auth.Forbidden):
        auth.authorize(_principal(_R.OPERATOR, teams=("team-payments",)), _P.ABORT, services)
    auth.authorize(_principal(_R.OPERATOR, teams=("team-storefront",)), _P.ABORT, services)


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("component:web", "is a component: name a group"),
        ("Group:", "team 'Group:'"),
    ],
)
def test_a_team_scope_that_is_not_a_group_is_refused_with_the_fix(raw: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        auth.Grant.scoped_to(_R.OPERATOR, teams=(raw,))


def test_a_service_scope_must_name_a_component_or_resource() -> None:
    with pytest.raises(ValueError, match="is a group: name a component or resource"):
        auth.Grant.scoped_to(_R.OPERATOR, services=("group:team-payments",))
