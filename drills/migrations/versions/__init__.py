"""The revisions, oldest first by their `down_revision` chain (Alembic loads them by path)."""
