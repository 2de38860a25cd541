"""Routes: tokens (admin only): create one (its secret is in that answer only), list, revoke.

`POST /tokens` answers 201 with the token and a `Location`; `GET /tokens` lists them without
secrets; `DELETE /tokens/{token_id}` revokes one (by id or prefix; revoking twice is
harmless; this server refuses the token from its next request on, another replica within
`tokens.PRINCIPAL_CACHE_TTL`). The calls are `drills.service.tokens`; the audit trail
records create and revoke.
"""

from __future__ import annotations

from typing import Annotated

import fastapi
import pydantic

from drills.api import deps, problems
from drills.service import auth, tokens

router = fastapi.APIRouter(tags=["tokens"])

AdminDep = Annotated[auth.Principal, deps.require(auth.Permission.TOKENS)]


class TokenCreate(pydantic.BaseModel):
    """What a new token may do, for whom, and how long."""

    model_config = pydantic.ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "role": "operator",
                    "name": "ci-payments",
                    "expires": "90d",
                    "teams": ["team-payments"],
                }
            ]
        },
    )

    role: auth.Role
    name: str | None = pydantic.Field(default=None, max_length=255)
    expires: str | None = pydantic.Field(
        default=None, description="A duration (`90d`, `12h`) or `never` (the default)."
    )
    teams: list[str] = pydantic.Field(
        default_factory=list, description="Scope the role to these teams' services."
    )
    services: list[str] = pydantic.Field(
        default_factory=list, description="Scope the role to these CMDB services."
    )


@router.post(
    "/tokens",
    status_code=201,
    summary="Create a token (the answer is the only place its secret appears)",
    response_model=tokens.IssuedTokenView,
    responses=problems.responses(*problems.COMMON),
)
def create_token(
    body: TokenCreate, store: deps.StoreDep, principal: AdminDep, response: fastapi.Response
) -> tokens.IssuedTokenView:
    issued = tokens.create(
        store,
        role=body.role,
        name=body.name,
        expires_in=tokens.parse_expires(body.expires),
        teams=body.teams,
        services=body.services,
        created_by=principal.name,
    )
    response.headers["Location"] = f"/api/v1/tokens/{issued.token.id}"
    return tokens.IssuedTokenView.from_issued(issued)


@router.get(
    "/tokens",
    summary="List tokens (never their secrets)",
    response_model=tokens.TokenListView,
    responses=problems.responses(*problems.COMMON),
)
def list_tokens(
    store: deps.StoreDep,
    _principal: AdminDep,
    active: Annotated[
        bool, fastapi.Query(description="Only tokens that are neither revoked nor expired.")
    ] = False,
) -> tokens.TokenListView:
    return tokens.TokenListView.from_tokens(tokens.list_tokens(store, include_inactive=not active))


@router.get(
    "/tokens/{token_id}",
    summary="One token (by id or prefix)",
    response_model=tokens.TokenView,
    responses=problems.responses(*problems.COMMON, 404),
)
def get_token(token_id: str, store: deps.StoreDep, _principal: AdminDep) -> tokens.TokenView:
    return tokens.TokenView.from_token(tokens.get(store, token_id))


@router.delete(
    "/tokens/{token_id}",
    summary="Revoke a token (by id or prefix): it stops working at once",
    response_model=tokens.TokenView,
    responses=problems.responses(*problems.COMMON, 404),
)
def revoke_token(
    token_id: str, request: fastapi.Request, store: deps.StoreDep, principal: AdminDep
) -> tokens.TokenView:
    revoked = tokens.revoke(store, token_id, by=principal.name)
    cache: tokens.PrincipalCache | None = getattr(request.app.state, "principals", None)
    if cache is not None:  # this server refuses it from the next request on
        cache.forget(revoked.id)
    return tokens.TokenView.from_token(revoked)
