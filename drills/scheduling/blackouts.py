"""Blackouts: whether a scheduled fire at some time falls inside a blackout calendar.

A blackout applies to everything (global), one Environment (by name), one CMDB service or
one team (by entity ref: the services a schedule's drill targets, the teams owning them).
Its windows are dated spans or weekly windows in the blackout's time zone (a weekly window
whose end is not after its start runs past midnight). Pure functions: no clock, no store.
A running drill is matched the same way (`covers`, with the environment, services and
teams of its run) when a blackout with `abortRunning` begins.

Service and team values are entity refs read by Backstage's rules (`canonical`): the kind
defaults to the field's (a service is a Component, a team a Group), the namespace to
`default`, and refs compare case-insensitively; so `checkout`, `Component:checkout` and
`component:default/checkout` name one service, `team-payments`, `group:team-payments`
and `group:default/team-payments` one team. A blackout is stored in that canonical form
(checked against the CMDB and the known Environments when the caller knows them: `Known`),
and both sides are compared in it again at match time, so rows written in a short form
still match. A service value written without a kind (an older row) matches a Component
or a Resource of that namespace and name, as the CMDB's own lookup of a bare name does.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import zoneinfo
from collections.abc import Collection, Iterable

from drills.scheduling import model
from orchestrator.cmdb import errors as cmdb_errors
from orchestrator.cmdb import models as cmdb_models


class UnknownScopeValue(model.ScheduleError):
    """A blackout's value names no Environment, CMDB service or team that is known (the
    API answers 422, the CLI exits 3); the message lists the close or known names."""


@dataclasses.dataclass(frozen=True)
class Known:
    """What a blackout's value may name. `None`: not known to the caller, so any value is
    taken in its canonical form (a service or team unchecked without a catalog)."""

    environments: frozenset[str] | None = None
    """The names of the Environments drills may run in."""
    catalog: cmdb_models.Catalog | None = None
    """The CMDB services and teams are checked against."""
    environments_from: str = ""
    """Where those names come from (shown in a refusal), e.g. `the bundled examples`."""
    catalog_from: str = ""
    """Where the catalog comes from (shown in a refusal): its paths."""


_DEFAULT_KIND = {
    model.BlackoutScope.SERVICE: cmdb_models.EntityKind.COMPONENT,
    model.BlackoutScope.TEAM: cmdb_models.EntityKind.GROUP,
}
_TEAM_KINDS = frozenset({cmdb_models.EntityKind.GROUP, cmdb_models.EntityKind.USER})
"""A team value names a Group (a service's `spec.owner` may also be a User)."""


def canonical(scope: model.BlackoutScope, value: str, *, known: Known | None = None) -> str:
    """The form a blackout's `value` is stored in: `""` for global, the Environment's name,
    `component:default/checkout` for a service, `group:default/team-payments` for a team.

    With `known`, an Environment it does not list, or a service or team its catalog does
    not hold, raises `UnknownScopeValue` naming the value and the close (or known) names;
    a value that is no entity ref raises `model.ScheduleError`.
    """
    text = value.strip()
    found = known or Known()
    if scope is model.BlackoutScope.GLOBAL:
        return ""
    if scope is model.BlackoutScope.ENVIRONMENT:
        return _environment(text, found)
    ref = _parsed(scope, text)
    if found.catalog is None:
        return str(ref)
    if scope is model.BlackoutScope.SERVICE:
        return str(_catalog_service(text, ref, found))
    return str(_catalog_team(text, ref, found))


def _parsed(scope: model.BlackoutScope, text: str) -> cmdb_models.EntityRef:
    try:
        ref = cmdb_models.EntityRef.parse(text, default_kind=_DEFAULT_KIND[scope])
    except cmdb_errors.RefInvalid as exc:
        raise model.ScheduleError(
            f"value: {exc}; write the {scope.value} as e.g. {_EXAMPLE[scope]}"
        ) from None
    if scope is model.BlackoutScope.SERVICE and ref.kind not in cmdb_models.SERVICE_KINDS:
        raise model.ScheduleError(
            f"value: {text!r} is a {ref.kind.value}, not a service (a Component or a"
            f" Resource); write e.g. {_EXAMPLE[scope]}, or use scope team for a group"
        )
    if scope is model.BlackoutScope.TEAM and ref.kind not in _TEAM_KINDS:
        raise model.ScheduleError(
            f"value: {text!r} is a {ref.kind.value}, not a team (a Group); write e.g."
            f" {_EXAMPLE[scope]}, or use scope service for a service"
        )
    return ref


_EXAMPLE = {
    model.BlackoutScope.SERVICE: "checkout or component:default/checkout",
    model.BlackoutScope.TEAM: "team-payments or group:default/team-payments",
}


def _environment(text: str, known: Known) -> str:
    if known.environments is None or text in known.environments:
        return text
    same = [name for name in sorted(known.environments) if name.casefold() == text.casefold()]
    if same:
        return same[0]
    names = sorted(known.environments)
    close = difflib.get_close_matches(text, names, n=3, cutoff=0.6)
    hint = f"did you mean {', '.join(repr(n) for n in close)}? " if close else ""
    raise UnknownScopeValue(
        f"value: no Environment named {text!r}{_from(known.environments_from)}; {hint}known:"
        f" {', '.join(names) or 'none'}"
    )


def _catalog_service(text: str, ref: cmdb_models.EntityRef, known: Known) -> cmdb_models.EntityRef:
    assert known.catalog is not None
    services = known.catalog.services
    if ":" not in text:  # a bare name: the one Component or Resource of that name
        same = [r for r in services if (r.namespace, r.name) == (ref.namespace, ref.name)]
        if len(same) == 1:
            return same[0]
    if ref in services:
        return ref
    raise UnknownScopeValue(
        f"value: no CMDB service {text!r} ({ref}) in the catalog{_from(known.catalog_from)};"
        f" {_close(ref, services)}"
    )


def _catalog_team(text: str, ref: cmdb_models.EntityRef, known: Known) -> cmdb_models.EntityRef:
    assert known.catalog is not None
    if ref in known.catalog.groups or ref in known.catalog.users:
        return ref
    raise UnknownScopeValue(
        f"value: no team {text!r} ({ref}) in the catalog{_from(known.catalog_from)};"
        f" {_close(ref, known.catalog.groups)}"
    )


def _close(ref: cmdb_models.EntityRef, among: Collection[cmdb_models.EntityRef]) -> str:
    close = cmdb_models.close_matches(str(ref), among)
    if close:
        return f"did you mean {', '.join(repr(c) for c in close)}?"
    shown = sorted(str(r) for r in among)
    return f"known: {', '.join(shown[:10]) or 'none'}{', …' if len(shown) > 10 else ''}"


def _from(where: str) -> str:
    return f" ({where})" if where else ""


# ---- matching -------------------------------------------------------------------------------


def _ref(raw: str, kind: cmdb_models.EntityKind) -> cmdb_models.EntityRef | None:
    try:
        return cmdb_models.EntityRef.parse(raw, default_kind=kind)
    except cmdb_errors.RefInvalid:
        return None


def _same_service(value: str, service: str) -> bool:
    """Whether a blackout's service `value` names the drill's `service` (both canonical)."""
    component = cmdb_models.EntityKind.COMPONENT
    wanted, found = _ref(value, component), _ref(service, component)
    if wanted is None or found is None:
        return value.strip().casefold() == service.strip().casefold()
    if ":" not in value:  # no kind written: a Component or a Resource of that name
        return found.kind in cmdb_models.SERVICE_KINDS and (found.namespace, found.name) == (
            wanted.namespace,
            wanted.name,
        )
    return wanted == found


def _same_team(value: str, team: str) -> bool:
    """Whether a blackout's team `value` names the drill's owning `team` (both canonical)."""
    group = cmdb_models.EntityKind.GROUP
    wanted, found = _ref(value, group), _ref(team, group)
    if wanted is None or found is None:
        return value.strip().casefold() == team.strip().casefold()
    return wanted == found


def applies(blackout: model.Blackout, template: model.RunTemplate) -> bool:
    """Whether `blackout`'s scope covers the drill `template` submits."""
    return covers(
        blackout,
        environment=template.environment,
        services=template.services,
        teams=template.teams,
    )


def covers(
    blackout: model.Blackout,
    *,
    environment: str,
    services: Iterable[str],
    teams: Iterable[str],
) -> bool:
    """Whether `blackout`'s scope covers a drill in `environment` on `services` (CMDB refs)
    owned by `teams`: entity refs compared in canonical form (see the module), however
    either side wrote them."""
    scope = blackout.scope
    if scope is model.BlackoutScope.GLOBAL:
        return True
    if scope is model.BlackoutScope.ENVIRONMENT:
        return blackout.value.strip().casefold() == environment.strip().casefold()
    if scope is model.BlackoutScope.SERVICE:
        return any(_same_service(blackout.value, service) for service in services)
    return any(_same_team(blackout.value, team) for team in teams)


def inside(blackout: model.Blackout, at: dt.datetime) -> bool:
    """Whether `at` (aware) falls in one of `blackout`'s windows."""
    zone = zoneinfo.ZoneInfo(blackout.timezone)
    local = at.astimezone(zone)
    for window in blackout.windows:
        if isinstance(window, model.DatedWindow):
            if window.start <= at < window.end:
                return True
            continue
        now, day = local.time().replace(tzinfo=None), local.weekday()
        if window.start < window.end:
            if day in window.days and window.start <= now < window.end:
                return True
        elif (day in window.days and now >= window.start) or (
            (day - 1) % 7 in window.days and now < window.end
        ):
            return True
    return False


def blocking(
    found: Iterable[model.Blackout], template: model.RunTemplate, *, at: dt.datetime
) -> model.Blackout | None:
    """The first blackout that skips a fire of `template` at `at`, if any."""
    for blackout in found:
        if applies(blackout, template) and inside(blackout, at):
            return blackout
    return None
