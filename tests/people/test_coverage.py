"""On-call coverage per layer over the drill window, with overrides, and absence analysis."""

from __future__ import annotations

from datetime import timedelta

from orchestrator.cmdb import models as cmdb
from orchestrator.providers.people import analysing, coverage
from tests.people import factories
from tests.people.factories import T0, user

WINDOW_END = T0 + timedelta(hours=8)


def _payments() -> cmdb.Rotation:
    return factories.rotation(
        "payments",
        factories.layer("primary", "alice", "bob"),
        factories.layer("secondary", "carol", "dan"),
    )


def test_a_layer_losing_one_of_two_responders_keeps_one() -> None:
    primary, secondary = coverage.coverage(
        _payments(), absent={user("alice")}, start=T0, end=WINDOW_END
    )

    assert (primary.fewest_before, primary.fewest_after) == (2, 1)
    assert primary.remaining == (user("bob"),)
    assert primary.lost == (user("alice"),)
    assert (secondary.fewest_after, secondary.weakened) == (2, False)


def test_an_override_replacing_a_responder_midway_counts_from_when_it_starts() -> None:
    swap = cmdb.Override(
        user=user("alice"),
        replaces=user("carol"),
        start=T0 + timedelta(hours=2),
        end=T0 + timedelta(hours=4),
    )
    rotation = factories.rotation(
        "payments",
        factories.layer("primary", "bob", "erin"),
        factories.layer("secondary", "carol", "dan", overrides=[swap]),
    )

    primary, secondary = coverage.coverage(
        rotation, absent={user("alice")}, start=T0, end=WINDOW_END
    )

    assert primary.weakened is False
    assert secondary.fewest_after == 1
    assert secondary.weakest_at == T0 + timedelta(hours=2)
    assert secondary.remaining == (user("dan"),)
    assert secondary.lost == (user("alice"),)


def test_an_override_outside_the_window_changes_nothing() -> None:
    later = cmdb.Override(
        user=user("alice"),
        start=WINDOW_END + timedelta(hours=1),
        end=WINDOW_END + timedelta(hours=2),
    )
    rotation = factories.rotation("r", factories.layer("primary", "bob", "erin", overrides=[later]))

    [primary] = coverage.coverage(rotation, absent={user("alice")}, start=T0, end=WINDOW_END)

    assert (primary.fewest_after, primary.weakened) == (2, False)


def test_an_additional_override_adds_a_responder_while_active() -> None:
    extra = cmdb.Override(user=user("zoe"), start=T0, end=T0 + timedelta(hours=1))
    rotation = factories.rotation("r", factories.layer("primary", "bob", overrides=[extra]))

    assert coverage.on_call_now(rotation, at=T0) == (user("bob"), user("zoe"))
    assert coverage.on_call_now(rotation, at=T0 + timedelta(hours=2)) == (user("bob"),)


def _catalog(*, break_glass: tuple[str, ...] = ("frank",)) -> cmdb.Catalog:
    team = factories.group("team-payments")
    service_ref = cmdb.EntityRef(cmdb.EntityKind.COMPONENT, "default", "payments")
    service = cmdb.Service(
        ref=service_ref,
        name="payments",
        kind=cmdb.EntityKind.COMPONENT,
        type="service",
        system=None,
        owner=team,
        tier=1,
        lifecycle="production",
        objectives=cmdb.Objectives(),
        source=cmdb.SourceLocation("test", 1),
        people=cmdb.People(
            owners=(user("alice"),),
            on_call=(cmdb.RotationName("payments"),),
            break_glass=tuple(user(n) for n in break_glass),
            runbook_owner=user("alice"),
            runbook_editors=(user("alice"),),
        ),
    )
    rotation = cmdb.Rotation(
        name=cmdb.RotationName("payments"),
        layers=_payments().layers,
        source=cmdb.SourceLocation("test", 1),
        team=team,
    )
    return cmdb.Catalog(services={service_ref: service}, rotations={rotation.name: rotation})


def _analyse(
    catalog: cmdb.Catalog, *absent: str, existing: bool = False
) -> list[analysing.Finding]:
    analysis = analysing.Analysis(
        catalog=catalog,
        absent=frozenset(user(n) for n in absent),
        window=analysing.Window(T0, WINDOW_END),
        include_existing=existing,
    )
    return analysis.run(list(catalog.services.values()))


def test_absence_analysis_reports_sole_owner_on_call_and_runbook_gaps() -> None:
    found = _analyse(_catalog(), "alice")

    rules = {(f.rule, f.severity) for f in found}
    assert rules == {
        (analysing.Rule.SOLE_OWNER, analysing.Severity.HIGH),
        (analysing.Rule.ON_CALL, analysing.Severity.MEDIUM),
        (analysing.Rule.RUNBOOK, analysing.Severity.HIGH),
    }
    assert all(f.service.name == "payments" and f.suggestion for f in found)


def test_break_glass_below_two_is_reported_only_when_the_absence_causes_it() -> None:
    catalog = _catalog(break_glass=("frank", "grace"))

    lost = [f for f in _analyse(catalog, "grace") if f.rule is analysing.Rule.BREAK_GLASS]
    untouched = [f for f in _analyse(catalog, "bob") if f.rule is analysing.Rule.BREAK_GLASS]
    existing = [
        f
        for f in _analyse(_catalog(), "bob", existing=True)
        if f.rule is analysing.Rule.BREAK_GLASS
    ]

    assert [f.severity for f in lost] == [analysing.Severity.MEDIUM]
    assert untouched == []
    assert [f.severity for f in existing] == [analysing.Severity.LOW]
