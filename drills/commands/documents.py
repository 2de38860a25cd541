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

import rich.console
import rich.table
import typer

from orchestrator.providers import builtin
from scenarios import errors, library, linting, loading, models, schema

app = typer.Typer(help="List the bundled scenario library.", no_args_is_help=True)


class OutputFormat(enum.StrEnum):
    TEXT = "text"
    JSON = "json"


def validate(
    paths: list[Path] = typer.Argument(
        ..., help="Scenario, Drill or Environment files or folders."
    ),
    output_format: OutputFormat = typer.Option(OutputFormat.TEXT, "--format", help="text or json."),
) -> None:
    """Check documents: YAML, schema, parameters and semantic lint. Exit 0 when valid, 1 if not."""
    result, problems = check_paths(paths)
    errors_found = [p for p in problems if p.severity == "error"]
    if output_format is OutputFormat.JSON:
        typer.echo(
            json.dumps(
                {
                    "valid": not errors_found,
                    "documents": [
                        {"kind": d.kind.value, "name": d.name, "file": str(d.source.path)}
                        for d in result.documents
                    ],
                    "problems": [
                        {
                            "file": p.file,
                            "line": p.line,
                            "column": p.column,
                            "field": p.field,
                            "message": p.message,
                            "hint": p.hint,
                            "severity": p.severity,
                        }
                        for p in problems
                    ],
                    "blocked": [
                        {"file": b.file, "line": b.line, "checks": list(b.checks)}
                        for b in result.blocked
                    ],
                },
                indent=2,
            )
        )
    else:
        console = rich.console.Console(stderr=True, highlight=False, soft_wrap=True)
        for problem in problems:
            console.print(str(problem), markup=False)
        for blocked in result.blocked:
            console.print(str(blocked), markup=False)
        shown = rich.console.Console(highlight=False)
        shown.print(
            f"{len(result.documents)} document(s), {len(errors_found)} error(s),"
            f" {len(problems) - len(errors_found)} warning(s)"
        )
    raise typer.Exit(1 if errors_found else 0)


def check_paths(paths: list[Path]) -> tuple[loading.LoadResult, list[errors.Problem]]:
    """The loaded documents, and every problem of loading and linting them (built-in registry).

    Scenarios left out for their problems are linted too, as far as they could be salvaged
    (`LoadResult.partial`), so one run reports every problem a file has.
    """
    result = loading.load_documents(paths)
    catalog = builtin.registry_with_builtins().catalog()
    problems = list(result.problems)
    problems.extend(linting.lint(result.documents, catalog=catalog))
    for partial in result.partial:
        problems.extend(partial.adjust(linting.lint([partial.document], catalog=catalog)))
    unique = loading.unique_problems(problems)
    return result, sorted(unique, key=lambda p: (p.file, p.line, p.column, p.field))


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
def list_scenarios() -> None:
    """List the bundled scenarios: name, failure mode, and what they do."""
    result = loading.load_documents(library.bundled_paths())
    table = rich.table.Table(title="Bundled scenarios")
    table.add_column("name", style="bold")
    table.add_column("failure mode")
    table.add_column("RTO")
    table.add_column("description", overflow="fold")
    for doc in sorted(result.scenarios(), key=lambda d: d.name):
        spec = doc.model.spec
        rto = spec.objectives.rto
        table.add_row(
            doc.name,
            spec.failure_mode.value,
            str(rto) if rto is not None else "-",
            spec.description,
        )
    rich.console.Console().print(table)
    for problem in result.problems:
        typer.echo(str(problem), err=True)


def show_path(name: str) -> Path:
    """The file of a bundled scenario (for `stormdrill scenarios show`)."""
    return library.find(name)
