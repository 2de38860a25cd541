"""The `stormdrill` command line: validate, plan and run drills, recover, and look around.

Each command or command group lives in `drills.commands.*`; this module only names them.
`COMMANDS` lists every command with the one-line help `stormdrill --help` shows, and the
module that implements it is imported only when that command runs (`LazyGroup`): `--help`,
`validate`, `schema` and `scenarios list` never import the sandbox, moto, boto3, kubernetes
or fastapi. Commands that need an optional extra (`stormdrill[sandbox]`) say which one to
install, in one line and with exit code 3, when it is missing.
User mistakes end with a message naming the place and an exit code, never a traceback.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from importlib import metadata
from typing import Any

import typer
import typer.core
import typer.main
from typer import _click as click  # typer vendors click: its group and command classes

from drills.commands import output

MISSING_EXTRA = 3
"""Exit code when a command's optional extra is not installed (`ExitCode.INVALID`)."""

EXTRAS: Mapping[str, frozenset[str]] = {
    "sandbox": frozenset({"moto", "flask", "flask_cors", "werkzeug"}),
}
"""The top-level modules each optional extra of `pyproject.toml` provides."""


@dataclasses.dataclass(frozen=True)
class LazyCommand:
    """A command `stormdrill --help` lists without importing it.

    `target` is `module:attribute`: a command function, or a `typer.Typer` (a group).
    `summary` is the first paragraph of its help (a test checks it matches the command's).
    """

    name: str
    target: str
    summary: str
    extra: str | None = None
    """The `stormdrill[extra]` the command's module needs beyond the core dependencies."""

    def load(self) -> click.Command:
        """The real click command (imports its module; exits 3 if its extra is missing)."""
        module_name, _, attribute = self.target.partition(":")
        try:
            # `__import__`, not `importlib.import_module`: `-X importtime` sees only the former.
            module = __import__(module_name, fromlist=[attribute])
        except ModuleNotFoundError as exc:
            missing = (exc.name or "").partition(".")[0]
            if self.extra is None or missing not in EXTRAS[self.extra]:
                raise
            typer.echo(
                f"error: stormdrill {self.name} needs the {self.extra!r} extra ({missing} is"
                f" not installed): pip install 'stormdrill[{self.extra}]'",
                err=True,
            )
            raise typer.Exit(MISSING_EXTRA) from None
        found = getattr(module, attribute)
        if isinstance(found, typer.Typer):
            group = typer.main.get_group(found)
            group.name = self.name
            return group
        single = typer.Typer(add_completion=False)
        single.command(self.name)(found)
        return typer.main.get_command(single)


COMMANDS: tuple[LazyCommand, ...] = (
    LazyCommand(
        "validate",
        "drills.commands.documents:validate",
        "Check documents: YAML, schema, parameters and semantic lint. Exit 0 when valid, 1 if not.",
    ),
    LazyCommand(
        "schema",
        "drills.commands.documents:schema_command",
        "Print the JSON Schema of each document kind (for yaml-language-server completion).",
    ),
    LazyCommand(
        "plan",
        "drills.commands.running:plan",
        "Dry run: targets, counts vs limits, affected services, guardrail verdicts, rollback plan.",
    ),
    LazyCommand(
        "run",
        "drills.commands.running:run",
        "Run a drill: live view of steps, probes and mutations; Ctrl-C aborts and rolls back.",
    ),
    LazyCommand(
        "abort",
        "drills.commands.running:abort",
        "Ask a running drill to abort (it stops injecting, rolls back and verifies).",
    ),
    LazyCommand(
        "recover",
        "drills.commands.running:recover",
        "Roll back every unfinished run whose orchestrator died; with --env, sweep markers too.",
    ),
    LazyCommand(
        "ack",
        "drills.commands.running:ack",
        "Acknowledge a manual step with evidence (the drill continues).",
    ),
    LazyCommand(
        "actions",
        "drills.commands.running:actions",
        "List every action and probe with its parameters (`--format json` for machines).",
    ),
    LazyCommand(
        "demo",
        "drills.commands.demo:demo",
        "Run the demo on the embedded sandbox (no cluster or cloud account needed).",
        extra="sandbox",
    ),
    LazyCommand(
        "report",
        "drills.commands.reporting:report",
        "Render a run's blameless post-mortem (JSON includes achieved_rto and target_rto, s).",
    ),
    LazyCommand(
        "lint-report",
        "drills.commands.reporting:lint_report",
        "Check a post-mortem is blameless and complete; exit 1 on findings.",
    ),
    LazyCommand(
        "coverage",
        "drills.commands.reporting:coverage",
        "Which services are drilled for which failure modes, how recently, and how well.",
    ),
    LazyCommand("scenarios", "drills.commands.documents:app", "List the bundled scenario library."),
    LazyCommand(
        "cmdb",
        "drills.commands.cmdb:app",
        "Look at the CMDB: services, owners, dependencies and impact.",
    ),
    LazyCommand(
        "sandbox",
        "drills.commands.sandbox:app",
        "Run the local sandbox world (the small shop) for demos and tests.",
        extra="sandbox",
    ),
    LazyCommand(
        "killswitch",
        "drills.commands.running:app_killswitch",
        "Engage or release the global kill switch.",
    ),
    LazyCommand(
        "runs",
        "drills.commands.running:app_runs",
        "List and show drill runs (newest first).",
    ),
    LazyCommand(
        "db",
        "drills.commands.database:app",
        "Show or migrate the run store's schema (Alembic revisions).",
    ),
    LazyCommand(
        "serve",
        "drills.commands.serving:serve",
        "Serve the REST API: runs, plans, approvals, events, metrics; recovers at start-up.",
    ),
    LazyCommand(
        "tokens",
        "drills.commands.tokens:app",
        "Create, list and revoke the API's bearer tokens (stormdrill serve).",
    ),
    LazyCommand(
        "schedules",
        "drills.commands.schedules:app",
        "Schedules: drills that run by themselves (cron, interval or one-off).",
    ),
    LazyCommand(
        "blackouts",
        "drills.commands.blackouts:app",
        "Blackouts: calendars in which no scheduled drill starts (and running ones may abort).",
    ),
    LazyCommand(
        "gamedays",
        "drills.commands.gamedays:app",
        "Game days: planned drills with people, gates, notes and findings.",
    ),
)


class _Deferred(typer.core.TyperCommand):
    """The stand-in `--help` lists for a command that is not imported yet."""

    def __init__(self, spec: LazyCommand) -> None:
        super().__init__(name=spec.name, help=spec.summary)
        self.spec = spec


class LazyGroup(typer.core.TyperGroup):
    """The root group: lists `COMMANDS` as stand-ins, loads a command only to run it."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        for spec in COMMANDS:
            self.commands.setdefault(spec.name, _Deferred(spec))

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        if name is not None and isinstance(command, _Deferred):
            command = command.spec.load()
            self.commands[name] = command
        return name, command, rest


app = typer.Typer(
    name="stormdrill",
    cls=LazyGroup,
    help=(
        "Stormdrill runs chaos and continuity drills (zone failures, third-party outages,"
        " loss of a key person) against Kubernetes and AWS, inside guardrails, and undoes"
        " every fault. Start with `stormdrill scenarios list` and `stormdrill validate PATH`."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"stormdrill {metadata.version('stormdrill')}")
        raise typer.Exit()


@app.callback()
def _root(
    _version: bool = typer.Option(
        False,
        "--version",
        callback=_print_version,
        is_eager=True,
        help="Print the version and exit.",
    ),
    log_level: output.LogLevel | None = typer.Option(
        None, "--log-level", help="Log to stderr from this level (default: warnings only)."
    ),
    log_format: output.LogFormat | None = typer.Option(
        None,
        "--log-format",
        help="text, or json: one JSON object per line with the run id and step.",
    ),
) -> None:
    """The options every command shares: `--version`, `--log-level`, `--log-format`."""
    output.configure_logging(log_level, log_format)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
