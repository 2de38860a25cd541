"""schemathesis against the app's OpenAPI: every operation, as an admin, over real HTTP.

The app runs in uvicorn on loopback (its lifespan opens a fresh SQLite store); the schema is
the one it serves at `/openapi.json`. Each operation gets a bounded, derandomized set of
generated requests (`MAX_EXAMPLES`), so the whole test stays well under a minute. A response
fails the test when it is a 5xx, or when its status, content type, headers or body are not
the ones the schema documents for it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
from schemathesis import checks as schemathesis_checks
from schemathesis.specs.openapi import checks as openapi_checks

from drills import settings as settings_mod
from drills import store as store_mod
from drills.api import app as app_mod
from drills.api import config as api_config
from drills.api import deps
from drills.service import auth
from orchestrator import journal, records, states
from tests.api import live

ADMIN = auth.Principal(name="schemathesis-admin", roles=frozenset({auth.Role.ADMIN}))
MAX_EXAMPLES = 15
REQUEST_TIMEOUT_S = 20.0
"""A stream that never ends (an event stream of a run still going) fails, not hangs."""
CHECKS = [
    schemathesis_checks.not_a_server_error,
    openapi_checks.status_code_conformance,
    openapi_checks.content_type_conformance,
    openapi_checks.response_headers_conformance,
    openapi_checks.response_schema_conformance,
]


def _seed(store: journal.Journal) -> None:
    """One finished run with a short timeline, so reads of a real id have something to say."""
    run = states.new_run(
        id=states.RunId("20250101T120000Z-5c4e3a2b"),
        scenario="seeded-drill",
        environment="sandbox",
        environment_source="sandbox.environment.yaml",
        owner=journal.UNCLAIMED,
        at=datetime(2025, 1, 1, 12, tzinfo=UTC),
        record=records.RunRecord(time_scale=1.0),
    )
    store.create_run(run)
    done = dataclasses.replace(run, state=states.RunState.COMPLETED, verdict=states.Verdict.HELD)
    store.save_run(done, expected_state=states.RunState.PENDING)
    for moved in ("planning", "preflight", "injecting", "completed"):
        store.append_event(run.id, kind="state", message=f"{moved}: ok", data={"state": moved})


def _openapi_document() -> dict[str, Any]:
    """The app's OpenAPI document (building the app opens nothing: the store is the lifespan's)."""
    unused = Path("/nonexistent/stormdrill-openapi")
    config = settings_mod.Settings(
        data_dir=unused, database_url=f"sqlite:///{unused}/stormdrill.db", reports_dir=unused
    )
    return app_mod.create_app(config).openapi()


# schemathesis parametrizes one test per operation from a schema it has at collection time
# (its fixture-based loader does not work with this pytest); the document is built from an
# app that is never started, and the requests go to the live one `api_base` serves.
schema = schemathesis.openapi.from_dict(_openapi_document())


@pytest.fixture(scope="module")
def api_base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("schemathesis")
    config = settings_mod.Settings(
        data_dir=root / "data",
        database_url=f"sqlite:///{root / 'data' / 'stormdrill.db'}",
        reports_dir=root / "reports",
        killswitch_file=root / "killswitch",
    )
    with store_mod.open_store(config) as opened:
        _seed(opened)
    app = app_mod.create_app(
        config, api_config.ApiSettings(drive_runs=False, recover_on_start=False)
    )
    app.dependency_overrides[deps.get_principal] = lambda: ADMIN
    with live.serving(app) as base:
        yield base


@schema.parametrize()
@hypothesis.settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(hypothesis.HealthCheck),
)
def test_no_operation_answers_a_5xx_or_a_response_its_schema_does_not_document(
    case: schemathesis.Case[Any], api_base: str
) -> None:
    case.call_and_validate(base_url=api_base, checks=CHECKS, timeout=REQUEST_TIMEOUT_S)
