"""Catalogs: the one place that decides which CMDB a command or a run uses.

Precedence: the paths given explicitly (`--cmdb`, repeatable), else the Environment's
`cmdb.backstage` paths (already resolved against its file's folder), else the paths of
`STORMDRILL_CMDB` as `Settings.cmdb_paths` holds them. No paths: no catalog (None), and
a command that cannot do without one raises `NoCatalog`. Invariants: nothing here reads
the process environment (that is `Settings.from_env`'s job); a run's report uses the CMDB
of the Environment the run recorded, by the same rule.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from drills import settings as settings_mod
from orchestrator import states
from orchestrator.cmdb import backstage
from orchestrator.cmdb import models as cmdb_models
from scenarios import errors, loading, models


class NoCatalog(errors.StormdrillError):
    """A command that needs the CMDB was given none (no --cmdb, Environment or variable)."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(
            message or f"no catalog: pass --cmdb PATH or set {settings_mod.CMDB_ENV_VAR}"
        )


def catalog_paths(
    config: settings_mod.Settings,
    environment: models.Environment | None,
    explicit: Sequence[Path] | None,
) -> tuple[Path, ...]:
    """Where the catalog comes from: explicit, else the Environment's, else the settings'."""
    if explicit:
        return tuple(explicit)
    if environment is not None and environment.spec.cmdb is not None:
        return tuple(environment.spec.cmdb.backstage)
    return tuple(config.cmdb_paths)


def catalog_for(
    config: settings_mod.Settings,
    environment: models.Environment | None,
    explicit: Sequence[Path] | None,
    *,
    strict: bool = False,
) -> cmdb_models.Catalog | None:
    """The CMDB by the precedence above; None when nothing names one.

    Lenient by default (refused entities are left out, listed in `Catalog.refused`);
    `strict` raises `CatalogInvalid` on any error instead.
    """
    paths = catalog_paths(config, environment, explicit)
    if not paths:
        return None
    return backstage.load_catalog(paths, strict=strict)


def require_catalog(
    config: settings_mod.Settings,
    environment: models.Environment | None,
    explicit: Sequence[Path] | None,
    *,
    strict: bool = False,
) -> cmdb_models.Catalog:
    """`catalog_for`, for commands that need a catalog: raises `NoCatalog` when none is named."""
    catalog = catalog_for(config, environment, explicit, strict=strict)
    if catalog is None:
        raise NoCatalog()
    return catalog


def recorded_environment(run: states.Run) -> models.Environment | None:
    """The Environment a run recorded, when its file is still there (None otherwise)."""
    path = Path(run.environment_source)
    if not path.is_file():
        return None
    return loading.load_environment(path).model
