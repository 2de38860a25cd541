"""The bundled key-person-loss drill, end to end against the sandbox, with auto-ack."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from drills import binding, settings
from drills.service import catalogs
from orchestrator import engine, journal, mutations
from sandbox import aws, stack

Bindings = dict[str, Any]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[stack.Sandbox]:
    with stack.Sandbox(tmp_path / "state", controller_interval_s=0.05) as sandbox:
        yield sandbox


def _bindings(api: client.ApiClient) -> Bindings:
    rbac = client.RbacAuthorizationV1Api(api)
    found: Bindings = {}
    for kind, items in (
        ("rolebinding", rbac.list_role_binding_for_all_namespaces().items),
        ("clusterrolebinding", rbac.list_cluster_role_binding().items),
    ):
        for item in items:
            meta = item.metadata
            assert meta is not None
            found[f"{kind}/{meta.namespace or ''}/{meta.name}"] = {
                "subjects": [(s.kind, s.name) for s in item.subjects or []],
                "annotations": dict(meta.annotations or {}),
                "labels": dict(meta.labels or {}),
            }
    return found


def _iam(endpoint: str) -> dict[str, Any]:
    iam = aws.session().client("iam", endpoint_url=endpoint)
    return {
        "keys": {
            k["AccessKeyId"]: k["Status"]
            for k in iam.list_access_keys(UserName="alice")["AccessKeyMetadata"]
        },
        "policies": iam.list_user_policies(UserName="alice")["PolicyNames"],
        "tags": iam.list_user_tags(UserName="alice")["Tags"],
    }


def test_key_person_loss_revokes_alice_during_and_restores_everything_after(
    world: stack.Sandbox, tmp_path: Path
) -> None:
    info = world.info
    api: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(info.kubeconfig), context=stack.CONTEXT
    )
    bound = binding.bind("key-person-loss", env=str(info.environment), sets=[])
    catalog = catalogs.catalog_for(settings.Settings.from_env({}), bound.drill.environment, ())
    before_rbac, before_iam = _bindings(api), _iam(info.aws_endpoint_url)
    during: dict[str, Any] = {}

    def listen(kind: str, _message: str, _data: Mapping[str, mutations.JsonValue]) -> None:
        if kind == "manual":
            during["rbac"], during["iam"] = _bindings(api), _iam(info.aws_endpoint_url)

    with api, journal.open_store(f"sqlite:///{tmp_path / 'journal.db'}") as store:
        eng = binding.make_engine(
            store=store,
            catalog=catalog,
            config=engine.EngineConfig(auto_ack_s=0.2),
            killswitch_file=None,
        )
        outcome = eng.run(bound.drill, listener=listen)
        findings = store.events(outcome.run.id, kind="finding")
        acks = store.events(outcome.run.id, kind="ack")
        [manual] = store.events(outcome.run.id, kind="manual")
        after_rbac, after_iam = _bindings(api), _iam(info.aws_endpoint_url)

    assert outcome.exit_code == engine.ExitCode.HELD, outcome.run.reason
    assert {(f.data["rule"], f.data["service"]) for f in findings} >= {
        ("runbook", "component:default/payments"),
        ("on-call-coverage", "component:default/payments"),
    }
    assert all(f.data["severity"] and f.data["suggestion"] for f in findings)
    assert manual.data["eligible"] == ["user:default/bob", "user:default/carol"]
    assert [a.data["automated"] for a in acks] == [True]

    alice = ("User", "alice")
    assert alice in before_rbac["rolebinding/shop/payments-oncall"]["subjects"]
    assert alice in before_rbac["clusterrolebinding//shop-admins"]["subjects"]
    assert not any(alice in b["subjects"] for b in during["rbac"].values())
    assert ("User", "bob") in during["rbac"]["rolebinding/shop/payments-oncall"]["subjects"]
    assert set(before_iam["keys"].values()) == {"Active"}
    assert set(during["iam"]["keys"].values()) == {"Inactive"} and during["iam"]["policies"]

    assert after_rbac == before_rbac
    assert after_iam == before_iam

    objectives = outcome.run.record.objectives
    assert objectives is not None
    assert objectives.achieved_rto_s is not None and objectives.rto_met is True
