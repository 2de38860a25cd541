"""One store (issue 11, item 8): a project folder carries its own run store, found upward
from the working directory like git; every `runs`/`coverage` output names the store read;
the demo writes where a plain `stormdrill runs list` in the project reads.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer import testing

from drills import cli, settings
from drills.commands import demo
from orchestrator import journal, records, states
from tests.cmdb import factories as cmdb_factories

_UNSET: dict[str, str | None] = {
    "STORMDRILL_DATABASE_URL": None,
    "STORMDRILL_DATA_DIR": None,
    "STORMDRILL_REPORTS_DIR": None,
    "COLUMNS": "200",
}


def _seed_one(url: str, run_id: str) -> None:
    run = states.new_run(
        id=states.RunId(run_id),
        scenario="az-failure-kubernetes",
        environment="sandbox",
        environment_source="sandbox/environment.yaml",
        owner=states.Owner(host="test-host", pid=4242, token="boot:1"),
        at=datetime(2025, 3, 1, 11, 0, tzinfo=UTC),
        record=records.RunRecord(parameters={}, time_scale=1.0),
    )
    with journal.open_store(url) as store:
        store.create_run(dataclasses.replace(run, state=states.RunState.COMPLETED))


def test_a_stormdrill_folder_found_upward_is_the_project_store(tmp_path: Path) -> None:
    (tmp_path / ".stormdrill").mkdir()
    nested = tmp_path / "scenarios" / "mine"
    nested.mkdir(parents=True)

    config = settings.Settings.from_env({}, cwd=nested)

    assert config.database_url == f"sqlite:///{tmp_path / '.stormdrill' / 'stormdrill.db'}"
    assert config.data_dir == tmp_path / ".stormdrill"
    assert config.reports_dir == tmp_path / ".stormdrill" / "reports"
    assert config.store_origin == f"the project store of {tmp_path / '.stormdrill'}"


def test_a_stormdrill_toml_names_the_database_url_relative_to_itself(tmp_path: Path) -> None:
    (tmp_path / "stormdrill.toml").write_text('database_url = "sqlite:///runs/drills.db"\n')
    (tmp_path / "sub").mkdir()

    config = settings.Settings.from_env({}, cwd=tmp_path / "sub")

    assert config.database_url == f"sqlite:///{tmp_path / 'runs' / 'drills.db'}"
    assert str(tmp_path / "stormdrill.toml") in config.store_origin


def test_a_stormdrill_toml_without_a_database_url_uses_the_project_folder(tmp_path: Path) -> None:
    (tmp_path / "stormdrill.toml").write_text("# a project\n")

    found = settings.find_project(tmp_path)

    assert found is not None and found.root == tmp_path
    assert found.database_url == f"sqlite:///{tmp_path / '.stormdrill' / 'stormdrill.db'}"


def test_an_unreadable_stormdrill_toml_is_refused_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "stormdrill.toml").write_text("database_url = [1\n")
    with pytest.raises(settings.SettingsInvalid) as caught:
        settings.find_project(tmp_path)
    assert str(tmp_path / "stormdrill.toml") in str(caught.value)

    (tmp_path / "stormdrill.toml").write_text("database_url = 5\n")
    with pytest.raises(settings.SettingsInvalid, match="database_url must be a URL string"):
        settings.find_project(tmp_path)


def test_the_environment_wins_over_the_project_store(tmp_path: Path) -> None:
    (tmp_path / ".stormdrill").mkdir()

    by_url = settings.Settings.from_env({"STORMDRILL_DATABASE_URL": "sqlite:///x.db"}, cwd=tmp_path)
    by_dir = settings.Settings.from_env({"STORMDRILL_DATA_DIR": "/data"}, cwd=tmp_path)

    assert (by_url.database_url, by_url.store_origin) == (
        "sqlite:///x.db",
        "STORMDRILL_DATABASE_URL",
    )
    assert (by_dir.database_url, by_dir.store_origin) == (
        "sqlite:////data/stormdrill.db",
        "STORMDRILL_DATA_DIR",
    )


def test_without_a_project_the_per_user_default_is_used(tmp_path: Path) -> None:
    assert settings.find_project(tmp_path) is None  # nothing above the test's tmp dir
    config = settings.Settings.from_env({}, cwd=tmp_path)
    assert config.store_origin == "the per-user default"
    assert config.database_url.endswith("/stormdrill/stormdrill.db")


def test_the_store_line_masks_the_password() -> None:
    config = settings.Settings.from_env(
        {"STORMDRILL_DATABASE_URL": "postgresql+psycopg://drill:s3cret@db:5432/runs"}
    )
    line = config.store_line()
    assert line == "store: postgresql+psycopg://drill:***@db:5432/runs (STORMDRILL_DATABASE_URL)"


def test_runs_list_in_a_project_reads_its_store_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".stormdrill").mkdir()
    url = f"sqlite:///{tmp_path / '.stormdrill' / 'stormdrill.db'}"
    _seed_one(url, "20250301T110000Z-3f9a1c2b")
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")

    result = testing.CliRunner().invoke(cli.app, ["runs", "list"], env=_UNSET)

    assert result.exit_code == 0, result.output
    assert "3f9a1c2b" in result.stdout
    assert result.stderr.splitlines() == [
        f"store: {url} (the project store of {tmp_path / '.stormdrill'})"
    ]


def test_a_broken_project_toml_ends_runs_list_with_exit_3_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "stormdrill.toml").write_text("database_url = \n")
    monkeypatch.chdir(tmp_path)

    result = testing.CliRunner().invoke(cli.app, ["runs", "list"], env=_UNSET)

    assert result.exit_code == 3
    assert str(tmp_path / "stormdrill.toml") in result.stderr
    assert "Traceback" not in result.output


def test_coverage_names_the_store_it_read(sqlite_url: str) -> None:
    env = {"STORMDRILL_DATABASE_URL": sqlite_url, "COLUMNS": "200"}
    args = ["coverage", "--cmdb", str(cmdb_factories.SAMPLE), "--format", "json"]

    result = testing.CliRunner().invoke(cli.app, args, env=env)

    assert result.exit_code == 0, result.output
    assert f"store: {sqlite_url} (STORMDRILL_DATABASE_URL)" in result.stderr.splitlines()


def test_the_demo_writes_to_the_project_store_when_its_state_dir_is_in_it(
    tmp_path: Path,
) -> None:
    state_dir = tmp_path / ".stormdrill" / "demo"
    state_dir.mkdir(parents=True)
    url = demo.demo_store_url(state_dir)
    here = settings.Settings.from_env({}, cwd=tmp_path)

    assert url == f"sqlite:///{tmp_path / '.stormdrill' / 'stormdrill.db'}" == here.database_url
    assert demo.list_command(url, here) == "stormdrill runs list"


def test_the_demo_elsewhere_keeps_its_own_store_and_prints_how_to_read_it(
    tmp_path: Path,
) -> None:
    state_dir = tmp_path / "scratch"
    state_dir.mkdir()
    url = demo.demo_store_url(state_dir)
    here = settings.Settings.from_env({}, cwd=tmp_path)

    assert url == f"sqlite:///{state_dir / 'stormdrill.db'}"
    assert demo.list_command(url, here) == f"STORMDRILL_DATABASE_URL={url} stormdrill runs list"
