"""`stormdrill tokens create|list|revoke` on a tmp SQLite store (typer's CliRunner).

The token a command prints is checked against the store through `drills.service.tokens`,
the way `stormdrill serve` checks it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer import testing

from drills import cli
from drills.service import audit, auth, tokens
from orchestrator import journal


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"STORMDRILL_DATABASE_URL": f"sqlite:///{tmp_path / 'store.db'}", "USER": "rita"}


def _run(env: dict[str, str], *args: str) -> testing.Result:
    return testing.CliRunner().invoke(cli.app, list(args), env=env)


def _store(env: dict[str, str]) -> journal.Journal:
    return journal.open_store(env["STORMDRILL_DATABASE_URL"])


def test_create_prints_the_token_alone_on_its_last_line_and_it_authenticates(
    env: dict[str, str],
) -> None:
    done = _run(
        env,
        "tokens",
        "create",
        "--role",
        "operator",
        "--name",
        "ci",
        "--expires",
        "90d",
        "--team",
        "team-payments",
    )

    assert done.exit_code == 0, done.output
    lines = done.stdout.splitlines()
    secret = lines[-1]
    assert secret.startswith("sdt_") and " " not in secret
    assert "operator of team-payments" in done.stdout
    assert "until " in done.stdout
    with _store(env) as store:
        principal = tokens.authenticate(store, secret)
        trail = audit.entries(store)
    assert principal.name == "ci"
    assert principal.roles == {auth.Role.OPERATOR}
    assert principal.teams == {"group:default/team-payments"}
    assert [(e.action, e.principal, e.principal_kind) for e in trail] == [
        ("token.create", "rita", "local")
    ]


def test_list_shows_ids_prefixes_and_status_and_never_a_secret(env: dict[str, str]) -> None:
    secret = _run(env, "tokens", "create", "--role", "viewer").stdout.splitlines()[-1]

    table = _run(env, "tokens", "list")
    as_json = _run(env, "tokens", "list", "--format", "json")

    assert table.exit_code == 0 and as_json.exit_code == 0
    assert secret not in table.output and secret not in as_json.output
    assert secret[:12] in table.stdout
    (listed,) = json.loads(as_json.stdout)["tokens"]
    assert listed["prefix"] == secret[:12]
    assert (listed["role"], listed["status"], listed["created_by"]) == ("viewer", "active", "rita")
    assert "token" not in listed


def test_revoke_stops_the_token_and_list_says_so(env: dict[str, str]) -> None:
    secret = _run(env, "tokens", "create", "--role", "admin").stdout.splitlines()[-1]
    token_id = json.loads(_run(env, "tokens", "list", "--format", "json").stdout)["tokens"][0]["id"]

    done = _run(env, "tokens", "revoke", token_id)

    assert done.exit_code == 0, done.output
    assert f"revoked token {token_id}" in done.stdout
    with _store(env) as store, pytest.raises(auth.Unauthenticated, match="revoked"):
        tokens.authenticate(store, secret)
    listed = json.loads(_run(env, "tokens", "list", "--format", "json").stdout)["tokens"]
    assert listed[0]["status"] == "revoked"
    assert listed[0]["revoked_by"] == "rita"
    active = json.loads(_run(env, "tokens", "list", "--active", "--format", "json").stdout)
    assert active["tokens"] == []


def test_revoke_by_prefix_works_too(env: dict[str, str]) -> None:
    secret = _run(env, "tokens", "create", "--role", "viewer").stdout.splitlines()[-1]

    done = _run(env, "tokens", "revoke", secret[:12])

    assert done.exit_code == 0, done.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("create", "--role", "viewer", "--expires", "soon"), "--expires 'soon'"),
        (("create", "--role", "viewer", "--team", "component:web"), "name a group"),
        (("revoke", "nope"), "no token with id or prefix 'nope'"),
    ],
)
def test_mistakes_exit_3_with_one_line_naming_the_fix(
    env: dict[str, str], args: tuple[str, ...], message: str
) -> None:
    done = _run(env, "tokens", *args)

    assert done.exit_code == 3, done.output
    assert message in done.stderr
    assert "Traceback" not in done.output


def test_an_unknown_role_is_a_usage_error(env: dict[str, str]) -> None:
    done = _run(env, "tokens", "create", "--role", "superuser")

    assert done.exit_code == 2
    assert "superuser" in done.output


def test_create_as_json_holds_the_token_once(env: dict[str, str]) -> None:
    done = _run(env, "tokens", "create", "--role", "approver", "--format", "json")

    assert done.exit_code == 0, done.output
    body = json.loads(done.stdout)
    assert body["token"].startswith(body["prefix"])
    assert body["role"] == "approver"
