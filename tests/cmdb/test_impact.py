"""Impact through the reverse dependency graph, and mapping concrete targets to services."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.cmdb import backstage, errors, impact, models
from tests.cmdb import factories as f

R = models.EntityRef.parse


@pytest.fixture
def shop() -> models.Catalog:
    return backstage.load_catalog([f.SAMPLE])


def test_losing_the_payments_database_reaches_payments_checkout_and_web(
    shop: models.Catalog,
) -> None:
    result = impact.impact(shop, [R("resource:payments-db")])
    rows = [(str(s.ref), s.distance, s.via) for s in result.services]
    assert rows == [
        ("resource:default/payments-db", 0, None),
        ("component:default/payments", 1, models.DependencyType.DEPENDS_ON),
        ("component:default/checkout", 2, models.DependencyType.CONSUMES_API),
        ("component:default/web", 3, models.DependencyType.DEPENDS_ON),
    ]
    web = result.get(R("component:web"))
    assert web is not None
    assert [r.name for r in web.path] == ["payments-db", "payments", "checkout", "web"]
    assert web.owner == R("group:team-storefront")
    assert result.owners == (R("group:team-payments"), R("group:team-storefront"))


def test_impact_is_sorted_by_tier_then_distance(shop: models.Catalog) -> None:
    result = impact.impact(shop, [R("component:inventory")])
    assert [(s.ref.name, s.tier, s.distance) for s in result.services] == [
        ("checkout", 1, 1),
        ("web", 1, 1),
        ("inventory", 2, 0),
    ]


def test_impact_through_a_dependency_cycle_reaches_each_service_once(tmp_path: Path) -> None:
    path = f.write(
        tmp_path,
        "c.yaml",
        f.group(),
        f.component("a", depends_on=["component:c"]),
        f.component("b", depends_on=["component:a"]),
        f.component("c", depends_on=["component:b"]),
        f.component("d", depends_on=["component:c"]),
    )
    catalog = backstage.load_catalog([path])
    result = impact.impact(catalog, [R("component:a")])
    assert [(s.ref.name, s.distance) for s in result.services] == [
        ("a", 0),
        ("b", 1),
        ("c", 2),
        ("d", 3),
    ]


def test_targeting_an_api_or_a_system_targets_its_services(shop: models.Catalog) -> None:
    by_api = impact.impact(shop, [R("api:payments-api")])
    assert [s.ref.name for s in by_api.services if s.distance == 0] == ["payments"]
    by_system = impact.impact(shop, [R("system:shop")])
    assert len(by_system.services) == 6
    assert all(s.distance == 0 for s in by_system.services)


def test_an_unknown_target_raises_unknown_ref_with_suggestions(shop: models.Catalog) -> None:
    with pytest.raises(errors.UnknownRef) as caught:
        impact.impact(shop, [R("component:payment")])
    assert "component:default/payments" in caught.value.suggestions


def test_pods_map_to_services_by_label_selector_and_namespace(shop: models.Catalog) -> None:
    labels = {"app.kubernetes.io/name": "checkout", "app.kubernetes.io/part-of": "shop"}
    found = impact.services_for_kubernetes(shop, namespace="shop", labels=labels)
    assert [s.ref.name for s in found] == ["checkout"]
    assert impact.services_for_kubernetes(shop, namespace="default", labels=labels) == []
    kube_proxy = {"k8s-app": "kube-proxy"}
    assert impact.services_for_kubernetes(shop, namespace="kube-system", labels=kube_proxy) == []


def test_kubernetes_id_means_the_backstage_kubernetes_id_label(tmp_path: Path) -> None:
    path = f.write(
        tmp_path,
        "c.yaml",
        f.group(),
        f.component("web", annotations={"backstage.io/kubernetes-id": "web"}),
        f.component(
            "api",
            annotations={"backstage.io/kubernetes-label-selector": "tier in (api,backend),!canary"},
        ),
    )
    catalog = backstage.load_catalog([path])
    by_id = impact.services_for_kubernetes(
        catalog, namespace="any", labels={"backstage.io/kubernetes-id": "web"}
    )
    assert [s.ref.name for s in by_id] == ["web"]
    by_set = impact.services_for_kubernetes(catalog, namespace="x", labels={"tier": "backend"})
    assert [s.ref.name for s in by_set] == ["api"]
    canary = {"tier": "backend", "canary": "yes"}
    assert impact.services_for_kubernetes(catalog, namespace="x", labels=canary) == []


def test_aws_resources_map_to_services_by_tags_ids_and_asg_membership(
    shop: models.Catalog,
) -> None:
    instance = {"app": "checkout", "stormdrill:allow": "true"}
    assert [s.ref.name for s in impact.services_for_aws(shop, tags=instance)] == ["checkout"]
    assert impact.services_for_aws(shop, tags={"app": "bastion"}) == []
    rds = [models.AwsResourceId.parse("rds:payments-db")]
    assert [s.ref.name for s in impact.services_for_aws(shop, resource_ids=rds)] == ["payments-db"]
    asg_instance = {"aws:autoscaling:groupName": "shop-web-asg"}
    assert [s.ref.name for s in impact.services_for_aws(shop, tags=asg_instance)] == ["web"]


def test_aws_zone_narrows_to_services_placed_there(shop: models.Catalog) -> None:
    rds = [models.AwsResourceId.parse("rds:payments-db")]
    assert impact.services_for_aws(shop, resource_ids=rds, zone="us-east-1c") == []
    assert len(impact.services_for_aws(shop, resource_ids=rds, zone="us-east-1b")) == 1
