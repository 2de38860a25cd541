"""`stormdrill validate`, `schema` and `scenarios list`: the scenario language from the terminal.

`validate PATH...` loads files and folders, lints them against the engine's catalog of
actions and probes, and prints every problem as `file:line:column: field: message`
(or JSON with `--format json`); it exits 0 when there is no error, 1 otherwise. Every
problem of a file is reported in one run; where a check cannot run until earlier errors are
fixed, a last line says which checks wait.
"""

from __future__ import annotations

import enum
import json
from pathlib import Path

import rich.table
import typer

from drills.commands import output as output_mod
from drills.service import scenarios as scenarios_service
from scenarios import errors, library, loading, models, schema

app = typer.Typer(help="List the bundled scenario library.", no_args_is_help=True)


class ValidateFormat(enum.StrEnum):
    """`validate --format`: problems as lines (`text`, alias `table`), or the view."""

    TEXT = "text"
    TABLE = "table"
    JSON = "json"
    YAML = "yaml"


def validate(
    paths: list[Path] = typer.Argument(
        ..., help="Scenario, Drill or Environment files or folders."
    ),
    output_format: ValidateFormat = typer.Option(
        ValidateFormat.TEXT,
        "--format",
        help="text (alias table): one line per problem; json or yaml: the whole result.",
    ),
    output: Path | None = typer.Option(None, "--output", "-o", help=output_mod.OUTPUT_HELP),
) -> None:
    """Check documents: YAML, schema, parameters and semantic lint. Exit 0 when valid, 1 if not."""
    checked = scenarios_service.check(paths)
    if output_format in (ValidateFormat.JSON, ValidateFormat.YAML):
        view = scenarios_service.validation_view(checked)
        output_mod.emit(output_mod.dump_view(view, output_mod.Format(output_format.value)), output)
    else:
        lines = [str(problem) for problem in checked.problems]
        lines.extend(str(blocked) for blocked in checked.result.blocked)
        errors_found = len(checked.errors)
        summary = (
            f"{len(checked.result.documents)} document(s), {errors_found} error(s),"
            f" {len(checked.problems) - errors_found} warning(s)"
        )
        if output is not None:
            output_mod.emit("".join(f"{line}\n" for line in [*lines, summary]), output)
        else:
            for line in lines:
                typer.echo(line, err=True)
            typer.echo(summary)
    raise typer.Exit(0 if checked.valid else 1)


def check_paths(paths: list[Path]) -> tuple[loading.LoadResult, list[errors.Problem]]:
    """The loaded documents and every problem of loading and linting them (see the service)."""
    checked = scenarios_service.check(paths)
    return checked.result, list(checked.problems)


def schema_command(
    kind: str | None = typer.Argument(
        None, help="Scenario, Drill or Environment; all when omitted."
    ),
) -> None:
    """Print the JSON Schema of each document kind (for yaml-language-server completion)."""
    if kind is None:
        typer.echo(json.dumps(schema.combined_schema(), indent=2))
        return
    schemas = schema.json_schemas()
    try:
        chosen = models.Kind(kind)
    except ValueError:
        known = ", ".join(k.value for k in models.Kind)
        typer.echo(f"unknown kind '{kind}' (known: {known})", err=True)
        raise typer.Exit(1) from None
    typer.echo(json.dumps(schemas[chosen.value], indent=2))


@app.command("list")
def list_scenarios(
    output_format: output_mod.Format = typer.Option(
        output_mod.Format.TABLE, "--format", help=output_mod.FORMAT_HELP
    ),
    output: Path | None = typer.Option(None, "--output", "-o", help=output_mod.OUTPUT_HELP),
) -> None:
    """List the bundled scenarios: name, failure mode, and what they do."""
    view = scenarios_service.bundled_scenarios()
    if output_format is not output_mod.Format.TABLE:
        output_mod.emit(output_mod.dump_view(view, output_format), output)
    else:
        table = rich.table.Table(title="Bundled scenarios")
        table.add_column("name", style="bold", no_wrap=True)
        table.add_column("failure mode", no_wrap=True)
        table.add_column("RTO", no_wrap=True)
        table.add_column("description", overflow="fold")
        for item in view.scenarios:
            table.add_row(item.name, item.failure_mode, item.rto or "-", item.description)
        output_mod.emit_rich([table], output)
    for problem in view.problems:
        typer.echo(f"{problem.file}:{problem.line}:{problem.column}: {problem.message}", err=True)


def show_path(name: str) -> Path:
    """The file of a bundled scenario (for `stormdrill scenarios show`)."""
    return library.find(name)
