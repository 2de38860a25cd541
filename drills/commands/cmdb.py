"""`stormdrill cmdb`: look at the catalog — services, owners, dependencies — and at impact.

`show [REF]` lists every service (or one in detail); `impact REF...` lists what losing
those services reaches; `validate` checks the catalog for CI. The catalog comes from
`--cmdb PATH` (repeatable: files or folders of Backstage descriptors and on-call files),
else `STORMDRILL_CMDB`. Problems go to stderr as `file:line:column: field: message`,
never with a traceback. As in Backstage, an entity with an error is refused and the rest
is used (show and impact say how many were refused, on stderr, and exit 0); `--strict`
makes any error fatal (exit 1), and `validate` exits 1 when there is any error.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import NoReturn, TypeVar

import rich.box
import rich.console
import rich.table
import rich.text
import typer

from drills import settings
from drills.commands import output
from drills.service import catalogs, views
from drills.service import cmdb as cmdb_service
from orchestrator.cmdb import backstage, errors, impact, models
from scenarios import errors as scenario_errors

app = typer.Typer(
    help="Look at the CMDB: services, owners, dependencies and impact.", no_args_is_help=True
)

_T = TypeVar("_T")


OutputFormat = output.Format
"""`--format`: table, json or yaml (`drills.commands.output`)."""
_OUTPUT = typer.Option(None, "-o", "--output", help=output.OUTPUT_HELP)


_CMDB_HELP = (
    "Catalog file or folder (Backstage catalog-info.yaml, on-call YAML); repeat for more. "
    f"Defaults to ${settings.CMDB_ENV_VAR} (paths separated by '{os.pathsep}')."
)
_STRICT_HELP = "Fail (exit 1) if any catalog entity has an error, instead of leaving it out."


@app.command()
def show(
    ref: str | None = typer.Argument(
        None, help="A service to show in detail (e.g. checkout, resource:payments-db)."
    ),
    cmdb: list[Path] | None = typer.Option(None, "--cmdb", help=_CMDB_HELP),
    output_format: OutputFormat = typer.Option(
        OutputFormat.TABLE, "--format", help=output.FORMAT_HELP
    ),
    output_path: Path | None = _OUTPUT,
    strict: bool = typer.Option(False, "--strict", help=_STRICT_HELP),
) -> None:
    """List every service (ref, tier, system, owner, dependencies, RTO), or one in detail."""
    catalog = _load(cmdb, strict=strict)
    if ref is None:
        if output_format is not OutputFormat.TABLE:
            _emit_view(cmdb_service.services(catalog), output_format, output_path)
        else:
            output.emit_rich([_services_table(cmdb_service.sorted_services(catalog))], output_path)
        return
    if output_format is not OutputFormat.TABLE:
        view = _guarded(lambda: cmdb_service.service(catalog, ref))
        _emit_view(view, output_format, output_path)
    else:
        service = _guarded(lambda: cmdb_service.find_service(catalog, ref))
        output.emit_rich([_service_detail(catalog, service)], output_path)


@app.command("impact")
def impact_command(
    refs: list[str] = typer.Argument(..., help="Targeted services, APIs or systems."),
    cmdb: list[Path] | None = typer.Option(None, "--cmdb", help=_CMDB_HELP),
    failure_mode: str | None = typer.Option(
        None, "--failure-mode", help="Show the RTO/RPO for this failure mode (availability-zone…)."
    ),
    output_format: OutputFormat = typer.Option(
        OutputFormat.TABLE, "--format", help=output.FORMAT_HELP
    ),
    output_path: Path | None = _OUTPUT,
    strict: bool = typer.Option(False, "--strict", help=_STRICT_HELP),
) -> None:
    """List the targeted services and everything that depends on them, transitively."""
    catalog = _load(cmdb, strict=strict)
    result = _guarded(lambda: cmdb_service.impact_of(catalog, refs))
    if output_format is not OutputFormat.TABLE:
        view = views.ImpactView.from_impact(result, failure_mode=failure_mode)
        _emit_view(view, output_format, output_path)
    else:
        output.emit_rich([_impact_table(result, failure_mode)], output_path)


@app.command("validate")
def validate_command(
    cmdb: list[Path] | None = typer.Option(None, "--cmdb", help=_CMDB_HELP),
    paths: list[Path] | None = typer.Argument(
        None, help="Catalog files or folders (the same as --cmdb)."
    ),
    output_format: OutputFormat = typer.Option(
        OutputFormat.TABLE, "--format", help=output.FORMAT_HELP
    ),
    output_path: Path | None = _OUTPUT,
) -> None:
    """Check the catalog for CI: every problem, with file:line. Exit 0 when no error, 1 if any."""
    config = settings.Settings.from_env(os.environ)
    resolved = catalogs.catalog_paths(config, None, [*(cmdb or []), *(paths or [])])
    if not resolved:
        _fail([f"no catalog: pass PATH (or --cmdb PATH) or set {settings.CMDB_ENV_VAR}"])
    checked = cmdb_service.check(resolved)
    if output_format is not OutputFormat.TABLE:
        _emit_view(checked.view(), output_format, output_path)
    else:
        for problem in checked.problems:
            typer.echo(_problem_line(problem), err=True)
        entities, errors_found = checked.entities, len(checked.errors)
        output.emit(
            f"{entities} entit{'y' if entities == 1 else 'ies'} loaded,"
            f" {len(checked.refused)} refused, {errors_found} error(s),"
            f" {len(checked.problems) - errors_found} warning(s)\n",
            output_path,
        )
    raise typer.Exit(0 if checked.valid else 1)


def _load(cmdb: Sequence[Path] | None, *, strict: bool) -> models.Catalog:
    config = settings.Settings.from_env(os.environ)
    try:
        catalog = catalogs.require_catalog(config, None, cmdb, strict=strict)
    except catalogs.NoCatalog as exc:
        _fail([str(exc)])
    except errors.CatalogInvalid as exc:
        _fail([_problem_line(p) for p in exc.problems])
    for problem in catalog.problems:
        typer.echo(_problem_line(problem), err=True)
    summary = backstage.refusal_lines(catalog)[-1:]
    for line in summary:
        typer.echo(line, err=True)
    return catalog


def _guarded(action: Callable[[], _T]) -> _T:
    try:
        return action()
    except errors.CmdbError as exc:
        _fail([f"error: {exc}"])


def _problem_line(problem: scenario_errors.Problem) -> str:
    """`file:line:column: field: message` (a warning is marked by `Problem` itself)."""
    return str(problem)


def _fail(lines: Iterable[str]) -> NoReturn:
    for line in lines:
        typer.echo(line, err=True)
    raise typer.Exit(1)


def _emit_view(view: views.View, fmt: output.Format, path: Path | None) -> None:
    output.emit(output.dump_view(view, fmt), path)


_duration = views.duration_text


def _objective_text(
    default: datetime.timedelta | None,
    by_mode: dict[models.FailureMode, datetime.timedelta],
    mode: str | None = None,
) -> str:
    if mode is not None:
        return _duration(by_mode.get(models.FailureMode(mode), default))
    overrides = ", ".join(f"{m} {_duration(v)}" for m, v in sorted(by_mode.items()))
    return f"{_duration(default)} ({overrides})" if overrides else _duration(default)


def ref_text(ref: models.EntityRef | None) -> str:
    """The shortest form of `ref` that `EntityRef.parse` reads back as it (for tables).

    `checkout` for a component in the default namespace (and, where the column names the
    kind, a group or user: an owner); `resource:payments-db`; `component:shop/checkout`.
    """
    return "-" if ref is None else ref.display


_ref_text = ref_text


def _tier_text(service: models.Service) -> str:
    return f"{service.tier} (default)" if service.tier_defaulted else str(service.tier)


def _cell(value: str) -> rich.text.Text:
    return rich.text.Text(value)


def _ref_column(table: rich.table.Table, header: str, refs: Iterable[str]) -> None:
    """A column of refs a person copies: never cut or folded (as wide as its longest ref)."""
    widest = max((len(r) for r in refs), default=len(header))
    table.add_column(header, no_wrap=True, min_width=max(widest, len(header)))


def _text_columns(table: rich.table.Table, *headers: str) -> None:
    """Columns whose long words fold onto the next line instead of ending in `…`."""
    for header in headers:
        table.add_column(header, overflow="fold")


def _services_table(services: Sequence[models.Service]) -> rich.table.Table:
    table = rich.table.Table(title="Services", show_lines=False)
    _ref_column(table, "ref", [_ref_text(s.ref) for s in services])
    table.add_column("tier", no_wrap=True)
    _text_columns(table, "system", "owner", "depends on", "RTO")
    for service in services:
        table.add_row(
            *(
                _cell(v)
                for v in (
                    _ref_text(service.ref),
                    _tier_text(service),
                    _ref_text(service.system),
                    _ref_text(service.owner),
                    ", ".join(_ref_text(r) for r in service.depends_on) or "-",
                    _objective_text(service.objectives.rto, dict(service.objectives.rto_by_mode)),
                )
            )
        )
    return table


def _service_detail(catalog: models.Catalog, service: models.Service) -> rich.table.Table:
    table = rich.table.Table(title=str(service.ref), show_header=False)
    table.add_column("field", style="bold", no_wrap=True)
    table.add_column("value", overflow="fold")
    objectives = service.objectives
    people = service.people
    rows = [
        ("title", service.title or "-"),
        ("kind / type", f"{service.kind.value} / {service.type}"),
        ("lifecycle", service.lifecycle or "-"),
        ("system", _ref_text(service.system)),
        ("owner", _ref_text(service.owner)),
        ("owners (people)", _refs_text(people.owners)),
        ("tier", _tier_text(service)),
        ("RTO", _objective_text(objectives.rto, dict(objectives.rto_by_mode))),
        ("RPO", _objective_text(objectives.rpo, dict(objectives.rpo_by_mode))),
        (
            "depends on",
            ", ".join(f"{_ref_text(d.ref)} ({d.type.value})" for d in service.dependencies) or "-",
        ),
        ("used by", _refs_text(s.ref for s in catalog.dependents(service.ref))),
        ("vendors", ", ".join(_vendor_text(v) for v in service.vendors) or "-"),
        ("vendor endpoint", _vendor_text(service.vendor) if service.vendor else "-"),
        ("kubernetes", _kubernetes_text(service.kubernetes)),
        ("aws", _aws_text(service.aws)),
        ("on-call", _on_call_text(catalog, service)),
        ("break-glass", _refs_text(people.break_glass)),
        ("runbook owner", _ref_text(people.runbook_owner)),
        ("runbook editors", _refs_text(people.runbook_editors)),
        ("repo path", people.repo_path or "-"),
        ("source", str(service.source)),
    ]
    for field, value in rows:
        table.add_row(_cell(field), _cell(value))
    return table


def _refs_text(refs: Iterable[models.EntityRef]) -> str:
    return ", ".join(_ref_text(r) for r in refs) or "-"


def _vendor_text(vendor: models.Vendor) -> str:
    ports = ",".join(str(p) for p in vendor.ports)
    cidrs = ",".join(str(c) for c in vendor.cidrs) or "no CIDR"
    return f"{_ref_text(vendor.ref)} {cidrs}" + (f" port {ports}" if ports else "")


def _kubernetes_text(placement: models.KubernetesPlacement) -> str:
    if not placement.selectors:
        return "-"
    parts = [" or ".join(str(s) for s in placement.selectors)]
    if placement.namespaces:
        parts.append(f"namespace {','.join(placement.namespaces)}")
    if placement.clusters:
        parts.append(f"cluster {','.join(placement.clusters)}")
    return "; ".join(parts)


def _aws_text(placement: models.AwsPlacement) -> str:
    parts = []
    if placement.tags:
        parts.append("tags " + ",".join(f"{k}={v}" for k, v in placement.tags.items()))
    if placement.resources:
        parts.append(",".join(str(r) for r in placement.resources))
    if placement.regions:
        parts.append("regions " + ",".join(placement.regions))
    if placement.zones:
        parts.append("zones " + ",".join(placement.zones))
    return "; ".join(parts) or "-"


def _on_call_text(catalog: models.Catalog, service: models.Service) -> str:
    parts = []
    for rotation in catalog.rotations_for(service.ref):
        layers = "; ".join(
            f"{layer.name}: {_refs_text(layer.members)}" for layer in rotation.layers
        )
        parts.append(f"{rotation.name} ({layers})")
    return " | ".join(parts) or "-"


def _via(path: Sequence[models.EntityRef], *, single: bool) -> str:
    """The services between a target and a reached one (`payments, checkout`), target first.

    With one target (named in the title) only the hops in between are shown; with several,
    the path starts at the target it came from (`from resource:db: payments`).
    """
    between = ", ".join(_ref_text(r) for r in path[1:-1]) or "-"
    if single or not path:
        return between
    return f"from {_ref_text(path[0])}: {between}"


def _impact_table(result: impact.Impact, mode: str | None) -> rich.table.Table:
    title = "Impact of losing " + ", ".join(_ref_text(t) for t in result.targets)
    # Refs are never cut or folded (people copy them into `cmdb show`); a path wraps between
    # refs, never inside one; the objectives fold. Light borders, so 80 columns hold it.
    table = rich.table.Table(title=title, box=rich.box.SIMPLE_HEAD, pad_edge=False)
    _ref_column(table, "ref", [_ref_text(item.ref) for item in result.services])
    table.add_column("tier", no_wrap=True)
    table.add_column("hops", no_wrap=True)
    single = len(result.targets) == 1
    vias = [_via(item.path, single=single) for item in result.services]
    hops = [_ref_text(r) for item in result.services for r in item.path[1:-1]]
    table.add_column("via", overflow="fold", min_width=max((len(h) + 1 for h in hops), default=3))
    _ref_column(table, "owner", [_ref_text(item.owner) for item in result.services])
    for header in ("RTO", "RPO"):
        table.add_column(header, overflow="fold", min_width=3)
    for item, via in zip(result.services, vias, strict=True):
        objectives = item.objectives
        table.add_row(
            *(
                _cell(v)
                for v in (
                    _ref_text(item.ref),
                    _tier_text(item.service),
                    str(item.distance),
                    via,
                    _ref_text(item.owner),
                    _objective_text(objectives.rto, dict(objectives.rto_by_mode), mode),
                    _objective_text(objectives.rpo, dict(objectives.rpo_by_mode), mode),
                )
            )
        )
    return table
