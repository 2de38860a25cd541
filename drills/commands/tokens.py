"""`stormdrill tokens create|list|revoke`: the bearer tokens `stormdrill serve` accepts.

`create` prints what the token may do and then the token alone on the last line (shown
once: the store keeps only its digest); `list` shows ids, prefixes, roles and status (never
a secret; `--format json|yaml` prints `drills.service.tokens.TokenListView`); `revoke ID`
(an id or a prefix) stops a token at once. Whoever can open the store may manage tokens
(the local user is an admin); each create and revoke is written to the audit trail with
principal kind `local`. Mistakes exit 3 with one line naming the fix.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import rich.box
import rich.console
import rich.table
import typer

from drills.commands import output, running
from drills.service import audit, auth, tokens
from orchestrator import engine, journal

app = typer.Typer(
    help="Create, list and revoke the API's bearer tokens (stormdrill serve).",
    no_args_is_help=True,
)

_err = rich.console.Console(stderr=True, highlight=False, soft_wrap=True)

OutputFormat = output.Format


def _fail(message: str) -> typer.Exit:
    _err.print(f"error: {message}", markup=False, soft_wrap=True)
    return typer.Exit(engine.ExitCode.INVALID)


def _audit(store: journal.Journal, *, action: str, target: str) -> None:
    audit.record_cli(
        store,
        action=action,
        target=target,
        command=f"stormdrill {action.replace('token.', 'tokens ')}",
    )


@app.command("create")
def create(
    role: auth.Role = typer.Option(..., "--role", help="viewer, operator, approver or admin."),
    name: str | None = typer.Option(
        None, "--name", help="Who or what holds it (shown in the audit trail and approvals)."
    ),
    expires: str | None = typer.Option(
        None, "--expires", help="Valid for this long (90d, 12h), or 'never' (the default)."
    ),
    team: list[str] = typer.Option(
        [], "--team", help="Scope the role to this team's CMDB services (repeatable)."
    ),
    service: list[str] = typer.Option(
        [], "--service", help="Scope the role to this CMDB service (repeatable)."
    ),
    output_format: OutputFormat = typer.Option(
        OutputFormat.TABLE, "--format", help=output.FORMAT_HELP
    ),
) -> None:
    """Create a token; its secret is printed once, alone on the last line."""
    config = running.load_settings()
    try:
        expires_in = tokens.parse_expires(expires)
    except tokens.TokenInvalid as exc:
        raise _fail(str(exc)) from None
    with running.open_journal(config) as store:
        running.announce_store(config)
        try:
            issued = tokens.create(
                store,
                role=role,
                name=name,
                expires_in=expires_in,
                teams=team,
                services=service,
                created_by=audit.local_user(),
            )
        except tokens.TokenInvalid as exc:
            raise _fail(str(exc)) from None
        _audit(store, action="token.create", target=f"tokens/{issued.token.id}")
    if output_format is not OutputFormat.TABLE:
        view = tokens.IssuedTokenView.from_issued(issued)
        output.emit(output.dump_view(view, output_format), None)
        return
    token = issued.token
    until = f"until {token.expires_at:%Y-%m-%d %H:%M} UTC" if token.expires_at else "no expiry"
    typer.echo(
        f"created token {token.id} ({token.name}): {token.grant.describe(short=True)}, {until}"
    )
    typer.echo("it is shown only now (the store keeps a digest); keep it secret:")
    typer.echo(issued.secret)


@app.command("list")
def list_command(
    active: bool = typer.Option(False, "--active", help="Only tokens neither revoked nor expired."),
    output_format: OutputFormat = typer.Option(
        OutputFormat.TABLE, "--format", help=output.FORMAT_HELP
    ),
    output_path: Path | None = typer.Option(None, "-o", "--output", help=output.OUTPUT_HELP),
) -> None:
    """Tokens, newest first: id, prefix, name, role and scope, status (never a secret)."""
    config = running.load_settings()
    with running.open_journal(config) as store:
        running.announce_store(config)
        found = tokens.list_tokens(store, include_inactive=not active)
    now = datetime.now(UTC)
    view = tokens.TokenListView.from_tokens(found, now=now)
    if output_format is not OutputFormat.TABLE:
        output.emit(output.dump_view(view, output_format), output_path)
        return
    table = rich.table.Table(
        title="API tokens (newest first)", box=rich.box.SIMPLE_HEAD, pad_edge=False
    )
    table.add_column("id", no_wrap=True, min_width=12)
    table.add_column("prefix", no_wrap=True, min_width=13)
    table.add_column("name", overflow="fold", min_width=6)
    table.add_column("role", overflow="fold", min_width=8)
    table.add_column("status", no_wrap=True, min_width=7)
    table.add_column("expires", no_wrap=True, min_width=10)
    table.add_column("last used (UTC)", overflow="fold")
    for token in found:
        table.add_row(
            token.id,
            f"{token.prefix}…",
            token.name,
            token.grant.describe(short=True),
            token.status(now).value,
            f"{token.expires_at:%Y-%m-%d}" if token.expires_at else "never",
            f"{token.last_used_at:%Y-%m-%d %H:%M}" if token.last_used_at else "-",
        )
    output.emit_rich([table], output_path)


@app.command("revoke")
def revoke(
    token_id: str = typer.Argument(..., help="The token's id or prefix (tokens list shows both)."),
) -> None:
    """Revoke a token: it stops working at once (revoking twice is harmless)."""
    config = running.load_settings()
    with running.open_journal(config) as store:
        running.announce_store(config)
        try:
            token = tokens.revoke(store, token_id, by=audit.local_user())
        except tokens.UnknownToken as exc:
            raise _fail(str(exc)) from None
        _audit(store, action="token.revoke", target=f"tokens/{token.id}")
    typer.echo(f"revoked token {token.id} ({token.name}, {token.prefix}…)")
