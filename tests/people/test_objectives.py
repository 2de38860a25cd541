"""Achieved RTO with flapping probes (the stability window resets) and objective targets."""

from __future__ import annotations

import datetime as dt
from datetime import timedelta

from orchestrator import objectives
from orchestrator.cmdb import models as cmdb
from scenarios import quantities
from tests.people.factories import T0


def _samples(*pattern: tuple[float, str, bool]) -> list[objectives.Sample]:
    return [objectives.Sample(at=T0 + timedelta(seconds=s), probe=p, ok=ok) for s, p, ok in pattern]


def test_a_flapping_probe_resets_the_stability_window() -> None:
    samples = _samples(
        (1, "web", False),
        (2, "web", True),  # passes briefly...
        (3, "web", True),
        (4, "web", False),  # ...flaps: the window restarts
        (5, "web", True),
        (6, "web", True),
        (7, "web", False),
        (8, "web", True),  # the streak that lasts
        (9, "web", True),
        (10, "web", True),
        (11, "web", True),
    )

    assert objectives.achieved_rto(samples, t0=T0, window_s=3.0) == 8.0


def test_recovery_never_stable_for_the_window_has_no_rto() -> None:
    samples = _samples((1, "web", False), (2, "web", True), (3, "web", False), (4, "web", True))

    assert objectives.achieved_rto(samples, t0=T0, window_s=3.0) is None


def test_every_probe_must_pass_together_for_the_window_to_run() -> None:
    samples = _samples(
        (1, "web", False),
        (2, "web", True),
        (2, "db", False),
        (4, "web", True),
        (5, "db", True),
        (7, "web", True),
        (8, "db", True),
    )

    assert objectives.achieved_rto(samples, t0=T0, window_s=3.0) == 5.0


def test_no_failure_after_t0_is_an_rto_of_zero_and_no_fault_is_none() -> None:
    samples = _samples((1, "web", True), (5, "web", True))

    assert objectives.achieved_rto(samples, t0=T0, window_s=3.0) == 0.0
    assert objectives.achieved_rto(samples, t0=None, window_s=3.0) is None


def _service(name: str, *, rto: dt.timedelta, az_rto: dt.timedelta) -> cmdb.Service:
    ref = cmdb.EntityRef(cmdb.EntityKind.COMPONENT, "default", name)
    return cmdb.Service(
        ref=ref,
        name=name,
        kind=cmdb.EntityKind.COMPONENT,
        type="service",
        system=None,
        owner=cmdb.EntityRef(cmdb.EntityKind.GROUP, "default", "team"),
        tier=1,
        lifecycle=None,
        objectives=cmdb.Objectives(
            rto=rto, rto_by_mode={cmdb.FailureMode("availability-zone"): az_rto}
        ),
        source=cmdb.SourceLocation("test", 1),
    )


def test_targets_default_to_the_strictest_cmdb_objective_for_the_failure_mode() -> None:
    services = [
        _service("web", rto=dt.timedelta(minutes=15), az_rto=dt.timedelta(minutes=5)),
        _service("db", rto=dt.timedelta(minutes=30), az_rto=dt.timedelta(minutes=10)),
    ]

    by_mode = objectives.target_of(None, services=services, mode="availability-zone", kind="rto")
    default = objectives.target_of(None, services=services, mode="key-person", kind="rto")
    declared = objectives.target_of(
        quantities.Duration(60), services=services, mode="key-person", kind="rto"
    )
    missing = objectives.target_of(None, services=services, mode="key-person", kind="rpo")

    assert (by_mode.seconds, by_mode.source) == (300.0, "cmdb:component:default/web")
    assert default.seconds == 900.0
    assert (declared.seconds, declared.source) == (60.0, "scenario")
    assert (missing.seconds, missing.source) == (None, None)
