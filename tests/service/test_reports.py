"""The reports service (one place writes a run's reports) and the store opener."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from drills import binding, settings, store
from drills.service import reports, runs
from orchestrator import engine, errors, journal
from tests.service import world


def test_write_puts_the_postmortem_and_junit_under_the_run_and_an_extra_junit_where_asked(
    tmp_path: Path,
) -> None:
    files = world.write(tmp_path)
    prepared = runs.prepare(
        files.config,
        runs.DrillRequest(target=str(files.scenario), environment=str(files.environment)),
    )
    with store.open_store(files.config) as opened:
        outcome = runs.make_engine(
            files.config, opened, binding.make_registry(), catalog=prepared.catalog
        ).run(prepared.drill)
        written = reports.write(
            files.config,
            opened,
            outcome.run,
            catalog=prepared.catalog,
            junit_path=tmp_path / "ci" / "junit.xml",
            scenario=prepared.drill.scenario,
        )

    folder = files.config.reports_dir / outcome.run.id
    assert written.postmortem == folder / "postmortem.md" and written.postmortem.is_file()
    assert (folder / "postmortem.json").is_file() and (folder / "junit.xml").is_file()
    assert written.junit == tmp_path / "ci" / "junit.xml" and written.junit.is_file()
    assert written.warning is None


def test_write_recovered_waits_for_the_end_and_warns_when_the_cmdb_is_unreadable(
    tmp_path: Path,
) -> None:
    files = world.write(tmp_path)
    broken = tmp_path / "broken.environment.yaml"
    broken.write_text(
        world.ENVIRONMENT.format(catalog=tmp_path / "no-such-catalog"), encoding="utf-8"
    )
    with store.open_store(files.config) as opened:
        rid = world.crashed_run(opened, "crashed", environment_source=str(broken))
        unfinished = reports.write_recovered(files.config, opened, rid)
        [done] = runs.recover(files.config, opened, binding.make_registry())

    assert unfinished is None
    assert done.reports is not None and done.reports.postmortem.is_file()
    assert done.reports.warning is not None
    assert "reports without the CMDB" in done.reports.warning


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_the_store_opener_creates_a_private_sqlite_folder(tmp_path: Path) -> None:
    config = settings.Settings(
        data_dir=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'deep' / 'store.db'}",
        reports_dir=tmp_path / "reports",
    )
    with store.open_store(config) as opened:
        assert isinstance(opened, journal.Journal)
    assert (tmp_path / "deep").stat().st_mode & 0o777 == 0o700


def test_the_store_opener_names_an_unreachable_store_with_its_password_masked(
    tmp_path: Path,
) -> None:
    url = f"postgresql://drill:hunter2secret@127.0.0.1:{_free_port()}/stormdrill"
    config = settings.Settings(data_dir=tmp_path, database_url=url, reports_dir=tmp_path)
    with pytest.raises(errors.StoreUnreachable) as caught:
        store.open_store(config)
    assert "hunter2secret" not in str(caught.value)
    assert engine.ExitCode.UNREACHABLE == 5


def test_the_store_opener_refuses_a_url_it_cannot_use(tmp_path: Path) -> None:
    config = settings.Settings(data_dir=tmp_path, database_url="nosuchdb://x", reports_dir=tmp_path)
    with pytest.raises(errors.JournalError) as caught:
        store.open_store(config)
    assert not isinstance(caught.value, errors.StoreUnreachable)
