"""The run store's Alembic migrations (`env.py`, `versions/`), shipped inside the package.

Run them through `drills.service.schema` (`stormdrill db upgrade`), which configures
Alembic without an `alembic.ini`: `script_location` is this folder and the connection is
the open store's. A new revision goes in `versions/` as `rNNNN_what.py` with `revision =
"NNNN_what"` and `down_revision` the previous head, and `drills.service.schema.REVISIONS`
gains its id (a test checks the chain matches). Write each revision for SQLite and
PostgreSQL both: `env.py` runs SQLite in batch mode (`render_as_batch`), so `ALTER` goes
through `op.batch_alter_table`. Revisions are frozen: they spell out their columns instead
of importing today's tables, so a later change to a table needs a new revision.
"""
