"""The store's schema version (Alembic): is the store current, and which command updates it
(skeleton: issue 13). Contract: `status(store) -> SchemaStatus` with `current`, `head`, `ok`.
"""

from __future__ import annotations
