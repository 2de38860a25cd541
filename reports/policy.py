"""Coverage policy: which failure modes each tier must drill, and how often (YAML).

A `CoveragePolicy` document (apiVersion `stormdrill.dev/v1`) holds `spec.freshness`
(tier -> duration a pass stays fresh when no rule names the cell) and `spec.rules`, each
`{name, tiers, require: [failure modes], every: duration}`. A rule requiring
`third-party` requires it for each vendor the service reaches; a rule never makes a cell
required where it does not apply (a service with no dependency needs no dependency
drill). When several rules require one cell, the shortest `every` wins. The default
policy ships as `reports/policies/default.yaml`. Unknown fields are errors.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

import pydantic
import yaml

from reports import errors
from scenarios import quantities

DEFAULT_FRESHNESS = dt.timedelta(days=365)


def default_path() -> Path:
    """The shipped default policy."""
    return Path(__file__).parent / "policies" / "default.yaml"


class _Model(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class _Rule(_Model):
    name: str
    tiers: Annotated[
        tuple[Annotated[int, pydantic.Field(ge=1, le=4)], ...], pydantic.Field(min_length=1)
    ]
    require: Annotated[tuple[str, ...], pydantic.Field(min_length=1)]
    every: quantities.Duration


class _Spec(_Model):
    freshness: dict[int, quantities.Duration] = pydantic.Field(default_factory=dict)
    rules: tuple[_Rule, ...] = ()


class _Metadata(_Model):
    name: str


class _Document(_Model):
    api_version: Literal["stormdrill.dev/v1"] = pydantic.Field(alias="apiVersion")
    kind: Literal["CoveragePolicy"]
    metadata: _Metadata
    spec: _Spec


@dataclasses.dataclass(frozen=True)
class Rule:
    name: str
    tiers: frozenset[int]
    require: frozenset[str]
    every: dt.timedelta


@dataclasses.dataclass(frozen=True)
class Requirement:
    """Whether a (tier, mode) cell is required, and the window a pass stays fresh."""

    required: bool
    window: dt.timedelta
    rules: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class CoveragePolicy:
    name: str
    freshness: Mapping[int, dt.timedelta]
    rules: tuple[Rule, ...]
    source: str = "built in"

    def requirement(self, *, tier: int, mode: str) -> Requirement:
        """What the policy asks of a service of `tier` for failure mode `mode`."""
        base = mode.partition(":")[0]
        matching = [r for r in self.rules if tier in r.tiers and base in r.require]
        if matching:
            return Requirement(
                required=True,
                window=min(r.every for r in matching),
                rules=tuple(r.name for r in matching),
            )
        return Requirement(required=False, window=self.freshness.get(tier, DEFAULT_FRESHNESS))

    @property
    def modes(self) -> frozenset[str]:
        return frozenset(mode for rule in self.rules for mode in rule.require)


def _timedelta(value: quantities.Duration) -> dt.timedelta:
    return dt.timedelta(seconds=value.seconds)


def parse(text: str, *, source: str) -> CoveragePolicy:
    """Parse a policy document; `PolicyInvalid` naming `source`, the field and the fix."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise errors.PolicyInvalid(f"{source}: not valid YAML: {exc}") from exc
    try:
        document = _Document.model_validate(raw)
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(document)'}: {e['msg']}"
            for e in exc.errors()
        )
        raise errors.PolicyInvalid(
            f"{source}: {problems} (see docs/reports.md, 'Coverage policy')"
        ) from None
    return CoveragePolicy(
        name=document.metadata.name,
        freshness={tier: _timedelta(d) for tier, d in document.spec.freshness.items()},
        rules=tuple(
            Rule(
                name=r.name,
                tiers=frozenset(r.tiers),
                require=frozenset(r.require),
                every=_timedelta(r.every),
            )
            for r in document.spec.rules
        ),
        source=source,
    )


def load(path: Path | None = None) -> CoveragePolicy:
    """The policy at `path`, or the shipped default."""
    target = path or default_path()
    try:
        text = target.read_text(encoding="utf-8")
    except OSError as exc:
        raise errors.PolicyInvalid(f"{target}: cannot read the policy: {exc.strerror}") from exc
    return parse(text, source=str(target))
