"""Analysing: what a set of absent people leaves uncovered, per CMDB service (no mutation).

Rules, each run for every service of the catalog with the absent set A:
- `sole-owner`: every owner of the service is in A (a single owner lost, or all of them);
- `on-call-coverage`: a layer of a rotation covering the service keeps fewer than 2
  responders at some moment of the drill window because of A (overrides applied);
- `runbook`: the runbook owner is in A and no other runbook editor remains;
- `break-glass`: fewer than 2 break-glass holders remain because of A;
- `truck-factor`: the truck factor of the service's code (`stormdrill.dev/repo-path`, read
  from git history in the analysis's `repository`) drops below 2 because of A.

Invariants: a rule reports only what the absence changes, unless `includeExistingGaps` is
set (then gaps that existed before are reported too, with severity `low`). Every finding
has a rule, a severity, the service, a message and a suggested action. The analysis is a
non-mutating action: its one planned "mutation" carries the findings in `pre_state`
(journaled with the run; the engine turns each into a `finding` event) and changes nothing.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
from collections.abc import Collection, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import ClassVar

import pydantic
from pydantic import alias_generators

from orchestrator import mutations, registry
from orchestrator.cmdb import errors as cmdb_errors
from orchestrator.cmdb import models as cmdb
from orchestrator.providers.people import (
    connecting,
    coverage,
    directory,
    errors,
    truckfactor,
)
from scenarios import quantities

log = logging.getLogger(__name__)

NAME = "people.analyse-absence"
MIN_HOLDERS = 2


class Severity(enum.StrEnum):
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class Rule(enum.StrEnum):
    SOLE_OWNER = "sole-owner"
    ON_CALL = "on-call-coverage"
    RUNBOOK = "runbook"
    BREAK_GLASS = "break-glass"
    TRUCK_FACTOR = "truck-factor"


@dataclasses.dataclass(frozen=True)
class Finding:
    """One gap the absence opens (or, with `includeExistingGaps`, one that was there)."""

    rule: Rule
    severity: Severity
    service: cmdb.EntityRef
    message: str
    suggestion: str

    def to_json(self) -> dict[str, mutations.JsonValue]:
        return {
            "rule": self.rule.value,
            "severity": self.severity.value,
            "service": str(self.service),
            "message": self.message,
            "suggestion": self.suggestion,
        }


class AnalyseParams(pydantic.BaseModel):
    """`with:` of `people.analyse-absence`."""

    model_config = pydantic.ConfigDict(
        extra="forbid",
        frozen=True,
        alias_generator=alias_generators.to_camel,
        validate_by_name=True,
        validate_by_alias=True,
    )

    window: quantities.Duration | None = None
    """How long the absence lasts for on-call coverage (default: until the run expires)."""
    repository: str | None = None
    """A local git clone; `stormdrill.dev/repo-path` annotations are relative to it."""
    services: tuple[str, ...] = ()
    """Only these services (refs or names); default: every service of the catalog."""
    include_existing_gaps: bool = False


@dataclasses.dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime


def _names(people: Collection[cmdb.EntityRef]) -> str:
    return ", ".join(directory.label(p) for p in people) or "nobody"


def _gap_severity(after: int) -> Severity:
    return Severity.HIGH if after == 0 else Severity.MEDIUM


@dataclasses.dataclass(frozen=True)
class Analysis:
    """The inputs of every rule: the catalog, who is absent, the window, the options."""

    catalog: cmdb.Catalog
    absent: frozenset[cmdb.EntityRef]
    window: Window
    repository: Path | None = None
    include_existing: bool = False

    def run(self, services: Sequence[cmdb.Service]) -> list[Finding]:
        found: list[Finding] = []
        for service in services:
            found.extend(self.owners(service))
            found.extend(self.on_call(service))
            found.extend(self.runbook(service))
            found.extend(self.break_glass(service))
            found.extend(self.truck_factor(service))
        return found

    def _severity(self, *, changed: bool, after: int) -> Severity | None:
        if changed:
            return _gap_severity(after)
        return Severity.LOW if self.include_existing else None

    def owners(self, service: cmdb.Service) -> list[Finding]:
        owners = service.people.owners
        left = [p for p in owners if p not in self.absent]
        if not owners or left:
            return []
        what = "its sole owner" if len(owners) == 1 else f"all {len(owners)} owners"
        return [
            Finding(
                rule=Rule.SOLE_OWNER,
                severity=Severity.HIGH,
                service=service.ref,
                message=f"{service.ref.short} loses {what} ({_names(owners)}); nobody owns it",
                suggestion=f"add a second owner to {service.owner.short} or move "
                f"{service.ref.short} to a team with more than one member",
            )
        ]

    def on_call(self, service: cmdb.Service) -> list[Finding]:
        found: list[Finding] = []
        for rotation in self.catalog.rotations_for(service.ref):
            for layer in coverage.coverage(
                rotation, absent=self.absent, start=self.window.start, end=self.window.end
            ):
                if layer.fewest_after >= coverage.MIN_RESPONDERS:
                    continue
                severity = self._severity(changed=layer.weakened, after=layer.fewest_after)
                if severity is None:
                    continue
                found.append(
                    Finding(
                        rule=Rule.ON_CALL,
                        severity=severity,
                        service=service.ref,
                        message=(
                            f"{service.ref.short}: on-call rotation {rotation.name} layer "
                            f"{layer.layer} keeps "
                            f"{layer.fewest_after} responder(s) ({_names(layer.remaining)}) "
                            f"from {layer.weakest_at:%Y-%m-%d %H:%M}Z during the absence of "
                            f"{_names(layer.lost) if layer.lost else 'nobody in it'}"
                        ),
                        suggestion=f"add a responder to layer {layer.layer} of rotation "
                        f"{rotation.name}, or an override covering the absence",
                    )
                )
        return found

    def runbook(self, service: cmdb.Service) -> list[Finding]:
        owner = service.people.runbook_owner
        if owner is None or owner not in self.absent:
            return []
        others = [p for p in service.people.runbook_editors if p != owner and p not in self.absent]
        if others:
            return []
        return [
            Finding(
                rule=Rule.RUNBOOK,
                severity=Severity.HIGH,
                service=service.ref,
                message=f"the runbook of {service.ref.short} is kept by {owner.short} alone, "
                "who is absent; nobody else can edit it",
                suggestion="name a second runbook editor (stormdrill.dev/runbook-editors) "
                "and have them walk through the runbook",
            )
        ]

    def break_glass(self, service: cmdb.Service) -> list[Finding]:
        holders = service.people.break_glass
        left = [p for p in holders if p not in self.absent]
        if len(left) >= MIN_HOLDERS:
            return []
        severity = self._severity(changed=len(left) < len(holders), after=len(left))
        if severity is None:
            return []
        return [
            Finding(
                rule=Rule.BREAK_GLASS,
                severity=severity,
                service=service.ref,
                message=f"{service.ref.short} keeps {len(left)} break-glass holder(s) "
                f"({_names(left)}) of {len(holders)}",
                suggestion="give break-glass access to a second, independent person "
                "(stormdrill.dev/break-glass)",
            )
        ]

    def truck_factor(self, service: cmdb.Service) -> list[Finding]:
        repo_path = service.people.repo_path
        where = self._code_path(repo_path)
        if where is None or repo_path is None:
            return []
        repository, path = where
        histories = truckfactor.read_history(repository, path, identify=self._identify)
        files = truckfactor.authorship(histories)
        if not files:
            log.info("%s: no files under %s in %s", service.ref, path, repository)
            return []
        before = truckfactor.truck_factor(files)
        gone = {str(p) for p in self.absent}
        after = truckfactor.truck_factor(files, already_gone=gone)
        if after.value >= MIN_HOLDERS:
            return []
        severity = self._severity(changed=after.value < before.value, after=after.value)
        if severity is None:
            return []
        next_ones = ", ".join(p.rpartition("/")[2] for p in after.removed) or "nobody"
        return [
            Finding(
                rule=Rule.TRUCK_FACTOR,
                severity=severity,
                service=service.ref,
                message=f"the truck factor of {path} ({service.ref.short}) drops from "
                f"{before.value} to {after.value} without {_names(sorted(self.absent))}"
                f" (next at risk: {next_ones}; {after.files} file(s))",
                suggestion=f"spread knowledge of {path}: pair, review and rotate changes "
                "among more people",
            )
        ]

    def _code_path(self, repo_path: str | None) -> tuple[Path, str] | None:
        if repo_path is None:
            return None
        if self.repository is not None:
            return self.repository, repo_path
        candidate = Path(repo_path)
        if candidate.is_absolute() and candidate.is_dir():
            return candidate, "."
        return None

    def _identify(self, email: str, name: str) -> str:
        wanted_email = email.strip().lower()
        wanted_name = name.strip().lower()
        for user in self.catalog.users.values():
            if wanted_email and (user.email or "").lower() == wanted_email:
                return str(user.ref)
        for user in self.catalog.users.values():
            if wanted_name and wanted_name in (user.ref.name, (user.display_name or "").lower()):
                return str(user.ref)
        return f"git:{wanted_email or wanted_name}"


def services_to_check(
    catalog: cmdb.Catalog, wanted: Sequence[str], *, where: str
) -> list[cmdb.Service]:
    if not wanted:
        return sorted(catalog.services.values(), key=lambda s: str(s.ref))
    chosen = []
    for raw in wanted:
        try:
            chosen.append(catalog.service(catalog.lookup(raw)))
        except cmdb_errors.CmdbError as exc:
            raise errors.PeopleError(f"{where}: service {raw!r}: {exc}") from exc
    return chosen


class AnalyseAbsence(registry.Action[AnalyseParams]):
    """Report what the absence of people leaves uncovered; changes nothing."""

    name: ClassVar[str] = NAME
    params_model: ClassVar[type[pydantic.BaseModel]] = AnalyseParams
    target_kinds: ClassVar[frozenset[str]] = frozenset({directory.PERSON, directory.TEAM})
    description: ClassVar[str] = (
        "Analyse the absence of a person or team against the CMDB: services left without an"
        " owner, on-call layers under 2 responders over the drill window, runbooks with no"
        " other editor, under 2 break-glass holders, and code truck factor (git) under 2."
        " Changes nothing; each finding has a severity, the service and a suggested action."
    )
    mutating: ClassVar[bool] = False
    revertible: ClassVar[bool] = False

    def plan(
        self,
        ctx: registry.ProviderContext,
        *,
        targets: Sequence[mutations.TargetRef],
        params: AnalyseParams,
    ) -> list[mutations.PlannedMutation]:
        catalog = connecting.of(ctx).catalog
        absent = directory.people_of(catalog, targets)
        now = datetime.now(UTC)
        end = now + params.window.timedelta if params.window else max(ctx.expires_at, now)
        analysis = Analysis(
            catalog=catalog,
            absent=frozenset(absent),
            window=Window(start=now, end=end if end > now else now + timedelta(seconds=1)),
            repository=Path(params.repository) if params.repository else None,
            include_existing=params.include_existing_gaps,
        )
        services = services_to_check(catalog, params.services, where=f"{NAME} services")
        findings = analysis.run(services)
        for finding in findings:
            log.info("%s: %s (%s)", finding.severity.value, finding.message, finding.service)
        label = ",".join(directory.label(p) for p in absent) or "nobody"
        return [
            mutations.PlannedMutation(
                step="",
                target=mutations.TargetRef(
                    provider=connecting.PROVIDER, kind="absence", name=label
                ),
                action=NAME,
                params=params.model_dump(mode="json", by_alias=True),
                pre_state={
                    "absent": [str(p) for p in absent],
                    "window": {"start": now.isoformat(), "end": analysis.window.end.isoformat()},
                    "services": len(services),
                    "findings": [f.to_json() for f in findings],
                },
                undo=mutations.UndoToken(action=NAME, data={}),
            )
        ]

    def apply(
        self,
        ctx: registry.ProviderContext,  # noqa: ARG002
        *,
        mutation: mutations.PlannedMutation,  # noqa: ARG002
    ) -> mutations.UndoToken | None:
        return None

    def revert(
        self,
        ctx: registry.ProviderContext,  # noqa: ARG002
        *,
        undo: mutations.UndoToken,  # noqa: ARG002
    ) -> None:
        return None
