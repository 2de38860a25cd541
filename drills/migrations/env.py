"""Alembic's environment for the run store: migrate the connection `drills.service.schema` hands
over (inside its transaction, under its lock), or, for a developer's `alembic` command line,
the URL in the config's `sqlalchemy.url`.

The target metadata is `orchestrator.journal.metadata` with every application table module
loaded (`schema.load_tables`), so autogenerate sees the whole store. SQLite runs in batch
mode (`render_as_batch`): it cannot `ALTER` most things in place.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from drills.service import schema


def _run(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=schema.load_tables(),
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _main() -> None:
    config = context.config
    connection = config.attributes.get("connection")
    if context.is_offline_mode():
        url = config.get_main_option("sqlalchemy.url") or "sqlite://"
        context.configure(
            url=url,
            target_metadata=schema.load_tables(),
            literal_binds=True,
            render_as_batch=url.startswith("sqlite"),
        )
        with context.begin_transaction():
            context.run_migrations()
    elif connection is not None:
        _run(connection)
    else:
        online_url = config.get_main_option("sqlalchemy.url")
        if not online_url:
            raise RuntimeError("set sqlalchemy.url (or migrate with `stormdrill db upgrade`)")
        engine = sa.create_engine(online_url)
        try:
            with engine.begin() as conn:
                _run(conn)
        finally:
            engine.dispose()


_main()
