"""Smoke tests of benchmarks/journal.py on a real SQLite file and the real PostgreSQL server.

Only the result's shape and its correctness (every entry reverted, the private schema gone)
are asserted; never timing.
"""

from __future__ import annotations

import json
import pathlib

import pytest
import sqlalchemy as sa

from benchmarks import journal as journal_bench


def _bench_schemas(dsn: str) -> list[str]:
    engine = sa.create_engine(sa.make_url(dsn).set(drivername="postgresql+psycopg"))
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT nspname FROM pg_namespace WHERE nspname LIKE :prefix"),
                {"prefix": "stormdrill_bench_%"},
            )
            return [str(row[0]) for row in rows]
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_every_append_is_timed_on_sqlite_and_postgresql_and_the_schema_is_dropped(
    tmp_path: pathlib.Path, postgres_dsn: str
) -> None:
    before = _bench_schemas(postgres_dsn)

    results = journal_bench.run_benchmark(workdir=tmp_path, appends=12, postgres_url=postgres_dsn)

    assert [fig.backend for fig in results.backends] == ["sqlite", "postgresql"]
    for fig in results.backends:
        assert [op.operation for op in fig.operations] == list(journal_bench.OPERATIONS)
        assert all(len(op.samples_s) == 12 for op in fig.operations)
        assert len(fig.all.samples_s) == 36
        assert 0 < fig.all.p50_s <= fig.all.p99_s
    assert "password" not in results.backends[1].url
    assert _bench_schemas(postgres_dsn) == before
    names = [check["name"] for check in results.checks()]
    assert names == [
        "journal append p50 on sqlite <= 5 ms",
        "journal append p99 on sqlite <= 8 ms",
        "journal append p50 on postgresql <= 5 ms",
        "journal append p99 on postgresql <= 8 ms",
    ]


def test_results_are_written_as_dated_and_latest_json(tmp_path: pathlib.Path) -> None:
    results = journal_bench.run_benchmark(workdir=tmp_path, appends=3, postgres_url=None)

    dated = journal_bench.write_results(results, directory=tmp_path / "results")

    document = json.loads((tmp_path / "results" / "journal-latest.json").read_text())
    assert dated.name.startswith("journal-") and json.loads(dated.read_text()) == document
    [sqlite] = document["backends"]
    assert [op["operation"] for op in sqlite["operations"]] == [
        "record_intent",
        "mark_applied",
        "mark_reverted",
        "all",
    ]
    assert {"count", "p50_s", "p99_s", "max_s"} <= set(sqlite["operations"][0])
    assert document["skipped"] == ["postgresql (--no-postgres)"]
    assert "record_intent" in journal_bench.render_table(results)


def test_an_unreachable_postgresql_fails_loudly_and_leaves_no_figure(
    tmp_path: pathlib.Path,
) -> None:
    with pytest.raises(sa.exc.OperationalError):
        journal_bench.run_benchmark(
            workdir=tmp_path,
            appends=1,
            postgres_url="postgresql+psycopg://postgres@127.0.0.1:1/test?connect_timeout=2",
        )


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]

    assert journal_bench.percentile(values, 0.50) == 50.0
    assert journal_bench.percentile(values, 0.99) == 99.0
    assert journal_bench.percentile([7.0], 0.99) == 7.0
    with pytest.raises(ValueError, match="no values"):
        journal_bench.percentile([], 0.5)
