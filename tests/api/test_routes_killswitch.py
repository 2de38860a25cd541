"""The kill switch over HTTP, global and per Environment: it refuses new runs, stops live ones."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from fastapi import testclient

from drills.service import killswitches
from orchestrator import engine, events, journal, records, states
from tests.api import conftest

API = "/api/v1"
_S = states.RunState


def _live(
    store: journal.Journal, run_id: str, *, state: states.RunState, environment: str
) -> states.Run:
    run = states.new_run(
        id=states.RunId(run_id),
        scenario="absence-cover",
        environment=environment,
        environment_source=f"{environment}.environment.yaml",
        owner=journal.UNCLAIMED if state is _S.PENDING else states.Owner.current(),
        at=datetime.now(UTC),
        record=records.RunRecord(trigger=engine.Trigger(kind=engine.TriggerKind.API)),
    )
    store.create_run(run)
    if state is _S.PENDING:
        return run
    return store.save_run(dataclasses.replace(run, state=state), expected_state=_S.PENDING)


def test_an_environments_switch_stops_its_runs_and_refuses_new_ones_until_released(
    api_client: testclient.TestClient,
) -> None:
    store = conftest.store_of(api_client)
    queued = _live(store, "20250101T120000Z-queued00", state=_S.PENDING, environment="test")
    driven = _live(store, "20250101T120000Z-driven00", state=_S.OBSERVING, environment="test")
    elsewhere = _live(store, "20250101T120000Z-other000", state=_S.OBSERVING, environment="locked")

    engaged = api_client.put(
        f"{API}/killswitch", params={"environment": "test"}, json={"reason": "incident INC-1"}
    )
    refused = api_client.post(
        f"{API}/runs", json={"scenario": "absence-cover", "environment": "test"}
    )
    other_env = api_client.post(
        f"{API}/runs", json={"scenario": "absence-cover", "environment": "locked"}
    )
    shown = api_client.get(f"{API}/killswitch", params={"environment": "test"})
    global_switch = api_client.get(f"{API}/killswitch")
    released = api_client.delete(f"{API}/killswitch", params={"environment": "test"})
    accepted = api_client.post(
        f"{API}/runs", json={"scenario": "absence-cover", "environment": "test"}
    )

    assert engaged.status_code == 200, engaged.text
    body = engaged.json()
    assert (body["environment"], body["engaged"], body["by"]) == ("test", True, "route-admin")
    assert sorted(body["aborted"]) == [driven.id, queued.id]
    assert store.get_run(queued.id).state is _S.ABORTED
    assert len(store.events(driven.id, kind=events.EventKind.ABORT_REQUEST)) == 1
    assert store.events(elsewhere.id, kind=events.EventKind.ABORT_REQUEST) == []
    assert refused.status_code == 409
    assert "kill switch of test is engaged" in conftest.problem_of(refused)["detail"]
    assert other_env.status_code == 202
    assert shown.json()["engaged"] is True and shown.json()["reason"] == "incident INC-1"
    assert global_switch.json()["engaged"] is False
    assert released.status_code == 200 and released.json()["engaged"] is False
    assert accepted.status_code == 202


def test_the_global_switch_refuses_every_new_run_and_asks_every_running_one_to_abort(
    api_client: testclient.TestClient,
) -> None:
    store = conftest.store_of(api_client)
    driven = _live(store, "20250101T120000Z-driven00", state=_S.INJECTING, environment="locked")

    engaged = api_client.put(f"{API}/killswitch", json={"reason": "game over"})
    refused = api_client.post(
        f"{API}/runs", json={"scenario": "absence-cover", "environment": "test"}
    )
    released = api_client.delete(f"{API}/killswitch")

    assert engaged.status_code == 200 and engaged.json()["aborted"] == [driven.id]
    assert store.killswitch().engaged is False  # released at the end
    assert refused.status_code == 409
    assert (
        "global kill switch is engaged by route-admin (game over)"
        in conftest.problem_of(refused)["detail"]
    )
    assert len(store.events(driven.id, kind=events.EventKind.ABORT_REQUEST)) == 1
    assert released.json()["engaged"] is False


def test_a_run_queued_before_its_environment_was_switched_is_cancelled_by_the_runner(
    app_for: conftest.AppFor,
) -> None:
    with testclient.TestClient(app_for(driver_poll_s=3600.0)) as client:
        store = conftest.store_of(client)
        # The switch goes on first: the runner's poller makes its first pass whenever its
        # thread gets to it, and a pass between the two writes would claim and run the
        # queued run (the race this test once lost). A PENDING run is queued until claimed,
        # so it is still the run queued before the runner saw the switch.
        killswitches.set_environment(
            store, environment="test", engaged=True, by="ops", reason="freeze"
        )
        queued = _live(store, "20250101T120000Z-queued00", state=_S.PENDING, environment="test")
        client.app.state.driver.tick()  # type: ignore[attr-defined]
        final = store.get_run(queued.id)

    assert final.state is _S.ABORTED
    assert "kill switch of test is engaged (freeze)" in (final.abort_reason or "")


def test_a_viewer_reads_the_switch_but_may_not_engage_it(
    viewer_client: testclient.TestClient,
) -> None:
    read = viewer_client.get(f"{API}/killswitch")
    engage = viewer_client.put(f"{API}/killswitch", json={"reason": "no"})
    release = viewer_client.delete(f"{API}/killswitch")

    assert read.status_code == 200
    assert engage.status_code == 403 and release.status_code == 403
    assert conftest.store_of(viewer_client).killswitch().engaged is False


def test_engaging_needs_a_reason(api_client: testclient.TestClient) -> None:
    response = api_client.put(f"{API}/killswitch", json={})

    assert response.status_code == 422
    assert conftest.problem_of(response)["errors"] == ["body.reason: Field required"]
