"""RBAC revoke-subject: bindings lose the subject and get their exact subjects list back."""

from __future__ import annotations

from orchestrator import context, mutations
from orchestrator.providers.kubernetes import markers, objects, rbac
from tests.fixtures import kube
from tests.providers_kubernetes import factories

PAYMENTS_ONCALL = factories.ref("rolebinding", "payments-oncall", "shop")
SHOP_ADMINS = factories.ref("clusterrolebinding", "shop-admins")
STOREFRONT = factories.ref("rolebinding", "storefront-deployers", "shop")
ALICE = factories.ref("subject", "User:alice")


def _subjects(ctx: context.RunContext, ref: object) -> list[str]:
    found = objects.read(factories.conn_of(ctx), ref)  # type: ignore[arg-type]
    assert found is not None
    return [f"{s['kind']}:{s['name']}" for s in found.get("subjects") or []]


def test_revoke_removes_alice_from_every_binding_and_undo_restores_them_exactly(
    fresh_kube: kube.KubeSandbox, ctx: context.RunContext
) -> None:
    action = rbac.RevokeSubjectAction()
    touched = [PAYMENTS_ONCALL, SHOP_ADMINS, STOREFRONT]
    before = factories.states_of(ctx, touched)
    writes = fresh_kube.server.mutating_request_count

    planned = factories.plan(action, ctx, [ALICE])

    assert fresh_kube.server.mutating_request_count == writes
    assert sorted(m.target.name for m in planned) == ["payments-oncall", "shop-admins"]
    tokens = factories.apply_all(action, ctx, planned)
    assert _subjects(ctx, PAYMENTS_ONCALL) == ["User:bob", "Group:team-payments"]
    assert _subjects(ctx, SHOP_ADMINS) == ["User:frank"]
    assert markers.RUN_ID in factories.annotations_on(ctx, SHOP_ADMINS)

    factories.revert_all(action, ctx, tokens)
    assert factories.states_of(ctx, touched) == before
    factories.revert_all(action, ctx, tokens)
    assert factories.states_of(ctx, touched) == before


def test_undo_after_someone_changed_the_binding_re_adds_only_what_we_removed(
    fresh_kube: kube.KubeSandbox, ctx: context.RunContext
) -> None:
    action = rbac.RevokeSubjectAction()
    planned = [
        m for m in factories.plan(action, ctx, [ALICE]) if m.target.key == PAYMENTS_ONCALL.key
    ]
    assert len(planned) == 1
    tokens = factories.apply_all(action, ctx, planned)
    objects.patch(
        factories.conn_of(ctx),
        PAYMENTS_ONCALL,
        {"subjects": [{"kind": "User", "name": "bob", "apiGroup": "rbac.authorization.k8s.io"}]},
    )

    factories.revert_all(action, ctx, tokens)

    assert _subjects(ctx, PAYMENTS_ONCALL) == ["User:bob", "User:alice"]
    assert markers.RUN_ID not in factories.annotations_on(ctx, PAYMENTS_ONCALL)


def test_undo_of_a_deleted_binding_does_not_recreate_it(
    fresh_kube: kube.KubeSandbox, ctx: context.RunContext
) -> None:
    action = rbac.RevokeSubjectAction()
    planned = [m for m in factories.plan(action, ctx, [ALICE]) if m.target.key == SHOP_ADMINS.key]
    assert len(planned) == 1
    tokens = factories.apply_all(action, ctx, planned)
    assert objects.delete(factories.conn_of(ctx), SHOP_ADMINS)

    factories.revert_all(action, ctx, tokens)

    assert objects.read(factories.conn_of(ctx), SHOP_ADMINS) is None


def test_a_person_target_revokes_the_user_of_the_same_name(ctx: context.RunContext) -> None:
    person = mutations.TargetRef(provider="people", kind="person", name="user:default/alice")

    planned = factories.plan(rbac.RevokeSubjectAction(), ctx, [person])

    assert sorted(m.target.name for m in planned) == ["payments-oncall", "shop-admins"]
