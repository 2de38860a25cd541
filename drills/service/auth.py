"""Who may do what: principals, roles, permissions, bearer tokens and OIDC (issue 13).

Every entry point relies on this contract:
- `Role`: viewer, operator, approver, admin; `Permission`: what a route needs;
  `ROLE_PERMISSIONS` says which role grants what (admin grants everything).
- `Principal`: who is calling (a token's name or an OIDC subject) and their `Grant`s: a role,
  unscoped or scoped to teams (CMDB groups) or CMDB services.
- `authenticate(store, config, authorization=…) -> Principal` raises `Unauthenticated` (401)
  for missing, malformed, unknown, revoked or expired credentials and for JWTs that do not
  check out (signature, issuer, audience, expiry, `nbf`, unknown key id).
- `authorize(principal, permission, services=…)` raises `Forbidden` (403) without a role
  granting `permission`, or, when `services` (the CMDB services the action targets:
  `services_of_plan`, `services_of_run`) are given for a service-bound permission, when
  no granting role covers every one of them.

Invariants: authorisation fails closed (a scoped role never vouches for a drill whose
targeted services are unknown); reads are not scoped (a viewer of one team reads every
run: nothing returned holds a secret); a Stormdrill token's secret is never stored
(`drills.service.tokens` keeps its digest); only asymmetric JWT algorithms are accepted.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Collection, Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

import jwt

from orchestrator import journal, records
from orchestrator.cmdb import impact as cmdb_impact
from orchestrator.cmdb import models as cmdb_models
from scenarios import errors

if TYPE_CHECKING:  # tokens builds on this module
    from drills.service import tokens as tokens_mod

BEARER = "bearer"
CHALLENGE = 'Bearer realm="stormdrill"'
"""The `WWW-Authenticate` value a 401 carries."""


class Unauthenticated(errors.StormdrillError):
    """No credentials, or credentials that do not check out (HTTP 401)."""

    challenge = CHALLENGE


class Forbidden(errors.StormdrillError):
    """A known principal without the role (or the scope) the action needs (HTTP 403)."""


class AuthConfigInvalid(errors.StormdrillError):
    """The OIDC settings cannot be used (a missing URL, an unknown role in the mapping)."""


class Role(enum.StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    APPROVER = "approver"
    ADMIN = "admin"


class Permission(enum.StrEnum):
    READ = "read"
    PLAN = "plan"
    START = "start"
    ABORT = "abort"
    ACK = "ack"
    APPROVE = "approve"
    """Approve or reject a run awaiting approval."""
    KILLSWITCH = "killswitch"
    TOKENS = "tokens"
    AUDIT = "audit"

    @property
    def doing(self) -> str:
        """What the permission allows, for messages: `start drills`."""
        return _DOING[self]


_DOING: Mapping[Permission, str] = {
    Permission.READ: "read runs, documents and the CMDB",
    Permission.PLAN: "plan drills",
    Permission.START: "start drills",
    Permission.ABORT: "abort runs",
    Permission.ACK: "acknowledge manual steps",
    Permission.APPROVE: "approve or reject runs",
    Permission.KILLSWITCH: "engage or release the kill switch",
    Permission.TOKENS: "manage API tokens",
    Permission.AUDIT: "read the audit trail",
}


_P = Permission
ROLE_PERMISSIONS: Mapping[Role, frozenset[Permission]] = {
    Role.VIEWER: frozenset({_P.READ}),
    Role.OPERATOR: frozenset({_P.READ, _P.PLAN, _P.START, _P.ABORT, _P.ACK}),
    Role.APPROVER: frozenset({_P.READ, _P.APPROVE}),
    Role.ADMIN: frozenset(Permission),
}
"""What each role may do. Viewers read everything but secrets (no view holds one);
operators plan, start, abort and acknowledge (in a protected environment a start waits
for approvers: `drills.service.approvals`); approvers approve or reject; admins do
everything, tokens, the kill switch and the audit trail included."""

SERVICE_BOUND: frozenset[Permission] = frozenset({_P.PLAN, _P.START, _P.ABORT, _P.ACK, _P.APPROVE})
"""Permissions a scoped role grants only for the services its scope covers."""


def roles_with(permission: Permission) -> frozenset[Role]:
    """The roles that grant `permission`."""
    return frozenset(role for role, granted in ROLE_PERMISSIONS.items() if permission in granted)


# ---- principals -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Grant:
    """A role, for everything (no scope) or only for the services of some teams or services.

    `teams` are canonical group refs (`group:default/team-payments`), `services` canonical
    service refs (`component:default/checkout`): build them with `Grant.scoped_to`.
    """

    role: Role
    teams: frozenset[str] = frozenset()
    services: frozenset[str] = frozenset()

    @property
    def scoped(self) -> bool:
        return bool(self.teams or self.services)

    def covers(self, service: ScopedService) -> bool:
        """Whether this grant's scope holds `service` (an unscoped grant holds every one)."""
        if not self.scoped:
            return True
        return service.ref in self.services or any(o in self.teams for o in service.owners)

    def describe(self, *, short: bool = False) -> str:
        """`operator` or `operator of group:default/team-payments, component:default/web`
        (`short`: `operator of team-payments, web`, as people write them)."""
        if not self.scoped:
            return self.role.value
        refs = sorted(self.teams | self.services)
        return f"{self.role.value} of {', '.join(map(short_ref, refs) if short else refs)}"

    @classmethod
    def scoped_to(
        cls, role: Role, *, teams: Iterable[str] = (), services: Iterable[str] = ()
    ) -> Grant:
        """A grant with its scope written as people write refs (`team-payments`, `checkout`).

        Raises `ValueError` naming a ref that cannot be read.
        """
        return cls(
            role=role,
            teams=frozenset(team_ref(raw) for raw in teams),
            services=frozenset(service_ref(raw) for raw in services),
        )


def short_ref(canonical: str) -> str:
    """`group:default/team-payments` → `team-payments`; `resource:default/db` →
    `resource:db`; a ref in another namespace keeps it (`component:shop/web`)."""
    kind, _, rest = canonical.partition(":")
    namespace, _, name = rest.partition("/")
    if not name:
        return canonical
    if namespace != cmdb_models.DEFAULT_NAMESPACE:
        return canonical
    return name if kind in ("group", "component") else f"{kind}:{name}"


def team_ref(raw: str) -> str:
    """The canonical group ref of a team as written (`team-payments` → `group:default/…`)."""
    try:
        ref = cmdb_models.EntityRef.parse(raw, default_kind=cmdb_models.EntityKind.GROUP)
    except errors.StormdrillError as exc:
        raise ValueError(f"team {raw!r}: {exc}") from None
    if ref.kind is not cmdb_models.EntityKind.GROUP:
        raise ValueError(f"team {raw!r} is a {ref.kind.value}: name a group (e.g. team-payments)")
    return str(ref)


def service_ref(raw: str) -> str:
    """The canonical ref of a CMDB service as written (`checkout` → `component:default/…`)."""
    try:
        ref = cmdb_models.EntityRef.parse(raw, default_kind=cmdb_models.EntityKind.COMPONENT)
    except errors.StormdrillError as exc:
        raise ValueError(f"service {raw!r}: {exc}") from None
    if ref.kind not in cmdb_models.SERVICE_KINDS:
        raise ValueError(
            f"service {raw!r} is a {ref.kind.value}: name a component or resource"
            " (e.g. checkout, resource:payments-db)"
        )
    return str(ref)


@dataclasses.dataclass(frozen=True)
class Principal:
    """Who is calling.

    `roles`, `teams` and `services` summarise `grants`; a principal built with roles only
    (no grants) holds each role with the scope `teams` plus `services` (empty: unscoped).
    """

    name: str
    """Who, stably: a token's name, an OIDC subject (`sub`: a username can be changed, and
    the two-person rule compares names), the CLI's user."""
    roles: frozenset[Role]
    kind: str = "token"
    """`token`, `oidc` or `local` (the CLI's own user)."""
    teams: frozenset[str] = frozenset()
    services: frozenset[str] = frozenset()
    token_id: str | None = None
    grants: tuple[Grant, ...] = ()
    display_name: str | None = None
    """How people know them, when it differs from `name` (an OIDC `preferred_username`)."""

    def effective_grants(self) -> tuple[Grant, ...]:
        """The grants, or (for a principal built from roles) each role with the shared scope."""
        if self.grants:
            return self.grants
        return tuple(
            Grant(role=role, teams=self.teams, services=self.services)
            for role in sorted(self.roles)
        )

    def describe(self) -> str:
        """`ci (operator of group:default/team-payments)`, `alice [sub 9f2c] (viewer)`."""
        held = ", ".join(g.describe() for g in self.effective_grants()) or "no role"
        if self.display_name and self.display_name != self.name:
            return f"{self.display_name} [sub {self.name}] ({held})"
        return f"{self.name} ({held})"

    @classmethod
    def from_grants(
        cls,
        name: str,
        grants: Iterable[Grant],
        *,
        kind: str,
        token_id: str | None = None,
        display_name: str | None = None,
    ) -> Principal:
        """A principal holding `grants` (duplicates dropped; summaries filled in)."""
        held = tuple(dict.fromkeys(grants))
        return cls(
            name=name,
            roles=frozenset(g.role for g in held),
            kind=kind,
            teams=frozenset(t for g in held for t in g.teams),
            services=frozenset(s for g in held for s in g.services),
            token_id=token_id,
            grants=held,
            display_name=display_name,
        )


def local_principal(user: str) -> Principal:
    """The CLI's own user: whoever can open the store may do everything (an unscoped admin)."""
    return Principal(name=user, roles=frozenset({Role.ADMIN}), kind="local")


# ---- the services an action reaches -----------------------------------------------------


@dataclasses.dataclass(frozen=True, order=True)
class ScopedService:
    """A CMDB service an action targets, and who owns it (the team, then its parent teams)."""

    ref: str
    owners: tuple[str, ...] = ()


def _owner_chain(owner: str | None, catalog: cmdb_models.Catalog | None) -> tuple[str, ...]:
    if not owner:
        return ()
    chain = [owner]
    if catalog is None:
        return tuple(chain)
    groups = {str(ref): group for ref, group in catalog.groups.items()}
    current = groups.get(owner)
    while current is not None and current.parent is not None:
        parent = str(current.parent)
        if parent in chain:
            break  # a cycle in the catalog's group tree
        chain.append(parent)
        current = groups.get(parent)
    return tuple(chain)


def services_of_plan(
    impact: cmdb_impact.Impact | None, *, catalog: cmdb_models.Catalog | None = None
) -> tuple[ScopedService, ...]:
    """The services a plan targets (distance 0), with their owners (and parent teams).

    What the drill breaks, not everything downstream: a team drilling its own database may
    well hurt its consumers, and that is the point of the drill. No impact (no CMDB): ().
    """
    if impact is None:
        return ()
    found = (
        ScopedService(
            ref=str(item.ref), owners=_owner_chain(str(item.service.owner) or None, catalog)
        )
        for item in impact.services
        if item.distance == 0
    )
    return tuple(sorted(set(found)))


def services_of_run(
    record: records.RunRecord, *, catalog: cmdb_models.Catalog | None = None
) -> tuple[ScopedService, ...]:
    """The services a run's recorded plan targets (its impact rows at distance 0)."""
    found = (
        ScopedService(ref=row.ref, owners=_owner_chain(row.owner, catalog))
        for row in record.impact_rows
        if row.targeted
    )
    return tuple(sorted(set(found)))


# ---- authorisation ----------------------------------------------------------------------


def authorize(
    principal: Principal,
    permission: Permission,
    services: Collection[ScopedService] | None = None,
) -> None:
    """Raise `Forbidden` unless `principal` may do `permission` (to every one of `services`).

    `services=None`: the action is not (yet) bound to services (a route checks the role
    first, then again with the plan's services once it knows them). For a service-bound
    permission, an unscoped granting role passes; otherwise the granting roles' scopes
    together must cover every service, and an empty `services` (the targets map to no
    CMDB service, or a queued run is not planned yet) is refused to a scoped principal —
    except for `ABORT`, which only ever stops faults.
    """
    granting = [g for g in principal.effective_grants() if permission in ROLE_PERMISSIONS[g.role]]
    if not granting:
        needed = " or ".join(sorted(r.value for r in roles_with(permission)))
        raise Forbidden(
            f"{principal.describe()} may not {permission.doing}: that needs the role {needed}"
            " (an admin can create a token with it: stormdrill tokens create --role ROLE)"
        )
    if services is None or permission not in SERVICE_BOUND:
        return
    if any(not g.scoped for g in granting):
        return
    scope = "; ".join(g.describe() for g in granting)
    if not services and permission is Permission.ABORT:
        return  # aborting only ever stops faults: a queued run's targets are not known yet
    if not services:
        raise Forbidden(
            f"{principal.describe()} may not {permission.doing} here: its role is scoped"
            f" ({scope}) and the drill's targets map to no CMDB service, so the scope cannot"
            " be checked (give the drill a CMDB: --cmdb or STORMDRILL_CMDB, or ask someone"
            " with an unscoped role)"
        )
    outside = [s for s in services if not any(g.covers(s) for g in granting)]
    if outside:
        shown = ", ".join(
            f"{s.ref} (owner {s.owners[0] if s.owners else 'unknown'})" for s in outside
        )
        raise Forbidden(
            f"{principal.describe()} may not {permission.doing} here: the drill targets"
            f" {shown}, outside its scope ({scope})"
        )


# ---- authentication ---------------------------------------------------------------------


class AuthSettings(Protocol):
    """What `authenticate` reads of the API settings (`drills.api.config.ApiSettings`)."""

    @property
    def oidc_issuer(self) -> str | None: ...

    @property
    def oidc_audience(self) -> str | None: ...

    @property
    def oidc_jwks_url(self) -> str | None: ...

    @property
    def oidc_roles_claim(self) -> str: ...

    @property
    def oidc_group_roles(self) -> Mapping[str, str]: ...


def bearer_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer …` header; `Unauthenticated` without one."""
    if authorization is None or not authorization.strip():
        raise Unauthenticated(
            "no credentials: send 'Authorization: Bearer <token>' (an admin creates one with"
            " `stormdrill tokens create --role viewer`, or use your OIDC access token)"
        )
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != BEARER or not token.strip():
        raise Unauthenticated(
            f"the Authorization header uses the {scheme!r} scheme: send 'Bearer <token>'"
        )
    return token.strip()


def authenticate(
    store: journal.Journal,
    config: AuthSettings,
    *,
    authorization: str | None,
    oidc: OidcVerifier | None = None,
    now: datetime | None = None,
    token_cache: tokens_mod.PrincipalCache | None = None,
) -> Principal:
    """The principal an `Authorization` header names; `Unauthenticated` otherwise.

    A token starting with `sdt_` is a Stormdrill token (checked against the store, its last
    use recorded; with `token_cache`, not again within the cache's TTL); anything else is
    read as an OIDC JWT when OIDC is configured (`oidc`: the verifier that caches the
    issuer's keys; one is built from `config` if not given).
    """
    from drills.service import tokens  # not at the top: tokens builds on this module

    token = bearer_token(authorization)
    if token.startswith(tokens.PREFIX):
        return tokens.authenticate(store, token, now=now, cache=token_cache)
    if oidc is not None:
        return oidc.verify(token)
    oidc_config = OidcConfig.from_settings(config)
    if oidc_config is None:
        raise Unauthenticated(
            "not a Stormdrill token (those start with 'sdt_') and OIDC is not configured"
            " (STORMDRILL_OIDC_ISSUER, _AUDIENCE, _JWKS_URL)"
        )
    return OidcVerifier(oidc_config).verify(token)


def cached_principal(
    authorization: str | None,
    token_cache: tokens_mod.PrincipalCache,
    *,
    now: datetime | None = None,
) -> Principal | None:
    """The principal of a Stormdrill bearer token `token_cache` vouches for, without I/O;
    None for anything else (a missing or malformed header, an OIDC JWT, a token not checked
    within the TTL): then `authenticate` decides."""
    if authorization is None:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != BEARER:
        return None
    return token_cache.principal(token.strip(), now=now)


def check_config(config: AuthSettings) -> None:
    """Raise `AuthConfigInvalid` for OIDC settings that cannot work (call it at start-up)."""
    OidcConfig.from_settings(config)


# ---- OIDC -------------------------------------------------------------------------------

ASYMMETRIC_ALGORITHMS: frozenset[str] = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
"""The JWT algorithms accepted (never `none`, never an HMAC keyed with a public key)."""

JWKS_MAX_BYTES = 1 << 20


@dataclasses.dataclass(frozen=True)
class OidcConfig:
    """A parsed OIDC setup: whose tokens, for whom, where their keys are, who gets which role."""

    issuer: str
    audience: str
    jwks_url: str
    roles_claim: str = "groups"
    """A claim name, or a dotted path into nested claims (`realm_access.roles`)."""
    group_roles: Mapping[str, Grant] = dataclasses.field(default_factory=dict)
    """Group (a value of the roles claim) → grant. Empty: the claim's values are role names."""
    leeway_s: float = 30.0
    """Clock skew tolerated on `exp` and `nbf`."""
    fetch_timeout_s: float = 5.0
    keys_max_age_s: float = 3600.0
    """Keys older than this are fetched again before use."""
    min_refetch_s: float = 30.0
    """An unknown key id fetches the keys again at most this often (no fetch storms)."""

    @classmethod
    def from_settings(cls, config: AuthSettings) -> OidcConfig | None:
        """The OIDC setup `config` describes; None when OIDC is off (nothing of it set).

        Raises `AuthConfigInvalid` when it is half set or its group mapping cannot be read.
        """
        named = {
            "STORMDRILL_OIDC_ISSUER": config.oidc_issuer,
            "STORMDRILL_OIDC_AUDIENCE": config.oidc_audience,
            "STORMDRILL_OIDC_JWKS_URL": config.oidc_jwks_url,
        }
        if not any(named.values()):
            return None
        missing = [name for name, value in named.items() if not value]
        if missing:
            raise AuthConfigInvalid(
                f"OIDC is half configured: set {', '.join(missing)} too (or unset the others)"
            )
        assert config.oidc_issuer and config.oidc_audience and config.oidc_jwks_url
        scheme = urllib.parse.urlsplit(config.oidc_jwks_url).scheme
        if scheme not in ("http", "https"):
            raise AuthConfigInvalid(
                f"STORMDRILL_OIDC_JWKS_URL {config.oidc_jwks_url!r}: use an https:// URL"
            )
        return cls(
            issuer=config.oidc_issuer,
            audience=config.oidc_audience,
            jwks_url=config.oidc_jwks_url,
            roles_claim=config.oidc_roles_claim,
            group_roles={
                group: parse_grant(spec, where=f"STORMDRILL_OIDC_GROUP_ROLES[{group!r}]")
                for group, spec in config.oidc_group_roles.items()
            },
        )


def parse_grant(spec: str, *, where: str) -> Grant:
    """`operator`, or `operator@team-payments,component:checkout` (a role scoped to teams
    and services: refs of kind group are teams, components and resources services)."""
    role_text, _, scope_text = spec.partition("@")
    try:
        role = Role(role_text.strip().lower())
    except ValueError:
        known = ", ".join(r.value for r in Role)
        raise AuthConfigInvalid(
            f"{where}: {role_text.strip()!r} is not a role (roles: {known})"
        ) from None
    teams: list[str] = []
    services: list[str] = []
    for raw in (part.strip() for part in scope_text.split(",")):
        if not raw:
            continue
        try:
            ref = cmdb_models.EntityRef.parse(raw, default_kind=cmdb_models.EntityKind.GROUP)
        except errors.StormdrillError as exc:
            raise AuthConfigInvalid(f"{where}: scope {raw!r}: {exc}") from None
        if ref.kind is cmdb_models.EntityKind.GROUP:
            teams.append(str(ref))
        elif ref.kind in cmdb_models.SERVICE_KINDS:
            services.append(str(ref))
        else:
            raise AuthConfigInvalid(
                f"{where}: scope {raw!r} is a {ref.kind.value}: name a team (group) or a"
                " service (component:NAME, resource:NAME)"
            )
    if scope_text.strip() and not (teams or services):
        raise AuthConfigInvalid(f"{where}: {spec!r} names no team or service after '@'")
    return Grant(role=role, teams=frozenset(teams), services=frozenset(services))


Fetch = Callable[[str, float], bytes]
"""Fetch a URL's body (with a timeout in seconds); raises `OSError` when it cannot."""


def http_fetch(url: str, timeout_s: float) -> bytes:
    """GET `url` (at most `JWKS_MAX_BYTES`); `OSError` for a transport failure or non-200."""
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        if response.status != 200:
            raise OSError(f"HTTP {response.status}")
        body: bytes = response.read(JWKS_MAX_BYTES + 1)
    if len(body) > JWKS_MAX_BYTES:
        raise OSError(f"the key set is larger than {JWKS_MAX_BYTES} bytes")
    return body


class OidcVerifier:
    """Verifies OIDC JWTs against the issuer's key set, which it fetches and caches.

    Keys are fetched on first use, again once they are `keys_max_age_s` old, and again when
    a token names an unknown key id (the issuer rotated its keys) — at most once per
    `min_refetch_s`. Thread-safe: one per app (`request.app.state`).
    """

    def __init__(
        self,
        config: OidcConfig,
        *,
        fetch: Fetch = http_fetch,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self._fetch = fetch
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._keys: dict[str | None, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self.fetches = 0
        """How many times the key set was fetched (for tests and diagnostics)."""

    def verify(self, token: str) -> Principal:
        """The principal a valid token names; `Unauthenticated` naming what did not check out."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"the bearer token is not a JWT: {exc}") from None
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise Unauthenticated("the JWT's key id (kid) is not a string")
        key = self._key(kid)
        if key.algorithm_name not in ASYMMETRIC_ALGORITHMS:
            raise Unauthenticated(
                f"key {kid!r} of {self.config.jwks_url} uses {key.algorithm_name}; only"
                f" asymmetric algorithms are accepted ({', '.join(sorted(ASYMMETRIC_ALGORITHMS))})"
            )
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[key.algorithm_name],
                audience=self.config.audience,
                issuer=self.config.issuer,
                leeway=self.config.leeway_s,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("the JWT has expired: get a fresh one from your issuer") from None
        except jwt.ImmatureSignatureError:
            raise Unauthenticated("the JWT is not valid yet (nbf/iat in the future)") from None
        except jwt.InvalidAudienceError:
            raise Unauthenticated(
                f"the JWT is not meant for this API (its audience is not {self.config.audience!r})"
            ) from None
        except jwt.InvalidIssuerError:
            raise Unauthenticated(
                f"the JWT was not issued by {self.config.issuer!r} (the configured issuer)"
            ) from None
        except jwt.InvalidSignatureError:
            raise Unauthenticated("the JWT's signature does not verify") from None
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"the JWT does not check out: {exc}") from None
        return self._principal(claims)

    def _key(self, kid: str | None) -> jwt.PyJWK:
        with self._lock:
            now = self._monotonic()
            stale = self._fetched_at is None or now - self._fetched_at >= self.config.keys_max_age_s
            if stale:
                self._refresh(now)
            found = self._lookup(kid)
            if found is None and not stale and self._may_refetch(now):
                self._refresh(now)
                found = self._lookup(kid)
        if found is None:
            raise Unauthenticated(
                f"the JWT names key id {kid!r}, which the issuer's key set"
                f" ({self.config.jwks_url}) does not hold"
            )
        return found

    def _may_refetch(self, now: float) -> bool:
        return self._fetched_at is None or now - self._fetched_at >= self.config.min_refetch_s

    def _lookup(self, kid: str | None) -> jwt.PyJWK | None:
        if kid is None:
            return next(iter(self._keys.values())) if len(self._keys) == 1 else None
        return self._keys.get(kid)

    def _refresh(self, now: float) -> None:
        self._fetched_at = now
        self.fetches += 1
        url = self.config.jwks_url
        try:
            body = self._fetch(url, self.config.fetch_timeout_s)
            raw = json.loads(body)
        except (OSError, ValueError) as exc:
            if self._keys:
                # keep the keys we have; try again once `min_refetch_s` has passed
                self._fetched_at = now - self.config.keys_max_age_s + self.config.min_refetch_s
                return
            raise Unauthenticated(f"cannot fetch the issuer's keys from {url}: {exc}") from None
        keys: dict[str | None, jwt.PyJWK] = {}
        entries = raw.get("keys") if isinstance(raw, dict) else None
        for entry in entries if isinstance(entries, list) else ():
            if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
                continue
            try:
                key = jwt.PyJWK.from_dict(entry)
            except jwt.PyJWTError:
                continue  # a key type we cannot use (the issuer may publish several)
            keys[key.key_id] = key
        self._keys = keys

    def _principal(self, claims: Mapping[str, object]) -> Principal:
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise Unauthenticated("the JWT's subject (sub) is not a string")
        display = next(
            (
                value
                for field in ("preferred_username", "email")
                if isinstance(value := claims.get(field), str) and value
            ),
            None,
        )
        values = _claim_values(claims, self.config.roles_claim)
        if self.config.group_roles:
            grants = [self.config.group_roles[v] for v in values if v in self.config.group_roles]
        else:
            grants = [Grant(role=Role(v)) for v in values if v in set(Role)]
        return Principal.from_grants(subject, grants, kind="oidc", display_name=display)


def _claim_values(claims: Mapping[str, object], path: str) -> tuple[str, ...]:
    """The strings at `path` (dotted) of the claims: a list of strings, or one string
    holding several separated by spaces or commas."""
    found: object = claims
    for part in path.split("."):
        if not isinstance(found, Mapping):
            return ()
        found = found.get(part)
    if isinstance(found, str):
        return tuple(v for v in found.replace(",", " ").split() if v)
    if isinstance(found, list):
        return tuple(v for v in found if isinstance(v, str))
    return ()
