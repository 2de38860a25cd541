"""Where the catalog is loaded from: --cmdb, the Environment, or STORMDRILL_CMDB."""

from __future__ import annotations

import os
from pathlib import Path

from drills import settings
from drills.service import catalogs
from tests.service import environments


def test_explicit_paths_win_over_the_environment_and_the_variable() -> None:
    config = settings.Settings.from_env({"STORMDRILL_CMDB": "/from/env"})
    environment = environments.environment(cmdb=[Path("/env/catalog")])
    paths = catalogs.catalog_paths(config, environment, [Path("a.yaml")])
    assert paths == (Path("a.yaml"),)


def test_environment_paths_win_over_the_variable() -> None:
    config = settings.Settings.from_env({"STORMDRILL_CMDB": "/from/env"})
    environment = environments.environment(cmdb=[Path("/env/catalog")])
    assert catalogs.catalog_paths(config, environment, None) == (Path("/env/catalog"),)


def test_the_variable_holds_several_paths_separated_like_path() -> None:
    config = settings.Settings.from_env(
        {"STORMDRILL_CMDB": f"one.yaml{os.pathsep}{os.pathsep} {os.pathsep}folder"}
    )
    assert catalogs.catalog_paths(config, None, []) == (Path("one.yaml"), Path("folder"))


def test_nothing_configured_gives_no_paths() -> None:
    assert catalogs.catalog_paths(settings.Settings.from_env({}), None, None) == ()
