"""Events: every kind of timeline line a run's journal holds, and the payloads read back.

`EventKind` names each kind the code writes (the journal stores its value). The engine
reads three kinds back and acts on them, so they have typed payloads: `Ack` (a person, or
`--auto-ack`, completed a manual step), `AbortRequest` (someone asked a running drill to
abort) and `Manual` (a manual step started: who may act on it). The other kinds are read
only by reports, which take their data as written.

Invariants: no other module spells an event kind as a bare string; `from_data` never raises
on stored data (a field of the wrong type reads as its default) and `to_data` writes the
keys that have always been written, so old timelines stay readable.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping, Sequence

from orchestrator import mutations

_Json = mutations.JsonValue


class EventKind(enum.StrEnum):
    """The kind of a timeline event (its `kind` column)."""

    STATE = "state"
    """The run moved to another state (data: state)."""
    GUARDRAIL = "guardrail"
    """A guardrail verdict at plan time, or a guardrail abort while observing."""
    STEP = "step"
    """A scenario step started or finished (data: step)."""
    MUTATION = "mutation"
    """A journaled mutation changed state: intended, applied, reverted, revert_failed."""
    REVERT = "revert"
    """Rollback started reverting one journal entry (data: seq)."""
    PROBE = "probe"
    """One probe sample (data: probe, type, phase, ok, value, streak, tolerance, …)."""
    ABORT = "abort"
    """The run decided to abort (data: by: guardrail | probe | operator)."""
    ABORT_REQUEST = "abort-request"
    """Someone asked the run to abort (`stormdrill abort`); the engine polls for it."""
    ERROR = "error"
    """A step or rollback step failed."""
    DEVIATION = "deviation"
    """A probe step found the hypothesis broken."""
    MANUAL = "manual"
    """A manual step started waiting (see `Manual`)."""
    ACK = "ack"
    """A manual step was acknowledged (see `Ack`)."""
    FINDING = "finding"
    """Something a reviewer should know (data: rule, severity, step, …)."""
    ROLLBACK_FAILED = "rollback-failed"
    """Rollback left faults in place (data: leftovers, by: engine | recovery)."""
    REPORT_FACTS = "report-facts"
    """Written once per run by the reports: failure mode and CMDB hashes (not shown)."""
    APPROVAL = "approval"
    """A person approved or rejected a run awaiting approval (data: by, decision, plan_hash),
    or the approvals stopped counting (the plan changed): `drills.service.approvals`."""


def _text(data: Mapping[str, _Json], key: str, default: str = "") -> str:
    value = data.get(key)
    return value if isinstance(value, str) else default


def _texts(data: Mapping[str, _Json], key: str) -> tuple[str, ...] | None:
    value = data.get(key)
    if not isinstance(value, Sequence) or isinstance(value, str):
        return None
    return tuple(str(item) for item in value)


@dataclasses.dataclass(frozen=True)
class Ack:
    """An acknowledgement of manual step `step` by `by`, with its evidence."""

    step: str
    by: str
    evidence: str = ""
    automated: bool = False
    waited_s: float | None = None
    """How long the step waited (automatic acknowledgements only)."""

    def to_data(self) -> dict[str, _Json]:
        data: dict[str, _Json] = {
            "step": self.step,
            "by": self.by,
            "evidence": self.evidence,
            "automated": self.automated,
        }
        if self.waited_s is not None:
            data["waited_s"] = self.waited_s
        return data

    @classmethod
    def from_data(cls, data: Mapping[str, _Json]) -> Ack:
        waited = data.get("waited_s")
        return cls(
            step=_text(data, "step"),
            by=_text(data, "by"),
            evidence=_text(data, "evidence"),
            automated=data.get("automated") is True,
            waited_s=float(waited)
            if isinstance(waited, int | float) and not isinstance(waited, bool)
            else None,
        )


@dataclasses.dataclass(frozen=True)
class AbortRequest:
    """A request to abort a running drill, from outside the process driving it."""

    by: str | None = None
    """Who asked (None: not recorded, as the CLI has always written it)."""

    def to_data(self) -> dict[str, _Json]:
        return {} if self.by is None else {"by": self.by}

    @classmethod
    def from_data(cls, data: Mapping[str, _Json]) -> AbortRequest:
        by = data.get("by")
        return cls(by=by if isinstance(by, str) else None)


@dataclasses.dataclass(frozen=True)
class Manual:
    """A manual step waiting for an acknowledgement, and who may give it.

    `eligible` None means no CMDB told who is who: anyone may acknowledge.
    """

    step: str
    assignee: str
    role: str
    timeout_s: float
    evidence: tuple[str, ...] = ()
    eligible: tuple[str, ...] | None = None
    absent: tuple[str, ...] = ()
    eligible_from: str = ""
    problem: str | None = None

    def to_data(self) -> dict[str, _Json]:
        return {
            "step": self.step,
            "assignee": self.assignee,
            "role": self.role,
            "timeout_s": self.timeout_s,
            "evidence": list(self.evidence),
            "eligible": None if self.eligible is None else list(self.eligible),
            "absent": list(self.absent),
            "eligibleFrom": self.eligible_from,
            "problem": self.problem,
        }

    @classmethod
    def from_data(cls, data: Mapping[str, _Json]) -> Manual:
        timeout = data.get("timeout_s")
        problem = data.get("problem")
        return cls(
            step=_text(data, "step"),
            assignee=_text(data, "assignee"),
            role=_text(data, "role"),
            timeout_s=float(timeout)
            if isinstance(timeout, int | float) and not isinstance(timeout, bool)
            else 0.0,
            evidence=_texts(data, "evidence") or (),
            eligible=_texts(data, "eligible"),
            absent=_texts(data, "absent") or (),
            eligible_from=_text(data, "eligibleFrom"),
            problem=problem if isinstance(problem, str) else None,
        )
