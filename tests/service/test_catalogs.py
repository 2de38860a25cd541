"""`catalogs`: the one rule that picks a command's or a run's CMDB, and loading it."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from drills import settings
from drills.service import catalogs
from orchestrator import states
from orchestrator.cmdb import errors as cmdb_errors
from tests.cmdb import factories as cmdb_factories
from tests.service import environments

BROKEN = """\
apiVersion: backstage.io/v1alpha1
kind: Component
metadata: {name: broken}
spec: {type: service, lifecycle: production}
"""


def _config(env: dict[str, str] | None = None) -> settings.Settings:
    return settings.Settings.from_env(env or {})


def test_catalog_for_loads_the_explicit_paths_first() -> None:
    config = _config({"STORMDRILL_CMDB": "/nowhere"})
    environment = environments.environment(cmdb=[Path("/also/nowhere")])
    catalog = catalogs.catalog_for(config, environment, [cmdb_factories.SAMPLE])
    assert catalog is not None
    assert any(ref.name == "checkout" for ref in catalog.services)


def test_catalog_for_uses_the_environments_cmdb_before_the_variable() -> None:
    config = _config({"STORMDRILL_CMDB": "/nowhere"})
    environment = environments.environment(cmdb=[cmdb_factories.SAMPLE])
    catalog = catalogs.catalog_for(config, environment, ())
    assert catalog is not None
    assert catalog.services


def test_catalog_for_falls_back_to_the_settings_paths() -> None:
    config = _config({"STORMDRILL_CMDB": str(cmdb_factories.SAMPLE)})
    catalog = catalogs.catalog_for(config, environments.environment(), None)
    assert catalog is not None
    assert catalog.services


def test_catalog_for_gives_none_when_nothing_names_a_catalog() -> None:
    assert catalogs.catalog_for(_config(), None, ()) is None


def test_catalog_for_strict_refuses_a_catalog_with_an_error(tmp_path: Path) -> None:
    path = tmp_path / "catalog-info.yaml"
    path.write_text(BROKEN, encoding="utf-8")
    paths = [cmdb_factories.SAMPLE, path]
    lenient = catalogs.catalog_for(_config(), None, paths)
    assert lenient is not None
    assert [r.what for r in lenient.refused]
    with pytest.raises(cmdb_errors.CatalogInvalid) as raised:
        catalogs.catalog_for(_config(), None, paths, strict=True)
    assert any(p.file == str(path) for p in raised.value.problems)


def test_require_catalog_says_how_to_name_one() -> None:
    with pytest.raises(catalogs.NoCatalog, match="pass --cmdb PATH or set STORMDRILL_CMDB"):
        catalogs.require_catalog(_config(), None, None)
    found = catalogs.require_catalog(_config(), None, [cmdb_factories.SAMPLE])
    assert found.services


def _run(environment_source: str) -> states.Run:
    return states.new_run(
        id=states.RunId("20250101T000000Z-00000000"),
        scenario="s",
        environment="e",
        environment_source=environment_source,
        owner=states.Owner(host="h", pid=1, token="t"),
        at=dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
    )


def test_recorded_environment_reads_the_file_the_run_recorded(tmp_path: Path) -> None:
    path = tmp_path / "e.environment.yaml"
    path.write_text(
        "apiVersion: stormdrill.dev/v1\nkind: Environment\nmetadata: {name: e}\n"
        f"spec:\n  cmdb:\n    backstage: [{cmdb_factories.SAMPLE}]\n",
        encoding="utf-8",
    )
    environment = catalogs.recorded_environment(_run(str(path)))
    assert environment is not None
    assert environment.metadata.name == "e"
    assert catalogs.catalog_paths(_config(), environment, ()) == (cmdb_factories.SAMPLE,)


def test_recorded_environment_is_none_once_the_file_is_gone(tmp_path: Path) -> None:
    assert catalogs.recorded_environment(_run(str(tmp_path / "gone.yaml"))) is None
