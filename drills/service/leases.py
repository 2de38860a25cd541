"""Singleton leases with an epoch (fencing token): who does the once-per-deployment work.

A lease is held by one holder at a time for a TTL and kept by renewing it before it expires.
Every new tenure (a change of holder, or a holder taking it again after it expired) bumps
the epoch; a renewal never does. Two backends share one interface (`Lease`):

- `SqlLease`: a row of the `leases` table (`drills.tables_leases`) in the run store.
  `try_acquire` reads the row `FOR UPDATE` (PostgreSQL; SQLite's writers are serialised by
  `BEGIN IMMEDIATE`, which `store.transaction(write=True)` issues) and writes it with a
  compare-and-set on the epoch it read, so of several processes racing exactly one wins.
- `KubernetesLease`: a `coordination.k8s.io/v1` Lease through the official client (the
  provider's `KubeConnection`), written with optimistic concurrency (`resourceVersion`: a
  stale write is a 409 and loses); the epoch is `spec.leaseTransitions`.

Fencing (`still_holds(conn, held)`, or `fence` which raises `LeaseLost`), for the writes the
work under a lease makes in the run store:
- `SqlLease`, PostgreSQL: the check reads the lease row `FOR SHARE` inside the caller's
  transaction and compares holder and epoch. When it answers True the row stays locked until
  that transaction ends, so no other process can take the lease (its `try_acquire` waits for
  the row) before the transaction commits or rolls back: every write the transaction makes
  commits inside the tenure `held` names, and a former holder (an older epoch) is told False
  and must write nothing. Renewals by the holder wait for the lock too: keep fenced
  transactions short (well under TTL minus the renew interval).
- `SqlLease`, SQLite: one writer at a time; inside `store.transaction(write=True)` (BEGIN
  IMMEDIATE) the lease row cannot change until the transaction ends, which gives the same
  guarantee. In a read transaction the check still holds: a write after it fails with
  SQLITE_BUSY if anyone wrote since the transaction's snapshot.
- `KubernetesLease`: the Lease lives outside the store, so the check is a read of the Lease
  before the write, not atomic with it: a former holder is refused once the Lease shows a
  newer epoch, but a takeover between the check and the commit is not excluded. Use the
  database backend where the work must be strictly fenced.

Expiry is judged by the caller's clock (`now`): the hosts' clocks must agree to well within
the TTL (NTP does). Settings: `LeaseSettings` (`STORMDRILL_LEASE_*`). Nothing happens at
import time.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import os
import re
import socket
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NewType, Protocol

import pydantic
import pydantic_settings
import sqlalchemy as sa

from drills import settings_sources, tables_leases
from orchestrator import errors, journal
from orchestrator.providers.kubernetes import connection as kube_connection
from orchestrator.providers.kubernetes import errors as kube_errors

log = logging.getLogger(__name__)

LeaseName = NewType("LeaseName", str)
HolderId = NewType("HolderId", str)

HOUSEKEEPING = LeaseName("housekeeping")
"""The lease under which recovery, notification dispatch and reaping run."""
RELEASED_HOLDER = ""
_RELEASED_AT = datetime(1970, 1, 1, tzinfo=UTC)
"""`expires_at` of a released row: free for any clock."""
IN_CLUSTER_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


class LeaseLost(errors.OrchestratorError):
    """The lease is held by someone else now (or a newer tenure): write nothing, stop the job."""


# ---- settings ------------------------------------------------------------------------------


class LeaseBackend(enum.StrEnum):
    DATABASE = "database"
    """A row in the run store (PostgreSQL for several replicas; SQLite for one host)."""
    KUBERNETES = "kubernetes"
    """A `coordination.k8s.io/v1` Lease in the pod's namespace (in-cluster access)."""


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_seconds(raw: object) -> float:
    """`15`, `15s`, `1.5s`, `250ms`, `5m`, `1h` as seconds (a number is taken as seconds)."""
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return float(raw)
    match = _DURATION.match(str(raw))
    if match is None:
        raise ValueError(f"{raw!r} is not a duration (write it like 15s, 250ms, 5m or 1h)")
    return float(match.group(1)) * _UNIT_S[match.group(2)]


class LeaseSettings(settings_sources.PassedIn):
    """The singleton lease: `STORMDRILL_LEASE_TTL` (default 15s), `STORMDRILL_LEASE_RENEW`
    (default 5s; must be shorter than the TTL), `STORMDRILL_LEASE_BACKEND` (`database`, the
    default, or `kubernetes`), `STORMDRILL_LEASE_NAME` (default `housekeeping`; the Lease
    object's name for Kubernetes) and `STORMDRILL_LEASE_NAMESPACE` (Kubernetes only; default
    the pod's own namespace). Durations as seconds or `15s`, `250ms`, `5m`.

    Built by `from_env(env)`; `LeaseSettings()` reads nothing (its defaults only).
    """

    model_config = pydantic_settings.SettingsConfigDict(
        env_prefix="STORMDRILL_LEASE_", extra="forbid", frozen=True
    )

    ttl: float = pydantic.Field(default=15.0, gt=0)
    """Seconds a tenure lasts without a renewal; failover happens within it."""
    renew: float = pydantic.Field(default=5.0, gt=0)
    """Seconds between renewals (and between attempts to take a free lease)."""
    backend: LeaseBackend = LeaseBackend.DATABASE
    name: str = pydantic.Field(default=HOUSEKEEPING, min_length=1, max_length=128)
    namespace: str | None = None

    @pydantic.field_validator("ttl", "renew", mode="before")
    @classmethod
    def _duration(cls, value: object) -> float:
        return parse_seconds(value)

    @pydantic.model_validator(mode="after")
    def _renew_before_expiry(self) -> LeaseSettings:
        if self.renew >= self.ttl:
            raise ValueError(
                f"STORMDRILL_LEASE_RENEW ({self.renew:g}s) must be shorter than"
                f" STORMDRILL_LEASE_TTL ({self.ttl:g}s), or the lease expires between renewals"
            )
        return self

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> LeaseSettings:
        """The settings from `env`'s `STORMDRILL_LEASE_*` variables; `ValueError` naming
        the variable when one cannot be used."""
        values = {
            name: env[f"STORMDRILL_LEASE_{name.upper()}"].strip()
            for name in cls.model_fields
            if env.get(f"STORMDRILL_LEASE_{name.upper()}", "").strip()
        }
        try:
            return cls(**values)  # type: ignore[arg-type]
        except pydantic.ValidationError as exc:
            problems = "; ".join(
                f"STORMDRILL_LEASE_{str(err['loc'][0]).upper()}: {err['msg']}"
                if err["loc"]
                else err["msg"]
                for err in exc.errors()
            )
            raise ValueError(f"lease settings are invalid: {problems}") from None


# ---- the interface -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Held:
    """One tenure of a lease, as its holder knows it: valid until `expires_at` unless renewed."""

    name: LeaseName
    holder: HolderId
    epoch: int
    """The fencing token: larger for every later tenure."""
    acquired_at: datetime
    expires_at: datetime
    lease: Lease = dataclasses.field(compare=False, repr=False)
    """The lease that granted it (what `still_holds` asks)."""

    def valid_at(self, now: datetime) -> bool:
        """True while the tenure has not expired by the holder's clock."""
        return now < self.expires_at


class Lease(Protocol):
    """A singleton lease (see the module doc). Every method is safe to call concurrently
    from several processes; none raises for losing a race (it answers None or False)."""

    @property
    def name(self) -> LeaseName: ...

    @property
    def holder(self) -> HolderId: ...

    def try_acquire(self, now: datetime) -> Held | None:
        """Take the lease if free, expired, or held under our own name (a new epoch each
        time: a process that restarted under the same name is not its predecessor, so the
        fence tells their writes apart). A tenure this process holds is `renew`ed instead."""
        ...

    def renew(self, held: Held, now: datetime) -> Held | None:
        """Extend `held` by the TTL; None if it expired or another tenure began (lost)."""
        ...

    def release(self, held: Held) -> bool:
        """Give up `held` now (anyone may take it at once); False if it was lost already."""
        ...

    def still_holds(self, conn: sa.Connection, held: Held) -> bool:
        """Inside `conn`'s transaction: is `held` still the current tenure? (the fence)"""
        ...


def still_holds(conn: sa.Connection, held: Held) -> bool:
    """The fencing check, inside the caller's transaction `conn` (guarantee: module doc)."""
    return held.lease.still_holds(conn, held)


def fence(conn: sa.Connection, held: Held) -> None:
    """`still_holds`, raising `LeaseLost` (so the caller's transaction rolls back) if not."""
    if not still_holds(conn, held):
        raise LeaseLost(
            f"lease {held.name}: epoch {held.epoch} held by {held.holder} is no longer current;"
            " a newer holder does this work now, so nothing was written"
        )


def fencer(held: Held) -> Callable[[sa.Connection], None]:
    """`fence` bound to `held`: what a job passes to code that takes a `Fence` callable."""

    def check(conn: sa.Connection) -> None:
        fence(conn, held)

    return check


def default_holder() -> HolderId:
    """`host:pid:random`: unique per process (a restarted process is a new holder)."""
    return HolderId(f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}")


# ---- the database backend ------------------------------------------------------------------

_T = tables_leases.leases_table


@dataclasses.dataclass(frozen=True)
class LeaseRow:
    """The stored state of a lease (for status lines and tests)."""

    name: LeaseName
    holder: HolderId
    epoch: int
    acquired_at: datetime
    renewed_at: datetime
    expires_at: datetime

    @property
    def released(self) -> bool:
        return self.holder == RELEASED_HOLDER


class SqlLease:
    """A lease row in the run store (see the module doc). Thread-safe."""

    def __init__(
        self,
        store: journal.Journal,
        *,
        name: LeaseName = HOUSEKEEPING,
        holder: HolderId | None = None,
        ttl: timedelta,
    ) -> None:
        if ttl <= timedelta(0):
            raise ValueError(f"lease {name}: the TTL must be positive, not {ttl}")
        self._store = store
        self._name = name
        self._holder = holder or default_holder()
        self._ttl = ttl

    @property
    def name(self) -> LeaseName:
        return self._name

    @property
    def holder(self) -> HolderId:
        return self._holder

    @property
    def ttl(self) -> timedelta:
        return self._ttl

    def current(self) -> LeaseRow | None:
        """The lease's row as stored now, or None if nobody ever took it."""
        with self._store.transaction() as conn:
            row = conn.execute(sa.select(_T).where(_T.c.name == self._name)).first()
        return None if row is None else _row_of(row)

    def try_acquire(self, now: datetime) -> Held | None:
        now = _aware(now)
        try:
            with self._store.transaction(write=True) as conn:
                row = conn.execute(
                    sa.select(_T).where(_T.c.name == self._name).with_for_update()
                ).first()
                if row is None:
                    return self._insert(conn, now)
                found = _row_of(row)
                if found.holder == self._holder or found.released or found.expires_at <= now:
                    return self._take(conn, found, now)
                return None
        except sa.exc.IntegrityError:
            return None  # another process inserted the first row at the same moment

    def renew(self, held: Held, now: datetime) -> Held | None:
        self._check_mine(held)
        now = _aware(now)
        with self._store.transaction(write=True) as conn:
            result = conn.execute(
                _T.update()
                .where(
                    _T.c.name == self._name,
                    _T.c.holder == self._holder,
                    _T.c.epoch == held.epoch,
                    _T.c.expires_at > now,
                )
                .values(renewed_at=now, expires_at=now + self._ttl)
            )
        if result.rowcount != 1:
            return None
        return dataclasses.replace(held, expires_at=now + self._ttl)

    def release(self, held: Held) -> bool:
        self._check_mine(held)
        with self._store.transaction(write=True) as conn:
            result = conn.execute(
                _T.update()
                .where(
                    _T.c.name == self._name, _T.c.holder == self._holder, _T.c.epoch == held.epoch
                )
                .values(holder=RELEASED_HOLDER, expires_at=_RELEASED_AT)
            )
        return result.rowcount == 1

    def still_holds(self, conn: sa.Connection, held: Held) -> bool:
        query = sa.select(_T.c.holder, _T.c.epoch).where(_T.c.name == held.name)
        if conn.dialect.name == "postgresql":
            query = query.with_for_update(read=True)  # FOR SHARE: no takeover until we end
        row = conn.execute(query).first()
        return row is not None and row.holder == held.holder and row.epoch == held.epoch

    # -- the three ways of getting it --

    def _insert(self, conn: sa.Connection, now: datetime) -> Held:
        conn.execute(
            _T.insert().values(
                name=self._name,
                holder=self._holder,
                epoch=1,
                acquired_at=now,
                renewed_at=now,
                expires_at=now + self._ttl,
            )
        )
        return self._held(epoch=1, acquired_at=now, expires_at=now + self._ttl)

    def _take(self, conn: sa.Connection, found: LeaseRow, now: datetime) -> Held | None:
        epoch = found.epoch + 1
        result = conn.execute(
            _T.update()
            .where(_T.c.name == self._name, _T.c.epoch == found.epoch)  # compare-and-set
            .values(
                holder=self._holder,
                epoch=epoch,
                acquired_at=now,
                renewed_at=now,
                expires_at=now + self._ttl,
            )
        )
        if result.rowcount != 1:
            return None
        if not found.released:
            log.info(
                "lease %s: took over from %s (expired %s), epoch %d",
                self._name,
                found.holder,
                found.expires_at.isoformat(),
                epoch,
            )
        return self._held(epoch=epoch, acquired_at=now, expires_at=now + self._ttl)

    def _held(self, *, epoch: int, acquired_at: datetime, expires_at: datetime) -> Held:
        return Held(
            name=self._name,
            holder=self._holder,
            epoch=epoch,
            acquired_at=acquired_at,
            expires_at=expires_at,
            lease=self,
        )

    def _check_mine(self, held: Held) -> None:
        if held.name != self._name or held.holder != self._holder:
            raise ValueError(
                f"lease {self._name} of {self._holder}: cannot renew or release {held.name}"
                f" of {held.holder} (a tenure of another lease object)"
            )


def _row_of(row: sa.Row[Any]) -> LeaseRow:
    return LeaseRow(
        name=LeaseName(row.name),
        holder=HolderId(row.holder),
        epoch=int(row.epoch),
        acquired_at=row.acquired_at,
        renewed_at=row.renewed_at,
        expires_at=row.expires_at,
    )


def _aware(now: datetime) -> datetime:
    if now.tzinfo is None:
        raise ValueError(f"naive datetime {now!r}: leases take aware UTC times")
    return now.astimezone(UTC)


# ---- the Kubernetes backend ----------------------------------------------------------------

_MICRO_TIME = "%Y-%m-%dT%H:%M:%S.%fZ"


class KubernetesLease:
    """A `coordination.k8s.io/v1` Lease (see the module doc). Thread-safe.

    The Lease's `leaseDurationSeconds` is a whole number: the TTL is rounded up to seconds.
    API errors other than losing a race (409, an AlreadyExists on create) propagate as the
    provider's typed errors (`ProviderRetryable` for an unreachable API server).
    """

    def __init__(
        self,
        conn: kube_connection.KubeConnection,
        *,
        namespace: str,
        name: LeaseName = HOUSEKEEPING,
        holder: HolderId | None = None,
        ttl: timedelta,
    ) -> None:
        if ttl <= timedelta(0):
            raise ValueError(f"lease {name}: the TTL must be positive, not {ttl}")
        self._conn = conn
        self._namespace = namespace
        self._name = name
        self._holder = holder or default_holder()
        self._duration_s = max(1, -int(-ttl.total_seconds() // 1))
        self._api = kube_connection.k8s_client.CoordinationV1Api(conn.api_client)

    @property
    def name(self) -> LeaseName:
        return self._name

    @property
    def holder(self) -> HolderId:
        return self._holder

    @property
    def ttl(self) -> timedelta:
        return timedelta(seconds=self._duration_s)

    @property
    def _what(self) -> str:
        return f"Lease {self._namespace}/{self._name}"

    def try_acquire(self, now: datetime) -> Held | None:
        now = _aware(now)
        found = self._read()
        if found is None:
            return self._create(now)
        spec = found.get("spec") or {}
        holder = spec.get("holderIdentity") or RELEASED_HOLDER
        epoch = int(spec.get("leaseTransitions") or 0)
        expires = _expires_of(spec)
        if holder in (self._holder, RELEASED_HOLDER) or expires <= now:
            return self._write(found, epoch=epoch + 1, acquired_at=now, now=now)
        return None

    def renew(self, held: Held, now: datetime) -> Held | None:
        now = _aware(now)
        found = self._read()
        if found is None or not self._is_current(found, held) or _expires_of(found["spec"]) <= now:
            return None
        return self._write(found, epoch=held.epoch, acquired_at=held.acquired_at, now=now)

    def release(self, held: Held) -> bool:
        found = self._read()
        if found is None or not self._is_current(found, held):
            return False
        body = _with_spec(found, {**found["spec"], "holderIdentity": None})
        try:
            self._conn.call(
                self._what, self._api.replace_namespaced_lease, self._name, self._namespace, body
            )
        except kube_errors.Conflict:
            return False
        return True

    def still_holds(self, conn: sa.Connection, held: Held) -> bool:
        """A read of the Lease (not atomic with `conn`'s writes: see the module doc)."""
        del conn
        found = self._read()
        return found is not None and self._is_current(found, held)

    def _is_current(self, found: kube_connection.KubeObject, held: Held) -> bool:
        spec = found.get("spec") or {}
        return (
            spec.get("holderIdentity") == held.holder
            and int(spec.get("leaseTransitions") or 0) == held.epoch
        )

    def _read(self) -> kube_connection.KubeObject | None:
        try:
            found: kube_connection.KubeObject = self._conn.call(
                self._what, self._api.read_namespaced_lease, self._name, self._namespace
            )
        except kube_errors.NotFound:
            return None
        return found

    def _spec(self, *, epoch: int, acquired_at: datetime, now: datetime) -> dict[str, object]:
        return {
            "holderIdentity": self._holder,
            "leaseDurationSeconds": self._duration_s,
            "acquireTime": acquired_at.strftime(_MICRO_TIME),
            "renewTime": now.strftime(_MICRO_TIME),
            "leaseTransitions": epoch,
        }

    def _create(self, now: datetime) -> Held | None:
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self._name, "namespace": self._namespace},
            "spec": self._spec(epoch=0, acquired_at=now, now=now),
        }
        try:
            self._conn.call(self._what, self._api.create_namespaced_lease, self._namespace, body)
        except kube_errors.AlreadyExists:
            return None
        return self._held(epoch=0, acquired_at=now, now=now)

    def _write(
        self, found: kube_connection.KubeObject, *, epoch: int, acquired_at: datetime, now: datetime
    ) -> Held | None:
        body = _with_spec(found, self._spec(epoch=epoch, acquired_at=acquired_at, now=now))
        try:  # carries found's resourceVersion: a write in between makes this a 409
            self._conn.call(
                self._what, self._api.replace_namespaced_lease, self._name, self._namespace, body
            )
        except kube_errors.Conflict:
            return None
        return self._held(epoch=epoch, acquired_at=acquired_at, now=now)

    def _held(self, *, epoch: int, acquired_at: datetime, now: datetime) -> Held:
        return Held(
            name=self._name,
            holder=self._holder,
            epoch=epoch,
            acquired_at=acquired_at,
            expires_at=now + timedelta(seconds=self._duration_s),
            lease=self,
        )


def _with_spec(
    found: kube_connection.KubeObject, spec: Mapping[str, object]
) -> kube_connection.KubeObject:
    meta = found.get("metadata") or {}
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            key: meta[key]
            for key in ("name", "namespace", "resourceVersion", "uid", "labels")
            if key in meta
        },
        "spec": dict(spec),
    }


def _time_of(raw: object) -> datetime | None:
    if not isinstance(raw, str) or not raw:
        return None
    parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _expires_of(spec: Mapping[str, Any]) -> datetime:
    renewed = _time_of(spec.get("renewTime")) or _time_of(spec.get("acquireTime"))
    if renewed is None or not spec.get("holderIdentity"):
        return _RELEASED_AT
    return renewed + timedelta(seconds=int(spec.get("leaseDurationSeconds") or 0))


def in_cluster_namespace(path: Path = IN_CLUSTER_NAMESPACE_FILE) -> str:
    """The namespace of the pod this process runs in (its service account's)."""
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise errors.OrchestratorError(
            f"cannot read the pod's namespace from {path} ({exc.strerror}): set"
            " STORMDRILL_LEASE_NAMESPACE, or use STORMDRILL_LEASE_BACKEND=database outside"
            " a cluster"
        ) from None
