"""OIDC: JWTs signed with a local RSA key, the issuer's key set served from loopback HTTP.

Every bad token is refused (401) for its own reason — wrong issuer, wrong audience, expired,
not yet valid, bad signature, unknown key id, a symmetric or `none` algorithm — and a good
one maps the groups of its roles claim to roles (scopes included). The key set is fetched
once, cached, and fetched again when a token names a key id it does not hold (the issuer
rotated its keys), at most once per `min_refetch_s` (a fake monotonic clock moves time).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http import server
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from drills.service import auth
from tests.api import auth_fixtures

ISSUER = "https://idp.example.test/realms/stormdrill"
AUDIENCE = "stormdrill-api"
GROUP_ROLES = {
    "sre": "admin",
    "payments-oncall": "operator@team-payments",
    "approvers": "approver",
    "everyone": "viewer",
}


def _rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    public: dict[str, Any] = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    return {**public, "kid": kid, "alg": "RS256", "use": "sig"}


@dataclass
class Issuer:
    """A loopback JWKS endpoint (counts its fetches) and the keys that sign the tokens."""

    url: str
    keys: dict[str, rsa.RSAPrivateKey] = field(default_factory=dict)
    published: list[dict[str, Any]] = field(default_factory=list)
    fetches: int = 0

    def publish(self, kid: str) -> None:
        self.keys.setdefault(kid, _rsa_key())
        self.published.append(_jwk(self.keys[kid], kid))

    def token(
        self, *, kid: str | None = "k1", key: rsa.RSAPrivateKey | None = None, **claims: Any
    ) -> str:
        now = int(time.time())
        body: dict[str, Any] = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": "u-1234",
            "preferred_username": "alice",
            "iat": now,
            "exp": now + 600,
            "groups": ["everyone"],
            **claims,
        }
        signer = key or self.keys[kid or "k1"]
        headers = {"kid": kid} if kid is not None else {}
        return jwt.encode(
            {k: v for k, v in body.items() if v is not None}, signer, "RS256", headers=headers
        )


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    state = Issuer(url="")

    class Handler(server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.fetches += 1
            body = json.dumps({"keys": state.published}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: object) -> None:
            pass

    httpd = server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}/protocol/openid-connect/certs"
    state.publish("k1")
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@dataclass
class FakeClock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


def _config(issuer: Issuer, **overrides: Any) -> auth.OidcConfig:
    settings = auth_fixtures.api_settings(
        oidc_issuer=ISSUER,
        oidc_audience=AUDIENCE,
        oidc_jwks_url=issuer.url,
        oidc_group_roles=GROUP_ROLES,
        **overrides,
    )
    config = auth.OidcConfig.from_settings(settings)
    assert config is not None
    return config


def _verifier(issuer: Issuer, clock: FakeClock | None = None) -> auth.OidcVerifier:
    return auth.OidcVerifier(_config(issuer), monotonic=clock or FakeClock())


def test_a_good_token_maps_its_groups_to_roles_and_scopes(issuer: Issuer) -> None:
    token = issuer.token(groups=["everyone", "payments-oncall", "unmapped"])

    principal = _verifier(issuer).verify(token)

    assert principal.name == "u-1234"  # the subject: a username may change, `sub` does not
    assert principal.display_name == "alice"
    assert principal.kind == "oidc"
    assert principal.roles == {auth.Role.VIEWER, auth.Role.OPERATOR}
    assert set(principal.grants) == {
        auth.Grant(role=auth.Role.VIEWER),
        auth.Grant(role=auth.Role.OPERATOR, teams=frozenset({"group:default/team-payments"})),
    }


def test_without_a_group_mapping_the_claim_s_values_are_role_names(issuer: Issuer) -> None:
    settings = auth_fixtures.api_settings(
        oidc_issuer=ISSUER,
        oidc_audience=AUDIENCE,
        oidc_jwks_url=issuer.url,
        oidc_roles_claim="realm_access.roles",
    )
    config = auth.OidcConfig.from_settings(settings)
    assert config is not None
    token = issuer.token(realm_access={"roles": ["approver", "offline_access"]}, groups=None)

    principal = auth.OidcVerifier(config).verify(token)

    assert principal.roles == {auth.Role.APPROVER}


def test_a_token_in_no_mapped_group_is_authenticated_but_holds_no_role(issuer: Issuer) -> None:
    principal = _verifier(issuer).verify(issuer.token(groups=["contractors"]))

    assert principal.roles == frozenset()
    with pytest.raises(auth.Forbidden):
        auth.authorize(principal, auth.Permission.READ)


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"iss": "https://evil.example.test"}, "was not issued by"),
        ({"aud": "another-api"}, "not meant for this API"),
        ({"exp": int(time.time()) - 3600}, "has expired"),
        ({"nbf": int(time.time()) + 3600}, "not valid yet"),
        ({"sub": None}, 'missing the "sub" claim'),
    ],
    ids=["wrong-issuer", "wrong-audience", "expired", "not-yet-valid", "no-subject"],
)
def test_a_token_whose_claims_do_not_check_out_is_refused(
    issuer: Issuer, claims: dict[str, Any], reason: str
) -> None:
    with pytest.raises(auth.Unauthenticated, match=reason):
        _verifier(issuer).verify(issuer.token(**claims))


def test_a_token_signed_by_another_key_under_a_known_key_id_is_refused(issuer: Issuer) -> None:
    forged = issuer.token(kid="k1", key=_rsa_key(), groups=["sre"])

    with pytest.raises(auth.Unauthenticated, match="signature does not verify"):
        _verifier(issuer).verify(forged)


def test_an_unknown_key_id_is_refused_after_fetching_the_keys_again_once(issuer: Issuer) -> None:
    clock = FakeClock()
    verifier = _verifier(issuer, clock)
    verifier.verify(issuer.token())
    assert issuer.fetches == 1
    stranger = issuer.token(kid="k9", key=_rsa_key())

    clock.now += 60
    with pytest.raises(auth.Unauthenticated, match="key id 'k9'"):
        verifier.verify(stranger)
    assert issuer.fetches == 2
    with pytest.raises(auth.Unauthenticated, match="key id 'k9'"):
        verifier.verify(stranger)  # within min_refetch_s: no second fetch
    assert issuer.fetches == 2


def test_rotated_keys_are_fetched_when_a_token_names_the_new_key(issuer: Issuer) -> None:
    clock = FakeClock()
    verifier = _verifier(issuer, clock)
    verifier.verify(issuer.token())
    issuer.publish("k2")

    clock.now += 60
    principal = verifier.verify(issuer.token(kid="k2", groups=["sre"]))

    assert principal.roles == {auth.Role.ADMIN}
    assert issuer.fetches == 2
    verifier.verify(issuer.token(kid="k1"))  # both keys cached now
    assert issuer.fetches == 2


def test_a_token_without_a_key_id_uses_the_only_key_of_the_set(issuer: Issuer) -> None:
    principal = _verifier(issuer).verify(issuer.token(kid=None, groups=["approvers"]))

    assert principal.roles == {auth.Role.APPROVER}


def test_symmetric_and_unsigned_tokens_are_refused(issuer: Issuer) -> None:
    verifier = _verifier(issuer)
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "x", "exp": int(time.time()) + 60}
    hs256 = jwt.encode(claims, "a-shared-secret-of-at-least-32-bytes!", "HS256", {"kid": "k1"})
    unsigned = jwt.encode(claims, "", "none", {"kid": "k1"})

    for token in (hs256, unsigned):
        with pytest.raises(auth.Unauthenticated):
            verifier.verify(token)


def test_garbage_is_not_a_jwt(issuer: Issuer) -> None:
    with pytest.raises(auth.Unauthenticated, match="not a JWT"):
        _verifier(issuer).verify("not.a.jwt")


def test_cached_keys_outlive_an_issuer_outage_and_are_fetched_again_later(
    issuer: Issuer,
) -> None:
    clock = FakeClock()
    down = False
    attempts: list[float] = []

    def fetch(url: str, timeout_s: float) -> bytes:
        attempts.append(clock.now)
        if down:
            raise OSError("connection refused")
        return auth.http_fetch(url, timeout_s)

    verifier = auth.OidcVerifier(_config(issuer), fetch=fetch, monotonic=clock)
    verifier.verify(issuer.token())
    down = True

    clock.now += 3600  # the keys are stale: fetched again, the issuer is down
    verifier.verify(issuer.token())
    clock.now += 10  # within min_refetch_s of the failure: no new attempt
    verifier.verify(issuer.token())
    clock.now += 30
    down = False
    verifier.verify(issuer.token())

    assert attempts == [1000.0, 4600.0, 4640.0]


def test_an_unreachable_key_set_refuses_with_its_url(tmp_path: Path) -> None:
    settings = auth_fixtures.api_settings(
        oidc_issuer=ISSUER,
        oidc_audience=AUDIENCE,
        oidc_jwks_url="http://127.0.0.1:9/certs",  # the discard port: nothing listens
    )
    config = auth.OidcConfig.from_settings(settings)
    assert config is not None

    with pytest.raises(auth.Unauthenticated, match="cannot fetch the issuer's keys from http"):
        auth.OidcVerifier(config).verify(jwt.encode({"sub": "x"}, _rsa_key(), "RS256"))


def test_half_configured_oidc_names_the_missing_settings() -> None:
    settings = auth_fixtures.api_settings(oidc_issuer=ISSUER)

    with pytest.raises(auth.AuthConfigInvalid, match="STORMDRILL_OIDC_AUDIENCE"):
        auth.check_config(settings)


def test_a_group_mapping_to_an_unknown_role_is_refused_at_start_up(issuer: Issuer) -> None:
    settings = auth_fixtures.api_settings(
        oidc_issuer=ISSUER,
        oidc_audience=AUDIENCE,
        oidc_jwks_url=issuer.url,
        oidc_group_roles={"sre": "superuser"},
    )

    with pytest.raises(auth.AuthConfigInvalid, match="'superuser' is not a role"):
        auth.check_config(settings)


# ---- through the API --------------------------------------------------------------------


def test_the_api_accepts_a_good_token_and_refuses_bad_ones_with_401(
    issuer: Issuer, tmp_path: Path
) -> None:
    api = auth_fixtures.api_settings(
        oidc_issuer=ISSUER,
        oidc_audience=AUDIENCE,
        oidc_jwks_url=issuer.url,
        oidc_group_roles=GROUP_ROLES,
    )
    config = auth_fixtures.settings_for(tmp_path)
    with auth_fixtures.client_for(config, api) as client:
        admin = client.get(
            "/api/v1/tokens", headers=auth_fixtures.bearer(issuer.token(groups=["sre"]))
        )
        viewer = client.get(
            "/api/v1/tokens", headers=auth_fixtures.bearer(issuer.token(groups=["everyone"]))
        )
        expired = client.get(
            "/api/v1/tokens",
            headers=auth_fixtures.bearer(issuer.token(groups=["sre"], exp=int(time.time()) - 60)),
        )
        wrong_audience = client.get(
            "/api/v1/tokens",
            headers=auth_fixtures.bearer(issuer.token(groups=["sre"], aud="other")),
        )

    assert admin.status_code == 200, admin.text
    assert viewer.status_code == 403
    assert "alice [sub u-1234] (viewer) may not manage API tokens" in viewer.json()["detail"]
    for refused in (expired, wrong_audience):
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].startswith("Bearer")
        assert refused.headers["content-type"].startswith("application/problem+json")
    assert "expired" in expired.json()["detail"]
    assert issuer.fetches == 1  # the app keeps one verifier: the keys were fetched once
