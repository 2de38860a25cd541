"""Fixtures for the API's route tests: an app on a tmp SQLite store, with folders of documents.

`api_world` (`build_world(root)`, a plain function: `tests.api.record_examples` builds the
same world) writes a scenario folder (a people-only scenario that needs no cluster, and one
with a secret parameter), an environment folder (an Environment carrying secrets: tokens,
a password, a URL with credentials) and a drill folder, and names a fresh store. `app_for`
builds the app over it (`ApiSettings` overridable); `api_client` is an httpx client (through
`fastapi.testclient.TestClient`, lifespan run) authenticated as an admin through
`app.dependency_overrides[deps.get_principal]` — the auth tests exercise real tokens.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import fastapi
import pytest
from fastapi import testclient

from drills import settings as settings_mod
from drills.api import app as app_mod
from drills.api import config as api_config
from drills.api import deps
from drills.service import auth
from orchestrator import journal
from sandbox import stack

ADMIN = auth.Principal(name="route-admin", roles=frozenset({auth.Role.ADMIN}))
VIEWER = auth.Principal(name="route-viewer", roles=frozenset({auth.Role.VIEWER}))

ABSENCE_SCENARIO = """\
apiVersion: stormdrill.dev/v1
kind: Scenario
metadata:
  name: absence-cover
spec:
  description: Alice is away; someone of team-payments covers for her.
  failureMode: key-person
  hypothesis: The team covers.
  parameters:
    person:
      type: string
      default: user:default/alice
  targets:
    absent:
      provider: people
      kind: person
      selector:
        refs: ["{{ person }}"]
      blastRadius:
        max: 1
  guardrails:
    environments: [test, locked]
    maxDuration: 1000h
  steps:
    - name: mark
      action: people.mark-unavailable
      target: absent
    - name: cover
      manual:
        instructions: Restore payments without alice.
        assignee: group:default/team-payments
        role: any
        timeout: 500h
        evidence: [text]
      onTimeout: abort
  objectives:
    rto: 30m
"""

SECRET_SCENARIO = """\
apiVersion: stormdrill.dev/v1
kind: Scenario
metadata:
  name: with-secret
spec:
  description: A scenario with a secret parameter default.
  failureMode: key-person
  hypothesis: Nothing secret leaks.
  parameters:
    webhookToken:
      type: string
      default: tok-default-0123456789
      secret: true
    person:
      type: string
      default: user:default/alice
  targets:
    absent:
      provider: people
      kind: person
      selector:
        refs: ["{{ person }}"]
      blastRadius:
        max: 1
  guardrails:
    environments: [test]
    maxDuration: 1h
  steps:
    - name: mark
      action: people.mark-unavailable
      target: absent
"""

SECRETS = (
    "s3cr3t-api-token-value",
    "hunter2-database-pass",
    "pr0m-scrape-pass",
    "AKIAIOSFODNN7EXAMPLE",
)
"""Every secret the test Environment holds; none may appear in any answer."""

ENVIRONMENT = """\
apiVersion: stormdrill.dev/v1
kind: Environment
metadata:
  name: test
  labels:
    tier: test
spec:
  timeScale: 0.01
  cmdb:
    backstage: [{catalog}]
  prometheus:
    url: https://scraper:pr0m-scrape-pass@prometheus.test.example
  parameters:
    apiToken: s3cr3t-api-token-value
    dbPassword: hunter2-database-pass
    accessKey: AKIAIOSFODNN7EXAMPLE
    zone: us-east-1b
"""

LOCKED_ENVIRONMENT = """\
apiVersion: stormdrill.dev/v1
kind: Environment
metadata:
  name: locked
spec:
  protected: true
  approvals:
    required: 1
  timeScale: 0.01
  cmdb:
    backstage: [{catalog}]
"""

DRILL = """\
apiVersion: stormdrill.dev/v1
kind: Drill
metadata:
  name: weekly-absence
spec:
  scenario: absence-cover
  environment: test
  parameters:
    person: user:default/alice
  schedule:
    cron: "0 10 * * 1"
    timezone: Europe/Berlin
"""


@dataclasses.dataclass(frozen=True)
class ApiWorld:
    """The folders and store of one test."""

    root: Path
    scenarios: Path
    environments: Path
    drills: Path
    settings: settings_mod.Settings

    def api_settings(self, **overrides: Any) -> api_config.ApiSettings:
        values: dict[str, Any] = {
            "scenario_dirs": (self.scenarios,),
            "environment_dirs": (self.environments,),
            "drill_dirs": (self.drills,),
            "driver_poll_s": 0.05,
            **overrides,
        }
        return api_config.ApiSettings(**values)


def build_world(root: Path) -> ApiWorld:
    """Write the world's folders under `root` (an existing, empty folder) and name its store."""
    catalog = stack.catalog_path().parent
    scenarios = root / "scenarios"
    environments = root / "environments"
    drills = root / "drills"
    for folder in (scenarios, environments, drills):
        folder.mkdir()
    (scenarios / "absence-cover.yaml").write_text(ABSENCE_SCENARIO, encoding="utf-8")
    (scenarios / "with-secret.yaml").write_text(SECRET_SCENARIO, encoding="utf-8")
    (environments / "test.environment.yaml").write_text(
        ENVIRONMENT.format(catalog=catalog), encoding="utf-8"
    )
    (environments / "locked.environment.yaml").write_text(
        LOCKED_ENVIRONMENT.format(catalog=catalog), encoding="utf-8"
    )
    (drills / "weekly-absence.drill.yaml").write_text(DRILL, encoding="utf-8")
    config = settings_mod.Settings(
        data_dir=root / "data",
        database_url=f"sqlite:///{root / 'data' / 'stormdrill.db'}",
        reports_dir=root / "reports",
        cmdb_paths=(catalog,),
    )
    return ApiWorld(
        root=root,
        scenarios=scenarios,
        environments=environments,
        drills=drills,
        settings=config,
    )


@pytest.fixture
def api_world(tmp_path: Path) -> ApiWorld:
    return build_world(tmp_path)


AppFor = Callable[..., fastapi.FastAPI]


@pytest.fixture
def app_for(api_world: ApiWorld) -> AppFor:
    """`app_for(principal=ADMIN, **api_settings)`: the app over the world's store."""

    def build(principal: auth.Principal | None = ADMIN, **overrides: Any) -> fastapi.FastAPI:
        app = app_mod.create_app(api_world.settings, api_world.api_settings(**overrides))
        if principal is not None:
            app.dependency_overrides[deps.get_principal] = lambda: principal
        return app

    return build


@pytest.fixture
def api_client(app_for: AppFor) -> Iterator[testclient.TestClient]:
    """An admin's client; the runner is off (runs stay PENDING unless a test drives them)."""
    with testclient.TestClient(app_for(drive_runs=False)) as client:
        yield client


@pytest.fixture
def viewer_client(app_for: AppFor) -> Iterator[testclient.TestClient]:
    with testclient.TestClient(app_for(VIEWER, drive_runs=False)) as client:
        yield client


def store_of(client: testclient.TestClient) -> journal.Journal:
    store: journal.Journal = client.app.state.store  # type: ignore[attr-defined]
    return store


def problem_of(response: Any) -> dict[str, Any]:
    """The problem+json body of an error answer (asserting its media type and shape)."""
    assert response.headers["content-type"].startswith("application/problem+json"), response.text
    body: dict[str, Any] = response.json()
    assert {"type", "title", "status", "detail"} <= set(body), body
    assert body["status"] == response.status_code
    return body
