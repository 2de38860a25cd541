"""Fixtures for the pages: the API's world (folders, a fresh SQLite store), served with pages.

`web` is a `Web`: a `TestClient` of `serve`'s app (lifespan run, the runner off unless a
test builds its own with `web_for(drive_runs=True)`), the store it opened, and
`login(role)`, which makes a real token, posts it to `/login` like a browser and returns
the session's CSRF token (read from the page, as a browser's form would carry it). Pages
are parsed with `tests.web.html_tree` (html.parser) — no page is checked by string search
alone where its structure matters.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import testclient

from drills.api import app as app_mod
from drills.service import auth, tokens
from orchestrator import journal
from tests.api import conftest as api_conftest

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclasses.dataclass
class Web:
    client: testclient.TestClient
    world: api_conftest.ApiWorld

    @property
    def store(self) -> journal.Journal:
        store: journal.Journal = self.client.app.state.store  # type: ignore[attr-defined]
        return store

    def issue(self, role: auth.Role, *, name: str | None = None, **scope: Any) -> str:
        return tokens.create(
            self.store, role=role, name=name or f"web-{role.value}", created_by="test", **scope
        ).secret

    def login(self, role: auth.Role = auth.Role.ADMIN, *, name: str | None = None) -> str:
        """Log this client in with a new token of `role`; the session's CSRF token."""
        secret = self.issue(role, name=name)
        answer = self.client.post("/login", data={"token": secret, "next": "/"})
        assert answer.status_code == 303, answer.text
        return self.csrf()

    def csrf(self, path: str = "/login") -> str:
        """The CSRF token the pages put in their forms (read from `path`'s HTML)."""
        page = self.client.get(path)
        found = CSRF.search(page.text)
        assert found, f"no csrf_token on {path}: {page.text[:400]}"
        return found.group(1)


WebFor = Callable[..., Web]


@pytest.fixture
def web_for(tmp_path: Path) -> Iterator[WebFor]:
    """`web_for(**api_settings)`: a `Web` over a fresh world (closed after the test)."""
    opened: list[testclient.TestClient] = []

    def build(**overrides: Any) -> Web:
        root = tmp_path / f"world{len(opened)}"
        root.mkdir()
        world = api_conftest.build_world(root)
        values: dict[str, Any] = {"drive_runs": False, "recover_on_start": False, **overrides}
        app = app_mod.create_app(world.settings, world.api_settings(**values))
        client = testclient.TestClient(app, follow_redirects=False)
        client.__enter__()
        opened.append(client)
        return Web(client=client, world=world)

    yield build
    for client in reversed(opened):
        client.__exit__(None, None, None)


@pytest.fixture
def web(web_for: WebFor) -> Web:
    return web_for()
