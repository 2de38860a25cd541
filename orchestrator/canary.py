"""Canary: probes that write numbered, timestamped records to a data store, and achieved RPO.

A canary probe (`canary.postgres`, `canary.http`) is a steady-state probe whose every check
first reads back the newest surviving record of this run's stream, then writes the next
one. Run before, during and after the fault like any probe, its samples (journaled with the
run) say what was written and acknowledged, and what survived. After verify, the engine
computes the achieved RPO from those samples (`achieved_rpo`):

    RPO = (the last write acknowledged before the first post-recovery read)
          - (the newest record that read found)

0 when nothing acknowledged was lost. When nothing at all survived, every acknowledged write
was lost: the RPO is the span from the first to the last acknowledged write, and
`all_lost` says so.

Invariants:
- These are the only probes that write, and only to their own table (or endpoint), keyed
  by (run id, stream, seq); they never touch application data.
- Sequence numbers increase within one probe instance and never reuse a surviving number;
  timestamps are the orchestrator's clock (UTC), so lost time is measured on one clock.
- A store that cannot be reached is a failing sample (it counts for RTO), never an
  exception; the probe raises only when its parameters make no sense.
- `canary.http` protocol: `POST url` with JSON `{"run", "stream", "seq", "writtenAt"}`
  (2xx: acknowledged); `GET url?run=RUN&stream=STREAM` answers 200 with the newest
  record `{"seq", "writtenAt"}`, or 404 (or JSON null) when there is none.
"""

from __future__ import annotations

import dataclasses
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import ClassVar

import httpx
import psycopg
import pydantic
from psycopg import sql
from pydantic import alias_generators

from orchestrator import journal, mutations, registry
from scenarios import quantities

PREFIX = "canary."
DEFAULT_TABLE = "stormdrill_canary"
DEFAULT_TIMEOUT_S = 2.0
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class _Params(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(
        extra="forbid",
        frozen=True,
        alias_generator=alias_generators.to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
    )

    stream: str = pydantic.Field(default="default", min_length=1, max_length=200)
    """Several canaries of one run write separate streams."""
    timeout: quantities.Duration | None = None


class PostgresParams(_Params):
    """`with:` of `canary.postgres`."""

    dsn: str = pydantic.Field(pattern=r"^postgres(ql)?://")
    """A libpq URL, e.g. postgresql://postgres@127.0.0.1:5432/test."""
    table: str = DEFAULT_TABLE

    @pydantic.field_validator("table")
    @classmethod
    def _table(cls, value: str) -> str:
        if not _IDENTIFIER.match(value):
            raise ValueError(f"{value!r} is not a plain table name (letters, digits, '_')")
        return value


class HttpCanaryParams(_Params):
    """`with:` of `canary.http`."""

    url: str = pydantic.Field(pattern=r"^https?://\S+$")
    headers: dict[str, str] = pydantic.Field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Record:
    """One canary record."""

    seq: int
    at: datetime

    def to_json(self) -> dict[str, mutations.JsonValue]:
        return {"seq": self.seq, "at": self.at.isoformat()}

    @classmethod
    def from_json(cls, raw: object) -> Record | None:
        if not isinstance(raw, Mapping):
            return None
        seq, at = raw.get("seq"), raw.get("at", raw.get("writtenAt"))
        if not isinstance(seq, int) or not isinstance(at, str):
            return None
        try:
            when = datetime.fromisoformat(at)
        except ValueError:
            return None
        return cls(seq=seq, at=when if when.tzinfo else when.replace(tzinfo=UTC))


def _value(
    *, newest: Record | None, wrote: Record | None, read: bool, error: str | None = None
) -> dict[str, mutations.JsonValue]:
    return {
        "read": read,
        "newest": newest.to_json() if newest else None,
        "wrote": wrote.to_json() if wrote else None,
        "error": error,
    }


class _Canary:
    """The sequence counter one probe instance keeps across its checks."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = 0

    def _next(self, newest: Record | None) -> Record:
        with self._lock:
            self._last = max(self._last, newest.seq if newest else 0) + 1
            return Record(seq=self._last, at=datetime.now(UTC))


def _timeout(params: _Params) -> float:
    return max((params.timeout.seconds if params.timeout else DEFAULT_TIMEOUT_S), 0.1)


class PostgresCanary(_Canary, registry.Probe[PostgresParams]):
    """Write a numbered record to a PostgreSQL table and read back the newest surviving one."""

    name: ClassVar[str] = "canary.postgres"
    params_model: ClassVar[type[pydantic.BaseModel]] = PostgresParams
    description: ClassVar[str] = (
        "RPO canary on PostgreSQL: each check reads the newest surviving record of the run"
        " (table `table`, default stormdrill_canary, created if missing) and writes the next;"
        " the engine computes the achieved RPO after verify"
    )

    def check(
        self, ctx: registry.ProviderContext, *, params: PostgresParams
    ) -> registry.ProbeResult:
        table = sql.Identifier(params.table)
        run, where = str(ctx.run_id), f"canary {params.table}/{params.stream}"
        newest: Record | None = None
        read = False
        try:
            with psycopg.connect(
                params.dsn, connect_timeout=max(1, round(_timeout(params)))
            ) as conn:
                conn.execute(
                    sql.SQL(
                        "CREATE TABLE IF NOT EXISTS {} (run_id text NOT NULL, stream text NOT"
                        " NULL, seq bigint NOT NULL, written_at timestamptz NOT NULL,"
                        " PRIMARY KEY (run_id, stream, seq))"
                    ).format(table)
                )
                row = conn.execute(
                    sql.SQL(
                        "SELECT seq, written_at FROM {} WHERE run_id = %s AND stream = %s"
                        " ORDER BY seq DESC LIMIT 1"
                    ).format(table),
                    (run, params.stream),
                ).fetchone()
                read = True
                newest = Record(seq=int(row[0]), at=row[1]) if row else None
                wrote = self._next(newest)
                conn.execute(
                    sql.SQL(
                        "INSERT INTO {} (run_id, stream, seq, written_at) VALUES (%s, %s, %s, %s)"
                    ).format(table),
                    (run, params.stream, wrote.seq, wrote.at),
                )
        except psycopg.Error as exc:
            message = f"{where}: {type(exc).__name__}: {str(exc).strip()}"
            return _result(False, _value(newest=newest, wrote=None, read=read, error=message))
        return _result(True, _value(newest=newest, wrote=wrote, read=True), where=where)


class HttpCanary(_Canary, registry.Probe[HttpCanaryParams]):
    """Write a numbered record through an HTTP endpoint and read back the newest surviving one."""

    name: ClassVar[str] = "canary.http"
    params_model: ClassVar[type[pydantic.BaseModel]] = HttpCanaryParams
    description: ClassVar[str] = (
        "RPO canary over HTTP: GET url?run=&stream= reads the newest surviving record,"
        " POST url writes the next ({run, stream, seq, writtenAt}); the engine computes the"
        " achieved RPO after verify"
    )

    def check(
        self, ctx: registry.ProviderContext, *, params: HttpCanaryParams
    ) -> registry.ProbeResult:
        run, where = str(ctx.run_id), f"canary {params.url} ({params.stream})"
        newest: Record | None = None
        read = False
        try:
            with httpx.Client(timeout=_timeout(params), headers=params.headers) as client:
                answer = client.get(params.url, params={"run": run, "stream": params.stream})
                if answer.status_code not in (200, 404):
                    message = f"{where}: reading answered {answer.status_code}"
                    return _result(
                        False, _value(newest=None, wrote=None, read=False, error=message)
                    )
                if answer.status_code == 200:
                    newest = Record.from_json(answer.json())
                read = True
                wrote = self._next(newest)
                sent = client.post(
                    params.url,
                    json={
                        "run": run,
                        "stream": params.stream,
                        "seq": wrote.seq,
                        "writtenAt": wrote.at.isoformat(),
                    },
                )
                if not sent.is_success:
                    message = f"{where}: writing #{wrote.seq} answered {sent.status_code}"
                    return _result(
                        False, _value(newest=newest, wrote=None, read=True, error=message)
                    )
        except (httpx.HTTPError, ValueError) as exc:
            message = f"{where}: {type(exc).__name__}: {exc}"
            return _result(False, _value(newest=newest, wrote=None, read=read, error=message))
        return _result(True, _value(newest=newest, wrote=wrote, read=True), where=where)


def _result(
    ok: bool, value: dict[str, mutations.JsonValue], *, where: str = ""
) -> registry.ProbeResult:
    if ok:
        newest = Record.from_json(value.get("newest"))
        wrote = Record.from_json(value.get("wrote"))
        message = (
            f"{where}: newest surviving #{newest.seq if newest else '-'},"
            f" wrote #{wrote.seq if wrote else '-'}"
        )
    else:
        message = str(value.get("error"))
    return registry.ProbeResult(ok=ok, value=value, message=message, at=datetime.now(UTC))


def register(reg: registry.Registry) -> None:
    """Register the canary probes in `reg`."""
    reg.register(PostgresCanary, HttpCanary)


# ---- achieved RPO -----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class CanarySample:
    """One canary check as journaled."""

    probe: str
    phase: str
    read: bool
    newest: Record | None
    wrote: Record | None


@dataclasses.dataclass(frozen=True)
class AchievedRpo:
    """The data loss one canary measured."""

    probe: str
    seconds: float
    last_acknowledged: datetime
    newest_surviving: Record | None
    all_lost: bool

    def to_json(self) -> dict[str, mutations.JsonValue]:
        return {
            "probe": self.probe,
            "achieved_rpo_s": self.seconds,
            "last_acknowledged_at": self.last_acknowledged.isoformat(),
            "newest_surviving": self.newest_surviving.to_json() if self.newest_surviving else None,
            "all_lost": self.all_lost,
        }


def samples_from_events(events: Iterable[journal.Event]) -> list[CanarySample]:
    """The canary samples of a run's timeline, in journal order."""
    found: list[CanarySample] = []
    for event in events:
        data = event.data
        kind, name, value = data.get("type"), data.get("probe"), data.get("value")
        if not (isinstance(kind, str) and kind.startswith(PREFIX) and isinstance(name, str)):
            continue
        if not isinstance(value, Mapping):
            continue
        found.append(
            CanarySample(
                probe=name,
                phase=str(data.get("phase", "")),
                read=value.get("read") is True,
                newest=Record.from_json(value.get("newest")),
                wrote=Record.from_json(value.get("wrote")),
            )
        )
    return found


def rpo_of(samples: Sequence[CanarySample]) -> AchievedRpo | None:
    """The RPO one canary's samples show (None: no acknowledged write, or no read after)."""
    readings = [i for i, s in enumerate(samples) if s.read and s.phase == "after"]
    if not readings:
        readings = [i for i, s in enumerate(samples) if s.read and i > 0]
    if not readings:
        return None
    index = readings[0]
    reading = samples[index]
    acknowledged = [s.wrote for s in samples[:index] if s.wrote is not None]
    if not acknowledged:
        return None
    last = max(acknowledged, key=lambda r: r.at)
    if reading.newest is None:
        first = min(acknowledged, key=lambda r: r.at)
        lost = (last.at - first.at).total_seconds()
        return AchievedRpo(reading.probe, max(lost, 0.0), last.at, None, all_lost=True)
    lost = (last.at - reading.newest.at).total_seconds()
    return AchievedRpo(reading.probe, max(lost, 0.0), last.at, reading.newest, all_lost=False)


def achieved_rpo(events: Iterable[journal.Event]) -> AchievedRpo | None:
    """The worst RPO among a run's canaries (None when the run has no usable canary)."""
    by_probe: dict[str, list[CanarySample]] = {}
    for sample in samples_from_events(events):
        by_probe.setdefault(sample.probe, []).append(sample)
    measured = [rpo for rpo in (rpo_of(s) for s in by_probe.values()) if rpo is not None]
    return max(measured, key=lambda rpo: rpo.seconds, default=None)
