"""End to end: `POST /runs` against the sandbox drives to COMPLETED and leaves it as it was.

The sandbox is real (a loopback Kubernetes API server the official client talks to, moto's
server for AWS, health endpoints); the app runs with its lifespan, so its own runner claims
and drives the run the API queued, through the engine, with the Environment file the
sandbox wrote (found by name in `environment_dirs`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import testclient

from drills import settings as settings_mod
from drills.api import app as app_mod
from drills.api import config as api_config
from drills.api import deps
from orchestrator import mutations, states
from sandbox import stack
from tests.api import conftest
from tests.engine_runs import support

DRIVE_TIMEOUT_S = 240.0


@pytest.fixture
def world(tmp_path: Path) -> Iterator[stack.Sandbox]:
    with stack.Sandbox(tmp_path / "sandbox") as sandbox:
        support.settle(sandbox)
        yield sandbox


def test_a_run_posted_to_the_api_drives_to_completed_and_leaves_the_sandbox_as_it_was(
    world: stack.Sandbox, tmp_path: Path
) -> None:
    config = settings_mod.Settings(
        data_dir=tmp_path / "data",
        database_url=f"sqlite:///{tmp_path / 'data' / 'stormdrill.db'}",
        reports_dir=tmp_path / "reports",
    )
    api = api_config.ApiSettings(
        environment_dirs=(world.info.environment.parent,), driver_poll_s=0.1
    )
    app = app_mod.create_app(config, api)
    app.dependency_overrides[deps.get_principal] = lambda: conftest.ADMIN
    before = support.snapshot(world)

    with testclient.TestClient(app) as client:
        submitted = client.post(
            "/api/v1/runs",
            json={
                "scenario": "az-failure-kubernetes",
                "environment": stack.ENVIRONMENT_NAME,
                "parameters": {"soak": "1m"},
            },
        )
        assert submitted.status_code == 202, submitted.text
        location = submitted.headers["location"]
        deadline = time.monotonic() + DRIVE_TIMEOUT_S
        shown = client.get(location).json()
        while shown["state"] not in {s.value for s in states.TERMINAL}:
            if time.monotonic() > deadline:
                pytest.fail(f"the run did not finish within {DRIVE_TIMEOUT_S}s: {shown['state']}")
            time.sleep(0.2)
            shown = client.get(location).json()
        junit = client.get(f"{location}/junit")

    assert (shown["state"], shown["verdict"]) == ("completed", "held"), shown["reason"]
    assert shown["record"]["trigger"]["kind"] == "api"
    assert shown["journal"] and {e["state"] for e in shown["journal"]} == {
        mutations.EntryState.REVERTED.value
    }
    assert [e["data"]["state"] for e in shown["timeline"] if e["kind"] == "state"] == [
        "planning",
        "preflight",
        "injecting",
        "observing",
        "rolling_back",
        "verifying",
        "completed",
    ]
    assert junit.status_code == 200 and 'failures="0"' in junit.text
    support.assert_same_world(before, support.snapshot(world))
    assert support.kube_markers(world) == []
