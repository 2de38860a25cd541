"""The audit trail of the API: one append-only entry per mutating request (skeleton: issue 13).

`install(app)` is called once by `create_app`; the helper owning this module fills it in.
"""

from __future__ import annotations

import fastapi


def install(app: fastapi.FastAPI) -> None:
    """Record who did what, when, from where, with which outcome, for every mutating route."""
    del app
