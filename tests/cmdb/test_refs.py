"""Entity references: full and short forms, defaults by context, and lookups by people."""

from __future__ import annotations

import pytest

from orchestrator.cmdb import backstage, errors, models
from tests.cmdb import factories

K = models.EntityKind


@pytest.mark.parametrize(
    ("raw", "default_kind", "expected"),
    [
        ("component:default/checkout", None, "component:default/checkout"),
        ("component:checkout", None, "component:default/checkout"),
        ("checkout", K.COMPONENT, "component:default/checkout"),
        ("resource:payments-db", K.COMPONENT, "resource:default/payments-db"),
        ("team-payments", K.GROUP, "group:default/team-payments"),
        ("shop/checkout", K.COMPONENT, "component:shop/checkout"),
        ("Component:Default/Checkout", None, "component:default/checkout"),
        ("  user:frank ", None, "user:default/frank"),
    ],
)
def test_refs_parse_in_full_and_short_forms_to_the_canonical_form(
    raw: str, default_kind: models.EntityKind | None, expected: str
) -> None:
    assert str(models.EntityRef.parse(raw, default_kind=default_kind)) == expected


def test_short_and_full_forms_of_one_entity_compare_equal() -> None:
    short = models.EntityRef.parse("checkout", default_kind=K.COMPONENT)
    assert short == models.EntityRef.parse("component:default/checkout")
    assert short.short == "checkout"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("checkout", "the kind is missing"),
        ("widget:checkout", "unknown kind 'widget'"),
        ("", "empty"),
        ("component:default/check out", "name 'check out'"),
    ],
)
def test_invalid_refs_raise_ref_invalid_saying_why(raw: str, reason: str) -> None:
    with pytest.raises(errors.RefInvalid) as caught:
        models.EntityRef.parse(raw)
    assert reason in caught.value.reason


def test_lookup_finds_a_unique_name_of_any_kind_and_suggests_close_ones() -> None:
    catalog = backstage.load_catalog([factories.SAMPLE])
    assert str(catalog.lookup("payments-db")) == "resource:default/payments-db"
    assert str(catalog.lookup("checkout")) == "component:default/checkout"
    assert str(catalog.lookup("api:payments-api")) == "api:default/payments-api"
    with pytest.raises(errors.UnknownRef) as caught:
        catalog.lookup("paymnts")
    assert "component:default/payments" in caught.value.suggestions
    assert isinstance(caught.value, errors.CmdbError)
