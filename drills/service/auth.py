"""Who may do what: principals, roles, permissions, bearer tokens and OIDC (skeleton: issue 13).

Contract every entry point relies on (the helper owning this module fills in the bodies):
- `Role`: viewer, operator, approver, admin; `Permission`: what a route needs.
- `Principal`: who is calling (a token's name or an OIDC subject), their roles and the teams
  or CMDB services their roles are scoped to (empty: unscoped).
- `authenticate(store, config, authorization=…) -> Principal` raises `Unauthenticated` (401).
- `authorize(principal, permission, services=…)` raises `Forbidden` (403).
"""

from __future__ import annotations

import dataclasses
import enum

from scenarios import errors


class Unauthenticated(errors.StormdrillError):
    """No credentials, or credentials that do not check out (HTTP 401)."""


class Forbidden(errors.StormdrillError):
    """A known principal without the role (or the scope) the action needs (HTTP 403)."""


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
    KILLSWITCH = "killswitch"
    TOKENS = "tokens"
    AUDIT = "audit"


@dataclasses.dataclass(frozen=True)
class Principal:
    name: str
    roles: frozenset[Role]
    kind: str = "token"
    """`token`, `oidc` or `local` (the CLI's own user)."""
    teams: frozenset[str] = frozenset()
    services: frozenset[str] = frozenset()
    token_id: str | None = None
