"""The sample catalog (sandbox/data) describes exactly the shop of docs/sandbox-world.md."""

from __future__ import annotations

import datetime
import ipaddress

import pytest

from orchestrator.cmdb import backstage, models
from tests.cmdb import factories

R = models.EntityRef.parse


@pytest.fixture
def catalog() -> models.Catalog:
    return backstage.load_catalog([factories.SAMPLE])


def test_sample_catalog_loads_without_problems(catalog: models.Catalog) -> None:
    assert catalog.problems == ()
    assert len(catalog.services) == 6
    assert len(catalog.groups) == 3
    assert len(catalog.users) == 7
    assert len(catalog.apis) == 2
    assert list(catalog.systems) == [R("system:shop")]
    assert list(catalog.domains) == [R("domain:commerce")]
    assert set(catalog.rotations) == {"payments", "storefront", "platform"}


def test_sample_services_have_the_world_docs_refs_tiers_and_owners(
    catalog: models.Catalog,
) -> None:
    expected = {
        "component:default/web": (1, "group:default/team-storefront"),
        "component:default/checkout": (1, "group:default/team-payments"),
        "component:default/payments": (1, "group:default/team-payments"),
        "component:default/inventory": (2, "group:default/team-storefront"),
        "resource:default/payments-db": (1, "group:default/team-payments"),
        "resource:default/payprovider": (1, "group:default/team-payments"),
    }
    got = {str(ref): (s.tier, str(s.owner)) for ref, s in catalog.services.items()}
    assert got == expected
    assert all(s.system == R("system:shop") for s in catalog.services.values())
    assert not any(s.tier_defaulted for s in catalog.services.values())


def test_sample_dependencies_follow_depends_on_and_consumed_apis(catalog: models.Catalog) -> None:
    deps = {ref.name: {d.ref.name for d in s.dependencies} for ref, s in catalog.services.items()}
    assert deps == {
        "web": {"checkout", "inventory"},
        "checkout": {"payments", "inventory"},
        "payments": {"payments-db", "payprovider"},
        "inventory": set(),
        "payments-db": set(),
        "payprovider": set(),
    }
    checkout = catalog.service(R("checkout", default_kind=models.EntityKind.COMPONENT))
    via_api = next(d for d in checkout.dependencies if d.ref.name == "payments")
    assert via_api.type is models.DependencyType.CONSUMES_API
    assert via_api.via == R("api:payments-api")
    assert catalog.apis[R("api:payments-api")].providers == (R("component:payments"),)


def test_sample_vendor_has_its_cidr_and_port_and_payments_calls_it(
    catalog: models.Catalog,
) -> None:
    vendor = catalog.services[R("resource:payprovider")].vendor
    assert vendor is not None
    assert vendor.cidrs == (ipaddress.ip_network("203.0.113.0/24"),)
    assert vendor.ports == (443,)
    assert catalog.services[R("component:payments")].vendors == (vendor,)
    assert catalog.services[R("component:checkout")].vendors == ()


def test_sample_objectives_have_defaults_and_failure_mode_overrides(
    catalog: models.Catalog,
) -> None:
    objectives = catalog.services[R("component:payments")].objectives
    assert objectives.rto == datetime.timedelta(minutes=30)
    assert objectives.rto_for("availability-zone") == datetime.timedelta(minutes=10)
    assert objectives.rto_for("third-party") == datetime.timedelta(hours=1)
    assert objectives.rto_for("region") == datetime.timedelta(minutes=30)
    assert objectives.rpo_for("availability-zone") == datetime.timedelta(0)


def test_sample_people_teams_on_call_and_the_single_payments_runbook_editor(
    catalog: models.Catalog,
) -> None:
    payments = catalog.services[R("component:payments")]
    assert [u.name for u in payments.people.owners] == ["alice", "bob", "carol"]
    assert payments.people.break_glass == (R("user:frank"),)
    assert payments.people.runbook_owner == R("user:alice")
    assert payments.people.runbook_editors == (R("user:alice"),)
    assert payments.people.repo_path == "services/payments"
    assert payments.people.on_call == ("payments",)
    rotation = catalog.rotations_for(payments.ref)[0]
    assert [(layer.name, [m.name for m in layer.members]) for layer in rotation.layers] == [
        ("primary", ["alice", "bob"]),
        ("secondary", ["carol"]),
    ]
    assert catalog.groups[R("group:team-platform")].members == (R("user:frank"), R("user:grace"))
    alice = catalog.users[R("user:alice")]
    assert alice.email == "alice@shop.example"
    assert alice.member_of == (R("group:team-payments"),)


def test_sample_placement_links_workloads_and_aws_resources(catalog: models.Catalog) -> None:
    web = catalog.services[R("component:web")]
    assert web.kubernetes.namespaces == ("shop",)
    assert [str(s) for s in web.kubernetes.selectors] == ["app.kubernetes.io/name=web"]
    assert [str(r) for r in web.aws.resources] == ["asg:shop-web-asg"]
    assert dict(catalog.services[R("component:checkout")].aws.tags) == {"app": "checkout"}
    assert [str(r) for r in catalog.services[R("resource:payments-db")].aws.resources] == [
        "rds:payments-db"
    ]


def test_service_source_points_at_the_first_line_of_its_document(
    catalog: models.Catalog,
) -> None:
    source = catalog.services[R("component:checkout")].source
    assert source.file == str(factories.SAMPLE_CATALOG)
    lines = factories.SAMPLE_CATALOG.read_text(encoding="utf-8").splitlines()
    assert lines[source.line - 1] == "apiVersion: backstage.io/v1alpha1"
    assert lines[source.line + 2] == "  name: checkout"


def test_on_call_file_alone_loads_rotations_with_dangling_member_warnings() -> None:
    catalog = backstage.load_catalog([factories.SAMPLE_ONCALL])
    assert len(catalog.rotations) == 3
    assert catalog.services == {}
    assert {p.severity for p in catalog.problems} == {"warning"}
    assert any("user:default/alice" in p.message for p in catalog.problems)
