"""Where the catalog is loaded from: --cmdb, the Environment, or STORMDRILL_CMDB."""

from __future__ import annotations

import os
from pathlib import Path

from orchestrator.cmdb import backstage


def test_explicit_paths_win_over_the_environment_and_the_variable() -> None:
    env = {"STORMDRILL_CMDB": "/from/env"}
    paths = backstage.resolve_catalog_paths(
        [Path("a.yaml")], env, environment=[Path("/env/catalog")]
    )
    assert paths == [Path("a.yaml")]


def test_environment_paths_win_over_the_variable() -> None:
    paths = backstage.resolve_catalog_paths(
        None, {"STORMDRILL_CMDB": "/from/env"}, environment=[Path("/env/catalog")]
    )
    assert paths == [Path("/env/catalog")]


def test_the_variable_holds_several_paths_separated_like_path() -> None:
    env = {"STORMDRILL_CMDB": f"one.yaml{os.pathsep}{os.pathsep}folder"}
    assert backstage.resolve_catalog_paths([], env) == [Path("one.yaml"), Path("folder")]


def test_nothing_configured_gives_no_paths() -> None:
    assert backstage.resolve_catalog_paths(None, {}) == []
