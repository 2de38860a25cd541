"""Helpers for the auth, audit and role-matrix tests: an app on a tmp SQLite store, real tokens.

Plain functions (each test module wraps them in its own fixtures): `settings_for(tmp)` names
a fresh store, `api_settings(**over)` the serve settings (no background driver, no
recovery), `client_for(settings, api)` runs the app with its lifespan, `issue(store, role)`
creates a real token through `drills.service.tokens`, `bearer(secret)` is its header.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fastapi import testclient

from drills import settings as settings_mod
from drills.api import app as app_mod
from drills.api import config as api_config
from drills.service import auth, tokens
from orchestrator import journal


def settings_for(tmp_path: Path) -> settings_mod.Settings:
    """Settings naming a fresh SQLite store (and reports folder) under `tmp_path`."""
    return settings_mod.Settings(
        data_dir=tmp_path / "data",
        database_url=f"sqlite:///{tmp_path / 'data' / 'stormdrill.db'}",
        reports_dir=tmp_path / "reports",
    )


def api_settings(**overrides: Any) -> api_config.ApiSettings:
    """Serve settings for tests: runs are not driven in the background, no recovery pass."""
    values: dict[str, Any] = {"drive_runs": False, "recover_on_start": False, **overrides}
    return api_config.ApiSettings(**values)


@contextlib.contextmanager
def client_for(
    config: settings_mod.Settings, api: api_config.ApiSettings | None = None
) -> Iterator[testclient.TestClient]:
    """A client of the app over `config`'s store, lifespan run (the store is open)."""
    app = app_mod.create_app(config, api or api_settings())
    with testclient.TestClient(app) as client:
        yield client


def store_of(client: testclient.TestClient) -> journal.Journal:
    """The store the app under test opened."""
    store: journal.Journal = client.app.state.store  # type: ignore[attr-defined]
    return store


def issue(
    store: journal.Journal,
    role: auth.Role,
    *,
    name: str | None = None,
    teams: tuple[str, ...] = (),
    services: tuple[str, ...] = (),
) -> str:
    """A real token for `role` (created as an admin would), its secret."""
    return tokens.create(
        store,
        role=role,
        name=name or f"test-{role.value}",
        teams=teams,
        services=services,
        created_by="test-admin",
    ).secret


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}
