"""The store's schema: Alembic migrations equal the metadata; old, new and future stores.

Every test runs on SQLite and on the real PostgreSQL (a schema of its own, dropped after).
"""

from __future__ import annotations

import pathlib
import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from alembic import autogenerate, command, migration, script

from drills import settings as settings_mod
from drills import store as store_mod
from drills.service import schema
from orchestrator import journal, states

ROOT = pathlib.Path(__file__).resolve().parents[2]
_S = schema.SchemaState


@pytest.fixture
def bare(store_url: str) -> Iterator[journal.Journal]:
    """The store at `store_url`, reachable and untouched (no tables yet)."""
    with journal.open_store(store_url, create_tables=False) as opened:
        yield opened


def _differences(store: journal.Journal) -> list[object]:
    with store.engine.connect() as conn:
        context = migration.MigrationContext.configure(conn, opts={"compare_type": True})
        return list(autogenerate.compare_metadata(context, schema.load_tables()))


def _tables(store: journal.Journal) -> set[str]:
    with store.engine.connect() as conn:
        return set(sa.inspect(conn).get_table_names())


def _pre_alembic(store: journal.Journal, *, without: tuple[str, ...] = ()) -> states.Run:
    """Make `store` what `create_all` of the base tables left before migrations, with a run."""
    tables = [t for t in schema.BASE_TABLES if t.name not in without]
    with store.engine.begin() as conn:
        journal.metadata.create_all(conn, tables=tables)
    at = datetime(2025, 1, 1, tzinfo=UTC)
    run = states.new_run(
        id=states.RunId("20250101T000000Z-0ld5t0re"),
        scenario="old",
        environment="test",
        environment_source="test.yaml",
        owner=journal.UNCLAIMED,
        at=at,
    )
    return store.create_run(run)


def _set_version(store: journal.Journal, revision: str) -> None:
    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = :v"), {"v": revision})


def test_the_revision_chain_in_the_package_is_the_one_schema_names() -> None:
    scripts = script.ScriptDirectory(str(schema.MIGRATIONS))

    chain = [rev.revision for rev in reversed(list(scripts.walk_revisions()))]

    assert tuple(chain) == schema.REVISIONS
    assert scripts.get_current_head() == schema.HEAD


def test_every_table_module_is_migrated() -> None:
    modules = sorted(f"drills.{p.stem}" for p in (ROOT / "drills").glob("tables_*.py"))

    assert modules == sorted(schema.TABLE_MODULES)


def test_an_empty_store_is_migrated_to_exactly_the_metadata(bare: journal.Journal) -> None:
    assert schema.status(bare).state is _S.EMPTY

    before, after = schema.upgrade(bare)

    assert before.state is _S.EMPTY and before.pending == schema.REVISIONS
    assert after.ok and after.current == schema.HEAD and after.pending == ()
    assert _differences(bare) == []
    assert schema.upgrade(bare) == (after, after)  # again: nothing to do


def test_the_migrations_go_down_to_nothing_and_up_again(bare: journal.Journal) -> None:
    schema.upgrade(bare)
    with bare.engine.begin() as conn:
        command.downgrade(schema.alembic_config_for(conn), "base")
    assert _tables(bare) <= {schema.VERSION_TABLE}

    schema.upgrade(bare)
    assert _differences(bare) == []


def test_a_store_from_before_migrations_is_stamped_at_base_and_upgraded_keeping_its_runs(
    bare: journal.Journal,
) -> None:
    old = _pre_alembic(bare)
    assert schema.status(bare).state is _S.UNVERSIONED

    before, after = schema.upgrade(bare)

    assert before.pending == schema.REVISIONS[1:] and after.ok
    assert _differences(bare) == []
    assert bare.get_run(old.id).scenario == "old"


def test_a_store_from_before_migrations_missing_a_base_table_gets_it(
    bare: journal.Journal,
) -> None:
    _pre_alembic(bare, without=("locks", "killswitch"))

    schema.upgrade(bare)

    assert _differences(bare) == []
    assert bare.killswitch().engaged is False


def test_a_store_whose_old_code_made_some_new_tables_already_is_upgraded(
    bare: journal.Journal,
) -> None:
    _pre_alembic(bare)
    with bare.engine.begin() as conn:  # the journal's create_all of those days made them all
        schema.load_tables().create_all(conn)

    schema.upgrade(bare)

    assert _differences(bare) == []


def test_a_store_one_revision_behind_is_behind_until_upgraded(bare: journal.Journal) -> None:
    schema.upgrade(bare)
    with bare.engine.begin() as conn:
        command.downgrade(schema.alembic_config_for(conn), schema.BASE)
    found = schema.status(bare)
    assert found.state is _S.BEHIND and found.current == schema.BASE
    assert found.pending == schema.REVISIONS[1:]
    with pytest.raises(schema.SchemaOutdated, match="stormdrill db upgrade"):
        schema.require_current(bare)

    schema.upgrade(bare)

    assert schema.require_current(bare).ok


def test_a_store_a_newer_stormdrill_migrated_is_refused_everywhere(bare: journal.Journal) -> None:
    schema.upgrade(bare)
    _set_version(bare, "0099_from_the_future")

    assert schema.status(bare).state is _S.AHEAD
    for refuse in (schema.upgrade, schema.prepare, schema.require_current):
        with pytest.raises(schema.SchemaTooNew, match="Upgrade Stormdrill"):
            refuse(bare)


def test_upgrades_started_together_migrate_once(bare: journal.Journal, store_url: str) -> None:
    results: list[schema.SchemaStatus] = []
    failures: list[BaseException] = []

    def upgrade_from_another_process() -> None:
        with journal.open_store(store_url, create_tables=False) as other:
            try:
                results.append(schema.upgrade(other)[1])
            except BaseException as exc:  # reported below
                failures.append(exc)

    threads = [threading.Thread(target=upgrade_from_another_process) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert failures == []
    assert [r.ok for r in results] == [True, True, True]
    assert _differences(bare) == []


def test_a_table_without_a_migration_is_named_instead_of_failing_later(
    bare: journal.Journal,
) -> None:
    stray = sa.Table(
        "stray_things", journal.metadata, sa.Column("id", sa.Integer, primary_key=True)
    )
    try:
        with pytest.raises(schema.TablesUnmigrated, match="stray_things"):
            schema.upgrade(bare)
    finally:
        journal.metadata.remove(stray)
    assert schema.status(bare).state is _S.EMPTY  # the failed upgrade changed nothing


# ---- the opener's policy (every entry point) ---------------------------------------------


def _settings(url: str, tmp_path: pathlib.Path) -> settings_mod.Settings:
    return settings_mod.Settings(
        data_dir=tmp_path / "data", database_url=url, reports_dir=tmp_path / "reports"
    )


def test_opening_a_new_store_creates_it_at_head(store_url: str, tmp_path: pathlib.Path) -> None:
    with store_mod.open_store(_settings(store_url, tmp_path)) as opened:
        assert schema.require_current(opened).current == schema.HEAD
        assert _differences(opened) == []


def test_opening_an_old_sqlite_store_upgrades_it_and_says_so(
    sqlite_url: str, tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    with journal.open_store(sqlite_url, create_tables=False) as bare:
        old = _pre_alembic(bare)

    with store_mod.open_store(_settings(sqlite_url, tmp_path)) as opened:
        assert schema.status(opened).ok and opened.get_run(old.id).scenario == "old"
    assert any(
        f"upgraded it to {schema.HEAD}" in r.getMessage() and r.levelname == "WARNING"
        for r in caplog.records
    )


def _behind(store: journal.Journal) -> states.Run:
    """A store at the base revision only: made by an older Stormdrill that had migrations."""
    from alembic import command

    run = _pre_alembic(store)
    with store.engine.begin() as conn:
        command.stamp(schema.alembic_config_for(conn), schema.BASE)
    return run


@pytest.mark.postgres
def test_opening_a_postgres_store_behind_a_revision_is_refused_naming_the_command(
    postgres_url: str, tmp_path: pathlib.Path
) -> None:
    with journal.open_store(postgres_url, create_tables=False) as bare:
        _behind(bare)

    with pytest.raises(schema.SchemaOutdated) as refused:
        store_mod.open_store(_settings(postgres_url, tmp_path))

    assert "Run `stormdrill db upgrade`" in str(refused.value)
    assert refused.value.status.state is _S.BEHIND
    with journal.open_store(postgres_url, create_tables=False) as bare:
        assert schema.status(bare).state is _S.BEHIND  # refused, not touched


@pytest.mark.postgres
def test_a_postgres_store_from_before_migrations_is_brought_to_head_on_open(
    postgres_url: str, tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    with journal.open_store(postgres_url, create_tables=False) as bare:
        old = _pre_alembic(bare)

    with (
        caplog.at_level("WARNING"),
        store_mod.open_store(_settings(postgres_url, tmp_path)) as opened,
    ):
        assert schema.status(opened).ok and opened.get_run(old.id).scenario == "old"
    assert any("upgraded it to" in r.getMessage() for r in caplog.records)


@pytest.mark.postgres
def test_serve_refuses_to_start_on_an_old_postgres_schema_naming_the_command(
    postgres_url: str, tmp_path: pathlib.Path
) -> None:
    from fastapi import testclient

    from drills.api import app as app_mod
    from drills.api import config as api_config

    with journal.open_store(postgres_url, create_tables=False) as bare:
        _behind(bare)
    app = app_mod.create_app(
        _settings(postgres_url, tmp_path),
        api_config.ApiSettings(drive_runs=False, recover_on_start=False),
    )

    refused = pytest.raises(schema.SchemaOutdated, match="Run `stormdrill db upgrade`")
    with refused, testclient.TestClient(app):  # entering runs the lifespan: it opens the store
        pass
