"""`stormdrill report RUN`, `stormdrill lint-report PATH` and `stormdrill coverage`.

- `report` renders a run's blameless post-mortem (Markdown, HTML or JSON) to stdout or
  `-o PATH`; exit 0, or 3 when the run or the catalog cannot be read.
- `lint-report` checks a post-mortem's Markdown (generated or edited by hand); findings
  print as `path:line: rule: message (try: …)`; exit 1 on any finding, 3 if unreadable.
- `coverage` renders the coverage matrix of the CMDB against the policy and the runs in
  the store; exit 0, or 3 on a bad catalog or policy.
The catalog comes from `--cmdb PATH` (repeatable), else (for `report`) the CMDB of the
Environment the run recorded, else `STORMDRILL_CMDB` (`drills.service.catalogs` decides).
The functions are wired into `drills.cli`; `app` holds the same commands for tests and
standalone use.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import enum
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import rich.console
import typer

from drills import binding, settings
from drills.commands import output as output_mod
from drills.commands import running
from drills.service import catalogs, views
from drills.service import coverage as coverage_service
from drills.service import runs as run_service
from orchestrator import engine, states
from orchestrator.cmdb import backstage
from orchestrator.cmdb import errors as cmdb_errors
from orchestrator.cmdb import models as cmdb_models
from reports import (
    coverage_rendering,
    evidence,
    linting,
    pictures,
    postmortem,
    redaction,
    rendering,
)
from scenarios import errors, secrets

app = typer.Typer(help="Post-mortems, the blameless lint and drill coverage.", no_args_is_help=True)

_err = rich.console.Console(stderr=True, highlight=False, soft_wrap=True)

_CMDB_HELP = f"CMDB catalog file or folder (repeatable); defaults to ${settings.CMDB_ENV_VAR}."


@contextlib.contextmanager
def _user_errors() -> Iterator[None]:
    try:
        yield
    except errors.ScenarioInvalid as exc:
        for problem in exc.problems:
            _err.print(str(problem), markup=False)
        raise typer.Exit(engine.ExitCode.INVALID) from None
    except cmdb_errors.CatalogInvalid as exc:
        for problem in exc.problems:
            _err.print(str(problem), markup=False)
        raise typer.Exit(engine.ExitCode.INVALID) from None
    except errors.StormdrillError as exc:
        _err.print(f"error: {secrets.redact(str(exc))}", markup=False)
        raise typer.Exit(engine.ExitCode.INVALID) from None


def _catalog(
    config: settings.Settings,
    explicit: Sequence[Path],
    *,
    run: states.Run | None = None,
    strict: bool = False,
) -> cmdb_models.Catalog | None:
    """The catalog `catalogs.catalog_for` picks (for a run: its Environment's); says what it
    refused on stderr."""
    environment = catalogs.recorded_environment(run) if run is not None and not explicit else None
    catalog = catalogs.catalog_for(config, environment, explicit, strict=strict)
    for line in backstage.refusal_lines(catalog, strict=strict):
        _err.print(line, markup=False, soft_wrap=True)
    return catalog


_STRICT_HELP = "Fail (exit 3) if any CMDB catalog entity has an error, instead of leaving it out."


def _emit(text: str, output: Path | None) -> None:
    if output is None:
        typer.echo(text, nl=False)
        return
    redaction.private_folder(output.parent)
    redaction.write_private(output, text)  # reports are private: 0600 (folders 0700)
    _err.print(f"wrote {output}", markup=False)


class ReportFormat(enum.StrEnum):
    """`report --format`: the post-mortem's formats, plus yaml and the run as JUnit XML."""

    MARKDOWN = "md"
    HTML = "html"
    JSON = "json"
    YAML = "yaml"
    JUNIT = "junit"


class CoverageFormat(enum.StrEnum):
    """`coverage --format`: the matrix's formats, plus yaml (the json view, as YAML)."""

    TABLE = "table"
    MARKDOWN = "md"
    HTML = "html"
    JSON = "json"
    YAML = "yaml"
    CSV = "csv"


def report(
    run_id: str = typer.Argument(
        ...,
        help="The run to report on (see `stormdrill runs list`): an id, a unique prefix, `latest`.",
    ),
    output_format: ReportFormat = typer.Option(
        ReportFormat.MARKDOWN,
        "--format",
        help="md, html, json or yaml (the post-mortem), or junit (the run as JUnit XML).",
    ),
    output: Path | None = typer.Option(None, "-o", "--output", help="Write here, not stdout."),
    cmdb: list[Path] = typer.Option([], "--cmdb", help=_CMDB_HELP),
    strict: bool = typer.Option(False, "--strict", help=_STRICT_HELP),
) -> None:
    """Render a run's blameless post-mortem (JSON includes achieved_rto and target_rto, s)."""
    config = running.load_settings()
    with _user_errors(), running.open_journal(config) as store:
        run_evidence = evidence.load(store, run_service.resolve_id(store, run_id))
        catalog = _catalog(config, cmdb, run=run_evidence.run, strict=strict)
        scenario = evidence.scenario_for(run_evidence.run)
        if output_format is ReportFormat.JUNIT:
            _emit(run_service.junit_xml(store, run_evidence.run.id), output)
            return
        built = postmortem.build_postmortem(run_evidence, scenario, cmdb=catalog)
        figures = (  # HTML shows the timeline and probe pictures, from the redacted report
            pictures.pictures_of(run_evidence, built, redactor=store.redactor)
            if output_format is ReportFormat.HTML
            else None
        )
    if output_format is ReportFormat.YAML:
        data = json.loads(rendering.render(built, rendering.Format.JSON))
        _emit(output_mod.dump(data, output_mod.Format.YAML), output)
        return
    _emit(rendering.render(built, rendering.Format(output_format.value), figures=figures), output)


def lint_report(
    path: Path = typer.Argument(..., help="A post-mortem in Markdown."),
    cmdb: list[Path] = typer.Option([], "--cmdb", help=_CMDB_HELP + " Its users' names."),
) -> None:
    """Check a post-mortem is blameless and complete; exit 1 on findings."""
    with _user_errors():
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise binding.BindingError(f"{path}: cannot read it: {exc.strerror}") from None
        catalog = _catalog(settings.Settings.from_env(os.environ), cmdb)
    findings = linting.lint(text, people=linting.people_names(catalog))
    for finding in findings:
        typer.echo(finding.format(str(path)))
    if findings:
        _err.print(f"{len(findings)} finding(s) in {path}", markup=False)
        raise typer.Exit(1)
    _err.print(f"{path}: blameless and complete", markup=False)


def coverage(
    cmdb: list[Path] = typer.Option([], "--cmdb", help=_CMDB_HELP),
    strict: bool = typer.Option(False, "--strict", help=_STRICT_HELP),
    policy_path: Path | None = typer.Option(
        None, "--policy", help="Coverage policy YAML (default: the shipped policy)."
    ),
    output_format: CoverageFormat = typer.Option(
        CoverageFormat.TABLE, "--format", help="table, md, html, json, yaml or csv."
    ),
    output: Path | None = typer.Option(None, "-o", "--output", help="Write here, not stdout."),
) -> None:
    """Which services are drilled for which failure modes, how recently, and how well."""
    config = running.load_settings()
    with _user_errors():
        catalog = _catalog(config, cmdb, strict=strict)
        if catalog is None:
            raise catalogs.NoCatalog()
        with running.open_journal(config) as store:
            running.announce_store(config)
            now = dt.datetime.now(dt.UTC)
            matrix = coverage_service.matrix(
                store, catalog=catalog, policy_path=policy_path, now=now
            )
            trend = (
                coverage_service.trend(store, catalog=catalog, policy_path=policy_path, now=now)
                if output_format is CoverageFormat.HTML
                else None
            )
    if output_format in (CoverageFormat.JSON, CoverageFormat.YAML):
        view = views.CoverageView.from_matrix(matrix)
        _emit(output_mod.dump_view(view, output_mod.Format(output_format.value)), output)
        return
    if output_format is CoverageFormat.TABLE and output is None:
        console = rich.console.Console(highlight=False)
        for renderable in coverage_rendering.table(matrix):
            console.print(renderable)
        return
    shown = coverage_rendering.render(
        matrix, coverage_rendering.Format(output_format.value), trend=trend
    )
    _emit(shown, output)


app.command("report")(report)
app.command("lint-report")(lint_report)
app.command("coverage")(coverage)
