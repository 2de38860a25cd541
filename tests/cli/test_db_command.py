"""`stormdrill db status|upgrade`, and how the other commands treat an old store.

SQLite and the real PostgreSQL (a schema of its own per test): a new store works with no
setup; an old PostgreSQL store is refused by every other command with the command to run,
which `db upgrade` then is.
"""

from __future__ import annotations

import json
import socket

import pytest
import sqlalchemy as sa
from typer import testing

from drills import cli
from drills.service import schema
from orchestrator import engine, journal


def _run(url: str, *args: str) -> testing.Result:
    runner = testing.CliRunner()
    return runner.invoke(
        cli.app, list(args), env={"STORMDRILL_DATABASE_URL": url, "COLUMNS": "200"}
    )


def _pre_alembic(url: str) -> None:
    with journal.open_store(url, create_tables=False) as store, store.engine.begin() as conn:
        journal.metadata.create_all(conn, tables=list(schema.BASE_TABLES))


def _behind(url: str) -> None:
    """A store at the base revision only (an older Stormdrill with migrations made it)."""
    from alembic import command

    _pre_alembic(url)
    with journal.open_store(url, create_tables=False) as store, store.engine.begin() as conn:
        command.stamp(schema.alembic_config_for(conn), schema.BASE)


def test_status_of_a_new_store_says_upgrade_then_upgrade_makes_it_current(store_url: str) -> None:
    before = _run(store_url, "db", "status")
    upgraded = _run(store_url, "db", "upgrade")
    after = _run(store_url, "db", "status", "--format", "json")
    again = _run(store_url, "db", "upgrade")

    assert before.exit_code == 1, before.output
    assert "empty" in before.stdout and "run `stormdrill db upgrade`" in before.stdout
    assert upgraded.exit_code == 0, upgraded.output
    assert f"applied {', '.join(schema.REVISIONS)}" in upgraded.stdout
    assert after.exit_code == 0
    assert json.loads(after.stdout) | {"url": "-"} == {
        "url": "-",
        "current": schema.HEAD,
        "head": schema.HEAD,
        "state": "current",
        "ok": True,
        "pending": [],
    }
    assert again.exit_code == 0 and "already current" in again.stdout


def test_any_command_on_a_new_store_just_works(store_url: str) -> None:
    listed = _run(store_url, "runs", "list")
    status = _run(store_url, "db", "status")

    assert listed.exit_code == 0, listed.output
    assert status.exit_code == 0 and "current" in status.stdout


@pytest.mark.postgres
def test_a_postgres_store_behind_a_revision_is_refused_until_db_upgrade(
    postgres_url: str,
) -> None:
    _behind(postgres_url)

    refused = _run(postgres_url, "runs", "list")
    status = _run(postgres_url, "db", "status")
    upgraded = _run(postgres_url, "db", "upgrade")
    listed = _run(postgres_url, "runs", "list")

    assert refused.exit_code == engine.ExitCode.INVALID
    assert "Run `stormdrill db upgrade`" in refused.stderr and "Traceback" not in refused.output
    assert status.exit_code == 1 and "0001_base" in status.stdout
    assert upgraded.exit_code == 0 and schema.HEAD in upgraded.stdout
    assert listed.exit_code == 0, listed.output


def test_an_old_sqlite_store_is_upgraded_by_the_first_command_that_opens_it(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    _pre_alembic(sqlite_url)

    listed = _run(sqlite_url, "runs", "list")
    status = _run(sqlite_url, "db", "status")

    assert listed.exit_code == 0, listed.output
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any(f"upgraded it to {schema.HEAD}" in line for line in warned)
    assert status.exit_code == 0 and "current" in status.stdout


def test_a_store_from_a_newer_stormdrill_is_refused_with_exit_3(sqlite_url: str) -> None:
    assert _run(sqlite_url, "db", "upgrade").exit_code == 0
    engine_ = sa.create_engine(sqlite_url)
    with engine_.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0099_future'"))
    engine_.dispose()

    status = _run(sqlite_url, "db", "status")
    upgrade = _run(sqlite_url, "db", "upgrade")
    listed = _run(sqlite_url, "runs", "list")

    for result in (status, upgrade, listed):
        assert result.exit_code == engine.ExitCode.INVALID, result.output
        assert "Upgrade Stormdrill" in result.stderr
    assert "ahead" in status.stdout


def test_an_unreachable_store_is_one_line_and_exit_5() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"postgresql+psycopg://postgres:pw@127.0.0.1:{port}/test"

    for args in (("db", "status"), ("db", "upgrade")):
        result = _run(url, *args)
        assert result.exit_code == engine.ExitCode.UNREACHABLE
        assert result.stderr.startswith("error: cannot open the journal")
        assert ":pw@" not in result.stderr
