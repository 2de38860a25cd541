"""Run records: what a run remembers besides its state, as frozen typed models.

The store keeps a record as one JSON object (the `runs.record` column); `RunRecord.to_json`
writes it and `RunRecord.from_json` reads it back. The JSON keys are those the engine has
always written (`scenario_source`, `time_scale`, `objectives`, `leftovers`, …) plus
`schemaVersion`, so records written before there was a schema version stay readable.

Invariants:
- `from_json` never raises on a stored record: a key it does not know, or a known key whose
  value has the wrong shape, is kept verbatim in `extra` and written back by `to_json`, so
  reading and re-saving a record (recovery, an older or newer process) loses nothing.
- `to_json` omits what was never set (no objectives before verification, no `refused`
  unless refused), as the engine did before these models: readers tell "not measured"
  or "not planned yet" from the key's absence.
- The record never holds a secret: the store redacts `to_json()` before writing (secret
  values are named in `redaction`, their salted digests).
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Final, TypeVar

from orchestrator import mutations
from scenarios import secrets

SCHEMA_VERSION: Final = 1
"""The version `to_json` writes; records without `schemaVersion` are version 0 (same keys)."""

SCHEMA_KEY: Final = "schemaVersion"
REDACTION_KEY: Final = "redaction"
"""The field holding the salted digests of the run's secrets (never the secrets)."""

_Json = mutations.JsonValue
_T = TypeVar("_T")


class TriggerKind(enum.StrEnum):
    """What started a run."""

    MANUAL = "manual"
    API = "api"
    SCHEDULE = "schedule"
    GAMEDAY = "gameday"
    CI = "ci"


class _Reader:
    """Reads typed fields out of one JSON object; what does not fit is kept as extra."""

    def __init__(self, raw: Mapping[str, _Json]) -> None:
        self.raw = raw
        self.rejected: dict[str, _Json] = {}

    def _reject(self, key: str) -> None:
        self.rejected[key] = self.raw[key]

    def text(self, key: str) -> str | None:
        value = self.raw.get(key)
        if value is None or isinstance(value, str):
            return value
        self._reject(key)
        return None

    def number(self, key: str) -> float | None:
        value = self.raw.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            self._reject(key)
            return None
        return value  # an int stays an int: written back and shown as it was stored

    def integer(self, key: str) -> int | None:
        value = self.raw.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self._reject(key)
            return None
        return value

    def flag(self, key: str) -> bool | None:
        value = self.raw.get(key)
        if value is None or isinstance(value, bool):
            return value
        self._reject(key)
        return None

    def obj(self, key: str) -> Mapping[str, _Json] | None:
        value = self.raw.get(key)
        if value is None:
            return None
        if isinstance(value, Mapping):
            return value
        self._reject(key)
        return None

    def items(self, key: str) -> Sequence[_Json] | None:
        value = self.raw.get(key)
        if value is None:
            return None
        if isinstance(value, list | tuple):
            return value
        self._reject(key)
        return None

    def texts(self, key: str) -> tuple[str, ...] | None:
        found = self.items(key)
        if found is None:
            return None
        if all(isinstance(item, str) for item in found):
            return tuple(str(item) for item in found)
        self._reject(key)
        return None

    def time(self, key: str) -> datetime | None:
        value = self.text(key)
        if value is None:
            return None
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            self._reject(key)
            return None


def _unknown(raw: Mapping[str, _Json], known: frozenset[str]) -> dict[str, _Json]:
    return {k: v for k, v in raw.items() if k not in known}


def _merged(known: Mapping[str, _Json], extra: Mapping[str, _Json]) -> dict[str, _Json]:
    """`known` with `extra` added; a kept value fills a known key that is unset (null)."""
    merged = dict(known)
    for key, value in extra.items():
        if merged.get(key) is None:
            merged[key] = value
    return merged


@dataclasses.dataclass(frozen=True)
class Trigger:
    """Who or what started a run, and why (a schedule's name, a game day, a CI job)."""

    kind: TriggerKind = TriggerKind.MANUAL
    principal: str = ""
    """Who: a user, an API token's owner, `schedule:NAME`, `gameday:ID`, a CI job."""
    reason: str = ""

    def to_json(self) -> dict[str, _Json]:
        return {"kind": self.kind.value, "principal": self.principal, "reason": self.reason}

    @classmethod
    def from_json(cls, raw: Mapping[str, _Json]) -> Trigger | None:
        """The trigger, or None when `raw` does not describe one."""
        kind, principal, reason = raw.get("kind"), raw.get("principal", ""), raw.get("reason", "")
        if not isinstance(principal, str) or not isinstance(reason, str):
            return None
        try:
            parsed = TriggerKind(str(kind))
        except ValueError:
            return None
        return cls(kind=parsed, principal=principal, reason=reason)


@dataclasses.dataclass(frozen=True)
class TargetRecord:
    """One named target selection as planned: what was picked out of how many."""

    provider: str
    kind: str
    refs: tuple[str, ...]
    population: int
    excluded: tuple[str, ...] = ()
    """`ref: why` for each candidate left out."""

    def to_json(self) -> dict[str, _Json]:
        return {
            "provider": self.provider,
            "kind": self.kind,
            "refs": list(self.refs),
            "population": self.population,
            "excluded": list(self.excluded),
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, _Json]) -> TargetRecord | None:
        read = _Reader(raw)
        provider, kind = read.text("provider"), read.text("kind")
        refs, population = read.texts("refs"), read.integer("population")
        excluded = read.texts("excluded")
        if read.rejected or provider is None or kind is None or refs is None:
            return None
        return cls(provider, kind, refs, population or 0, excluded or ())


@dataclasses.dataclass(frozen=True)
class ImpactRow:
    """One CMDB service a run's plan reaches: its ref, tier, owner and how it is reached."""

    ref: str
    distance: int = 0
    """0 for a targeted service, 1 for a direct dependent, …"""
    tier: int | None = None
    owner: str | None = None
    path: tuple[str, ...] | None = None
    """Refs from the target to this service, both included; None when not recorded."""

    def to_json(self) -> dict[str, _Json]:
        found: dict[str, _Json] = {
            "ref": self.ref,
            "tier": self.tier,
            "owner": self.owner,
            "distance": self.distance,
        }
        if self.path is not None:
            found["path"] = list(self.path)
        return found

    @classmethod
    def from_json(cls, raw: Mapping[str, _Json]) -> ImpactRow | None:
        read = _Reader(raw)
        ref, distance, tier = read.text("ref"), read.integer("distance"), read.integer("tier")
        owner, path = read.text("owner"), read.texts("path")
        if read.rejected or ref is None:
            return None
        return cls(ref=ref, distance=distance or 0, tier=tier, owner=owner or None, path=path)

    @property
    def targeted(self) -> bool:
        return self.distance == 0


@dataclasses.dataclass(frozen=True)
class Leftover:
    """A fault rollback could not undo (see `rollback.leftover_json`)."""

    seq: int
    step: str
    action: str
    target: str
    provider: str
    kind: str
    name: str
    error: str
    summary: str
    namespace: str | None = None
    region: str | None = None
    params: Mapping[str, _Json] = dataclasses.field(default_factory=dict)

    def to_json(self) -> dict[str, _Json]:
        return {
            "seq": self.seq,
            "step": self.step,
            "action": self.action,
            "target": self.target,
            "provider": self.provider,
            "kind": self.kind,
            "name": self.name,
            "namespace": self.namespace,
            "region": self.region,
            "params": dict(self.params),
            "error": self.error,
            "summary": self.summary,
        }

    @classmethod
    def of(cls, entry: mutations.JournalEntry, error: str, *, summary: str) -> Leftover:
        """The leftover of journal entry `entry`, which could not be undone for `error`."""
        return cls(
            seq=entry.seq,
            step=entry.step,
            action=entry.action,
            target=str(entry.target),
            provider=entry.target.provider,
            kind=entry.target.kind,
            name=entry.target.name,
            namespace=entry.target.namespace,
            region=entry.target.region,
            params=dict(entry.params),
            error=error,
            summary=summary,
        )

    @classmethod
    def from_json(cls, raw: Mapping[str, _Json]) -> Leftover | None:
        read = _Reader(raw)
        seq = read.integer("seq")
        texts = {k: read.text(k) for k in ("step", "action", "target", "provider", "kind")}
        name, error, summary = read.text("name"), read.text("error"), read.text("summary")
        namespace, region, params = read.text("namespace"), read.text("region"), read.obj("params")
        required = (seq, name, error, *texts.values())
        if read.rejected or any(value is None for value in required) or seq is None:
            return None
        return cls(
            seq=seq,
            step=texts["step"] or "",
            action=texts["action"] or "",
            target=texts["target"] or "",
            provider=texts["provider"] or "",
            kind=texts["kind"] or "",
            name=name or "",
            error=error or "",
            summary=summary or f"{texts['action']} on {texts['target']}: {error}",
            namespace=namespace,
            region=region,
            params=dict(params or {}),
        )


@dataclasses.dataclass(frozen=True)
class RpoCanary:
    """The canary measurement behind an achieved RPO (see `canary.DataLoss.to_json`)."""

    probe: str | None = None
    achieved_rpo_s: float | None = None
    last_acknowledged_at: str | None = None
    newest_surviving: Mapping[str, _Json] | None = None
    all_lost: bool = False
    extra: Mapping[str, _Json] = dataclasses.field(default_factory=dict)

    _KEYS = frozenset(
        {"probe", "achieved_rpo_s", "last_acknowledged_at", "newest_surviving", "all_lost"}
    )

    def to_json(self) -> dict[str, _Json]:
        known: dict[str, _Json] = {
            "probe": self.probe,
            "achieved_rpo_s": self.achieved_rpo_s,
            "last_acknowledged_at": self.last_acknowledged_at,
            "newest_surviving": dict(self.newest_surviving) if self.newest_surviving else None,
            "all_lost": self.all_lost,
        }
        return _merged(known, self.extra)

    @classmethod
    def from_json(cls, raw: Mapping[str, _Json]) -> RpoCanary:
        read = _Reader(raw)
        found = cls(
            probe=read.text("probe"),
            achieved_rpo_s=read.number("achieved_rpo_s"),
            last_acknowledged_at=read.text("last_acknowledged_at"),
            newest_surviving=read.obj("newest_surviving"),
            all_lost=read.flag("all_lost") is True,
        )
        extra = {**_unknown(raw, cls._KEYS), **read.rejected}
        return dataclasses.replace(found, extra=extra)


@dataclasses.dataclass(frozen=True)
class Objectives:
    """Achieved RTO and RPO against their targets; seconds are as measured (scaled time).

    `target_*` are the real-world objectives, `scaled_target_*` those times the time scale
    (what the measurement is compared with). `t0` is the first fault. `achieved_rto_s` is
    wall-clock seconds and includes `manual_wait_s` (people, never scaled);
    `real_world_rto_s` scales only the machine part back up (what `rto_met` judges).
    """

    t0: datetime | None = None
    achieved_rto_s: float | None = None
    target_rto_s: float | None = None
    target_rto_source: str | None = None
    scaled_target_rto_s: float | None = None
    time_scale: float | None = None
    stability_window_s: float | None = None
    rto_met: bool | None = None
    manual_wait_s: float | None = None
    real_world_rto_s: float | None = None
    achieved_rpo_s: float | None = None
    target_rpo_s: float | None = None
    target_rpo_source: str | None = None
    scaled_target_rpo_s: float | None = None
    rpo_met: bool | None = None
    rpo_canary: RpoCanary | None = None
    extra: Mapping[str, _Json] = dataclasses.field(default_factory=dict)

    _KEYS = frozenset(
        {
            "t0",
            "achieved_rto_s",
            "target_rto_s",
            "target_rto_source",
            "scaled_target_rto_s",
            "time_scale",
            "stability_window_s",
            "rto_met",
            "manual_wait_s",
            "real_world_rto_s",
            "achieved_rpo_s",
            "target_rpo_s",
            "target_rpo_source",
            "scaled_target_rpo_s",
            "rpo_met",
            "rpo_canary",
        }
    )

    def to_json(self) -> dict[str, _Json]:
        """Every objective key, null when not measured (as the engine has always written)."""
        known: dict[str, _Json] = {
            "t0": self.t0.isoformat() if self.t0 else None,
            "achieved_rto_s": self.achieved_rto_s,
            "target_rto_s": self.target_rto_s,
            "target_rto_source": self.target_rto_source,
            "scaled_target_rto_s": self.scaled_target_rto_s,
            "time_scale": self.time_scale,
            "stability_window_s": self.stability_window_s,
            "rto_met": self.rto_met,
            "achieved_rpo_s": self.achieved_rpo_s,
            "target_rpo_s": self.target_rpo_s,
            "target_rpo_source": self.target_rpo_source,
            "scaled_target_rpo_s": self.scaled_target_rpo_s,
            "rpo_met": self.rpo_met,
            "rpo_canary": self.rpo_canary.to_json() if self.rpo_canary else None,
        }
        if self.manual_wait_s is not None:  # written only when measured (older records lack them)
            known["manual_wait_s"] = self.manual_wait_s
        if self.real_world_rto_s is not None:
            known["real_world_rto_s"] = self.real_world_rto_s
        return _merged(known, self.extra)

    @classmethod
    def from_json(cls, raw: Mapping[str, _Json]) -> Objectives:
        read = _Reader(raw)
        canary = read.obj("rpo_canary")
        found = cls(
            t0=read.time("t0"),
            achieved_rto_s=read.number("achieved_rto_s"),
            target_rto_s=read.number("target_rto_s"),
            target_rto_source=read.text("target_rto_source"),
            scaled_target_rto_s=read.number("scaled_target_rto_s"),
            time_scale=read.number("time_scale"),
            stability_window_s=read.number("stability_window_s"),
            rto_met=read.flag("rto_met"),
            manual_wait_s=read.number("manual_wait_s"),
            real_world_rto_s=read.number("real_world_rto_s"),
            achieved_rpo_s=read.number("achieved_rpo_s"),
            target_rpo_s=read.number("target_rpo_s"),
            target_rpo_source=read.text("target_rpo_source"),
            scaled_target_rpo_s=read.number("scaled_target_rpo_s"),
            rpo_met=read.flag("rpo_met"),
            rpo_canary=RpoCanary.from_json(canary) if canary is not None else None,
        )
        extra = {**_unknown(raw, cls._KEYS), **read.rejected}
        return dataclasses.replace(found, extra=extra)


def _rows(
    read: _Reader, key: str, parse_one: Callable[[Mapping[str, _Json]], _T | None]
) -> tuple[_T, ...] | None:
    """Each object of the list under `key` parsed; the whole list is rejected if one is not."""
    found = read.items(key)
    if found is None:
        return None
    parsed: list[_T] = []
    for item in found:
        one = parse_one(item) if isinstance(item, Mapping) else None
        if one is None:
            read.rejected[key] = read.raw[key]
            return None
        parsed.append(one)
    return tuple(parsed)


@dataclasses.dataclass(frozen=True)
class RunRecord:
    """Everything a run records besides its state: what ran, the plan's reach, the results."""

    scenario_source: str | None = None
    """The scenario file the run used (reports re-render it with `parameters`)."""
    drill: str | None = None
    """The Drill file, when the run came from one."""
    parameters: Mapping[str, _Json] = dataclasses.field(default_factory=dict)
    time_scale: float | None = None
    approvals: tuple[str, ...] = ()
    redaction: secrets.Fingerprints | None = None
    trigger: Trigger | None = None
    infrastructure_error: bool = False
    """The run stopped because a system was unreachable or refused us."""
    refused: bool = False
    """Refused at plan time (guardrails or an invalid plan): nothing was touched."""
    targets: Mapping[str, TargetRecord] | None = None
    """Set when planned, as are `impact` and `planned_mutations`."""
    impact: tuple[ImpactRow, ...] | None = None
    planned_mutations: int | None = None
    leftovers: tuple[Leftover, ...] | None = None
    """Faults rollback could not undo; () once recovery undid them; None: never failed."""
    objectives: Objectives | None = None
    """Set when the run verified (achieved RTO/RPO)."""
    access: Mapping[str, _Json] | None = None
    """The Environment's `kubernetes` and `aws` sections as the run used them (command-line
    overrides and the kubeconfig found by kubectl's rules applied): whoever drives or
    recovers the run later reaches the same cluster and account, whatever its own shell says."""
    extra: Mapping[str, _Json] = dataclasses.field(default_factory=dict)
    """Keys this version does not know (or could not read), kept as they were."""
    schema_version: int = SCHEMA_VERSION
    """The version the record was read as (0: written before records had one)."""

    _KEYS = frozenset(
        {
            SCHEMA_KEY,
            "scenario_source",
            "drill",
            "parameters",
            "time_scale",
            "approvals",
            REDACTION_KEY,
            "trigger",
            "infrastructure_error",
            "refused",
            "targets",
            "impact",
            "planned_mutations",
            "leftovers",
            "objectives",
            "access",
        }
    )

    @property
    def impact_rows(self) -> tuple[ImpactRow, ...]:
        """The services the plan reached (empty when none were recorded)."""
        return self.impact or ()

    @property
    def t0(self) -> datetime | None:
        """The first fault, as recorded when the run verified."""
        return self.objectives.t0 if self.objectives is not None else None

    def to_json(self) -> dict[str, _Json]:
        """The record as stored (see the module docstring for what is omitted)."""
        known: dict[str, _Json] = {
            SCHEMA_KEY: SCHEMA_VERSION,
            "scenario_source": self.scenario_source,
            "drill": self.drill,
            "parameters": dict(self.parameters),
            "time_scale": self.time_scale,
            "approvals": list(self.approvals),
        }
        if self.redaction is not None:
            prints: dict[str, _Json] = dict(self.redaction.to_json())
            known[REDACTION_KEY] = prints
        if self.trigger is not None:
            known["trigger"] = self.trigger.to_json()
        if self.infrastructure_error:
            known["infrastructure_error"] = True
        if self.refused:
            known["refused"] = True
        if self.targets is not None:
            known["targets"] = {name: sel.to_json() for name, sel in self.targets.items()}
        if self.impact is not None:
            known["impact"] = [row.to_json() for row in self.impact]
        if self.planned_mutations is not None:
            known["planned_mutations"] = self.planned_mutations
        if self.leftovers is not None:
            known["leftovers"] = [item.to_json() for item in self.leftovers]
        if self.objectives is not None:
            known["objectives"] = self.objectives.to_json()
        if self.access is not None:
            known["access"] = dict(self.access)
        return _merged(known, self.extra)

    @classmethod
    def from_json(cls, raw: Mapping[str, _Json] | None) -> RunRecord:
        """A stored record of any version so far (never raises; see the module docstring)."""
        if not raw:
            return cls()
        read = _Reader(raw)
        version = read.integer(SCHEMA_KEY)
        parameters = read.obj("parameters")
        redaction_raw = read.obj(REDACTION_KEY)
        redaction = secrets.Fingerprints.from_json(redaction_raw)
        if redaction_raw is not None and redaction is None:
            read.rejected[REDACTION_KEY] = raw[REDACTION_KEY]
        trigger_raw = read.obj("trigger")
        trigger = Trigger.from_json(trigger_raw) if trigger_raw is not None else None
        if trigger_raw is not None and trigger is None:
            read.rejected["trigger"] = raw["trigger"]
        objectives = read.obj("objectives")
        found = cls(
            schema_version=version if version is not None else 0,
            scenario_source=read.text("scenario_source"),
            drill=read.text("drill"),
            parameters=dict(parameters or {}),
            time_scale=read.number("time_scale"),
            approvals=read.texts("approvals") or (),
            redaction=redaction,
            trigger=trigger,
            infrastructure_error=read.flag("infrastructure_error") is True,
            refused=read.flag("refused") is True,
            targets=_targets(read),
            impact=_rows(read, "impact", ImpactRow.from_json),
            planned_mutations=read.integer("planned_mutations"),
            leftovers=_rows(read, "leftovers", Leftover.from_json),
            objectives=Objectives.from_json(objectives) if objectives is not None else None,
            access=read.obj("access"),
        )
        extra = {**_unknown(raw, cls._KEYS), **read.rejected}
        extra.pop(SCHEMA_KEY, None)
        return dataclasses.replace(found, extra=extra)


def _targets(read: _Reader) -> dict[str, TargetRecord] | None:
    found = read.obj("targets")
    if found is None:
        return None
    parsed: dict[str, TargetRecord] = {}
    for name, raw in found.items():
        one = TargetRecord.from_json(raw) if isinstance(raw, Mapping) else None
        if one is None:
            read.rejected["targets"] = read.raw["targets"]
            return None
        parsed[name] = one
    return parsed
