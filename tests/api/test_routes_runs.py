"""Runs over HTTP: submit, list with filters and cursors, show, abort, ack, reports, JUnit.

The driven tests are real: the app's own runner (`drills.service.driver`) claims the run
`POST /runs` queued and drives a people-only drill (a person marked unavailable, then a
manual step someone must acknowledge) with the engine, against the sandbox's CMDB files
(no cluster needed); the acknowledgement comes over HTTP too.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import testclient
from typer import testing

from drills import cli
from drills.service import auth
from orchestrator import engine, events, journal, records, states
from tests.api import conftest

API = "/api/v1"
WAIT_S = 60.0
_S = states.RunState


def _seed(
    store: journal.Journal,
    run_id: str,
    *,
    state: states.RunState,
    at: datetime,
    owner: states.Owner = journal.UNCLAIMED,
    scenario: str = "absence-cover",
    environment: str = "test",
) -> states.Run:
    run = states.new_run(
        id=states.RunId(run_id),
        scenario=scenario,
        environment=environment,
        environment_source="test.environment.yaml",
        owner=owner,
        at=at,
        record=records.RunRecord(trigger=engine.Trigger(kind=engine.TriggerKind.MANUAL)),
    )
    store.create_run(run)
    if state is _S.PENDING:
        return run
    moved = dataclasses.replace(
        run,
        state=state,
        verdict=states.Verdict.HELD if state is _S.COMPLETED else None,
        finished_at=at if state in states.TERMINAL else None,
    )
    return store.save_run(moved, expected_state=_S.PENDING)


def _wait_for(what: str, check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def _run(client: testclient.TestClient, run_id: str) -> dict[str, Any]:
    response = client.get(f"{API}/runs/{run_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


# ---- submit ----------------------------------------------------------------------------------


def test_post_runs_queues_a_pending_api_run_and_answers_202_with_its_location(
    api_client: testclient.TestClient,
) -> None:
    response = api_client.post(
        f"{API}/runs",
        json={
            "scenario": "absence-cover",
            "environment": "test",
            "parameters": {"person": "user:default/alice"},
        },
    )

    assert response.status_code == 202, response.text
    body = response.json()
    assert response.headers["location"] == f"{API}/runs/{body['id']}"
    assert body == {
        "id": body["id"],
        "state": "pending",
        "awaitingApproval": False,
        "scenario": "absence-cover",
        "environment": "test",
    }
    stored = conftest.store_of(api_client).get_run(states.RunId(body["id"]))
    assert stored.state is _S.PENDING
    assert stored.record.trigger == engine.Trigger(
        kind=engine.TriggerKind.API, principal="route-admin", reason="POST /api/v1/runs"
    )
    assert stored.record.parameters["person"] == "user:default/alice"
    assert api_client.get(response.headers["location"]).json()["id"] == body["id"]


def test_a_drill_name_runs_its_scenario_on_its_environment(
    api_client: testclient.TestClient,
) -> None:
    response = api_client.post(f"{API}/runs", json={"scenario": "weekly-absence"})

    assert response.status_code == 202, response.text
    assert (response.json()["scenario"], response.json()["environment"]) == (
        "absence-cover",
        "test",
    )


def test_an_unknown_scenario_is_422_with_the_file_line_list(
    api_client: testclient.TestClient,
) -> None:
    response = api_client.post(
        f"{API}/runs", json={"scenario": "absence-covr", "environment": "test"}
    )

    problem = conftest.problem_of(response)
    assert response.status_code == 422
    [line] = problem["errors"]
    assert line.startswith(
        f"{problem['problems'][0]['file']}:1:1: no Scenario named 'absence-covr'"
    )
    assert "did you mean 'absence-cover'" in line
    assert problem["type"].endswith("/invalid-document")
    assert conftest.store_of(api_client).list_runs() == []


def test_a_scenario_file_outside_the_configured_folders_is_refused(
    api_client: testclient.TestClient, api_world: conftest.ApiWorld
) -> None:
    outside = api_world.root / "elsewhere.yaml"
    outside.write_text(conftest.ABSENCE_SCENARIO, encoding="utf-8")

    response = api_client.post(
        f"{API}/runs", json={"scenario": str(outside), "environment": "test"}
    )

    assert response.status_code == 422
    assert "inside the configured folders" in conftest.problem_of(response)["detail"]


def test_an_unknown_environment_is_404_and_bad_parameters_are_422(
    api_client: testclient.TestClient,
) -> None:
    unknown = api_client.post(
        f"{API}/runs", json={"scenario": "absence-cover", "environment": "prod"}
    )
    bad_body = api_client.post(f"{API}/runs", json={"scenario": "absence-cover", "parameters": [1]})
    unknown_param = api_client.post(
        f"{API}/runs",
        json={"scenario": "absence-cover", "environment": "test", "parameters": {"nope": 1}},
    )

    assert unknown.status_code == 404
    assert conftest.problem_of(unknown)["detail"].startswith("no Environment named 'prod'")
    assert bad_body.status_code == 422
    assert conftest.problem_of(bad_body)["errors"][0].startswith("body.parameters")
    assert unknown_param.status_code == 422
    assert "nope" in json.dumps(conftest.problem_of(unknown_param))


def test_a_viewer_may_not_start_a_run_and_gets_403_from_authorize(
    viewer_client: testclient.TestClient,
) -> None:
    response = viewer_client.post(
        f"{API}/runs", json={"scenario": "absence-cover", "environment": "test"}
    )

    problem = conftest.problem_of(response)
    assert response.status_code == 403
    assert "route-viewer" in problem["detail"] and "start" in problem["detail"]
    assert conftest.store_of(viewer_client).list_runs() == []


def test_a_run_in_a_protected_environment_awaits_approval_and_the_runner_leaves_it_pending(
    app_for: conftest.AppFor,
) -> None:
    with testclient.TestClient(app_for()) as client:
        response = client.post(
            f"{API}/runs", json={"scenario": "absence-cover", "environment": "locked"}
        )
        run_id = response.json()["id"]
        runner = client.app.state.driver  # type: ignore[attr-defined]
        runner.tick()  # the gate says wait: nothing is driven
        state_now = conftest.store_of(client).get_run(run_id).state

    assert response.status_code == 202
    assert response.json()["awaitingApproval"] is True
    assert state_now is _S.PENDING


# ---- list and show ---------------------------------------------------------------------------


def test_runs_list_filters_and_pages_with_a_cursor_newest_first(
    api_client: testclient.TestClient,
) -> None:
    store = conftest.store_of(api_client)
    base = datetime(2025, 1, 1, 12, tzinfo=UTC)
    for n in range(5):
        _seed(
            store,
            f"2025010{n + 1}T120000Z-aaaa000{n}",
            state=_S.COMPLETED,
            at=base + timedelta(days=n),
        )
    _seed(store, "20250110T120000Z-bbbb0000", state=_S.ABORTED, at=base + timedelta(days=9))

    first = api_client.get(f"{API}/runs", params={"state": "completed", "limit": 2}).json()
    second = api_client.get(
        f"{API}/runs", params={"state": "completed", "limit": 2, "cursor": first["nextCursor"]}
    ).json()
    aborted = api_client.get(f"{API}/runs", params={"state": ["aborted"]}).json()
    since = api_client.get(
        f"{API}/runs", params={"since": "2025-01-04", "until": "2025-01-06"}
    ).json()
    bad = api_client.get(f"{API}/runs", params={"cursor": "nonsense!"})
    bad_state = api_client.get(f"{API}/runs", params={"state": "sleeping"})

    assert [r["id"] for r in first["runs"]] == [
        "20250105T120000Z-aaaa0004",
        "20250104T120000Z-aaaa0003",
    ]
    assert [r["id"] for r in second["runs"]] == [
        "20250103T120000Z-aaaa0002",
        "20250102T120000Z-aaaa0001",
    ]
    assert [r["id"] for r in aborted["runs"]] == ["20250110T120000Z-bbbb0000"]
    assert aborted["nextCursor"] is None
    assert [r["id"] for r in since["runs"]] == [
        "20250105T120000Z-aaaa0004",
        "20250104T120000Z-aaaa0003",
    ]
    assert bad.status_code == 422 and "cursor" in conftest.problem_of(bad)["detail"]
    assert bad_state.status_code == 422


def test_a_run_is_found_by_full_id_unique_prefix_and_latest_and_an_unknown_one_is_404(
    api_client: testclient.TestClient,
) -> None:
    store = conftest.store_of(api_client)
    at = datetime(2025, 1, 1, 12, tzinfo=UTC)
    _seed(store, "20250101T120000Z-3f9a1c2b", state=_S.COMPLETED, at=at)
    _seed(store, "20250102T120000Z-3f11aaaa", state=_S.COMPLETED, at=at + timedelta(days=1))

    full = _run(api_client, "20250101T120000Z-3f9a1c2b")
    prefix = _run(api_client, "3f9a")
    latest = _run(api_client, "latest")
    ambiguous = api_client.get(f"{API}/runs/3f")
    unknown = api_client.get(f"{API}/runs/nope")

    assert full["id"] == prefix["id"] == "20250101T120000Z-3f9a1c2b"
    assert full["state"] == "completed" and full["timeline"] == [] and full["journal"] == []
    assert latest["id"] == "20250102T120000Z-3f11aaaa"
    assert ambiguous.status_code == 409
    assert len(conftest.problem_of(ambiguous)["candidates"]) == 2
    assert unknown.status_code == 404
    assert conftest.problem_of(unknown)["type"].endswith("/not-found")


# ---- abort and ack ---------------------------------------------------------------------------


def test_aborting_a_finished_run_is_409(api_client: testclient.TestClient) -> None:
    store = conftest.store_of(api_client)
    _seed(
        store, "20250101T120000Z-done0000", state=_S.COMPLETED, at=datetime(2025, 1, 1, tzinfo=UTC)
    )

    response = api_client.post(f"{API}/runs/done0000/abort")

    assert response.status_code == 409
    assert "already ended (completed)" in conftest.problem_of(response)["detail"]
    assert store.events(states.RunId("20250101T120000Z-done0000")) == []


def test_aborting_a_queued_run_cancels_it_and_a_driven_one_is_asked_to_abort(
    api_client: testclient.TestClient,
) -> None:
    store = conftest.store_of(api_client)
    at = datetime.now(UTC)
    queued = _seed(store, "20250101T120000Z-queued00", state=_S.PENDING, at=at)
    driven = _seed(
        store, "20250101T120000Z-driven00", state=_S.INJECTING, at=at, owner=states.Owner.current()
    )

    cancelled = api_client.post(f"{API}/runs/{queued.id}/abort")
    asked = api_client.post(f"{API}/runs/{driven.id}/abort")

    assert cancelled.status_code == 202 and cancelled.json()["state"] == "aborted"
    assert store.get_run(queued.id).abort_reason == "aborted by route-admin over the API"
    assert asked.status_code == 202 and asked.json()["state"] == "injecting"
    [request] = store.events(driven.id, kind=events.EventKind.ABORT_REQUEST)
    assert "route-admin" in request.message


def test_an_ack_needs_a_waiting_manual_step_and_someone_it_is_assigned_to(
    api_client: testclient.TestClient,
) -> None:
    store = conftest.store_of(api_client)
    run = _seed(store, "20250101T120000Z-manual00", state=_S.INJECTING, at=datetime.now(UTC))
    no_step = api_client.post(f"{API}/runs/{run.id}/steps/cover/ack", json={"evidence": "done"})
    store.append_event(
        run.id,
        kind=events.EventKind.MANUAL,
        message="step cover waits for team-payments",
        data={
            "step": "cover",
            "eligible": ["user:default/bob", "user:default/carol"],
            "absent": ["user:default/alice"],
            "assignee": "group:default/team-payments",
            "role": "any",
        },
    )

    absent = api_client.post(
        f"{API}/runs/{run.id}/steps/cover/ack", json={"evidence": "done", "by": "alice"}
    )
    empty = api_client.post(f"{API}/runs/{run.id}/steps/cover/ack", json={"evidence": ""})
    done = api_client.post(
        f"{API}/runs/{run.id}/steps/cover/ack",
        json={"evidence": "restored via runbook", "by": "bob"},
    )

    assert no_step.status_code == 403
    assert "no manual step 'cover' waiting" in conftest.problem_of(no_step)["detail"]
    assert absent.status_code == 403 and "unavailable" in conftest.problem_of(absent)["detail"]
    assert empty.status_code == 422
    assert done.status_code == 200
    assert done.json() == {
        "run": run.id,
        "step": "cover",
        "by": "bob",
        "evidence": "restored via runbook",
    }
    [ack] = store.events(run.id, kind=events.EventKind.ACK)
    assert ack.data["by"] == "bob"


# ---- driven end to end (people only: no cluster) ---------------------------------------------


def _manual_waiting(store: journal.Journal, run_id: states.RunId) -> bool:
    return bool(store.events(run_id, kind=events.EventKind.MANUAL))


def test_the_runner_drives_an_api_run_to_completed_and_its_reports_and_junit_are_served(
    app_for: conftest.AppFor, api_world: conftest.ApiWorld
) -> None:
    with testclient.TestClient(app_for()) as client:
        store = conftest.store_of(client)
        submitted = client.post(
            f"{API}/runs", json={"scenario": "absence-cover", "environment": "test"}
        )
        run_id = states.RunId(submitted.json()["id"])
        _wait_for("the manual step", lambda: _manual_waiting(store, run_id))
        [manual] = store.events(run_id, kind=events.EventKind.MANUAL)
        eligible = [str(p) for p in manual.data["eligible"]]  # type: ignore[union-attr]
        acked = client.post(
            f"{API}/runs/{run_id}/steps/cover/ack",
            json={"evidence": "payments restored", "by": eligible[0].rpartition("/")[2]},
        )
        _wait_for("the run to finish", lambda: store.get_run(run_id).terminal)
        shown = _run(client, run_id)
        markdown = client.get(f"{API}/runs/{run_id}/report")
        html = client.get(f"{API}/runs/{run_id}/report", params={"format": "html"})
        as_json = client.get(f"{API}/runs/{run_id}/report", params={"format": "json"})
        junit = client.get(f"{API}/runs/{run_id}/junit")
        bad_format = client.get(f"{API}/runs/{run_id}/report", params={"format": "pdf"})

    assert submitted.status_code == 202 and acked.status_code == 200, acked.text
    assert (shown["state"], shown["verdict"]) == ("completed", "held")
    assert [e["data"]["state"] for e in shown["timeline"] if e["kind"] == "state"][
        -1
    ] == "completed"
    assert markdown.status_code == 200 and markdown.headers["content-type"].startswith(
        "text/markdown"
    )
    assert run_id in markdown.text
    assert html.status_code == 200 and "<html" in html.text.lower()
    assert 'id="timeline-title"' in html.text and 'data-kind="phase"' in html.text  # pictures
    assert "<svg" not in markdown.text
    assert as_json.status_code == 200 and as_json.json()["metadata"]["run_id"] == run_id
    assert junit.status_code == 200 and junit.headers["content-type"] == "application/xml"
    assert junit.text.lstrip().startswith("<?xml") and "<testsuites" in junit.text
    assert bad_format.status_code == 422
    assert "alice" not in [str(e) for e in eligible]
    assert (api_world.settings.reports_dir / run_id).is_dir()


def test_a_run_started_over_the_api_looks_the_same_to_the_cli(
    api_client: testclient.TestClient, api_world: conftest.ApiWorld
) -> None:
    submitted = api_client.post(
        f"{API}/runs", json={"scenario": "absence-cover", "environment": "test"}
    )
    run_id = submitted.json()["id"]

    listed = testing.CliRunner().invoke(
        cli.app,
        ["runs", "list", "--format", "json"],
        env={"STORMDRILL_DATABASE_URL": api_world.settings.database_url},
    )

    assert listed.exit_code == 0, listed.output
    [shown] = json.loads(listed.stdout)
    assert shown == {
        k: v for k, v in _run(api_client, run_id).items() if k not in ("timeline", "journal")
    }


def test_an_operator_scoped_to_another_team_may_not_start_the_drill(
    app_for: conftest.AppFor,
) -> None:
    scoped = auth.Principal.from_grants(
        "web-operator",
        [auth.Grant.scoped_to(auth.Role.OPERATOR, teams=["team-storefront"])],
        kind="token",
    )
    with testclient.TestClient(app_for(scoped, drive_runs=False)) as client:
        response = client.post(
            f"{API}/runs", json={"scenario": "absence-cover", "environment": "test"}
        )
        stored = conftest.store_of(client).list_runs()

    assert response.status_code == 403
    assert "web-operator" in conftest.problem_of(response)["detail"]
    assert stored == []
