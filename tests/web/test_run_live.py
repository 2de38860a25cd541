"""The run page live: a drill driven by `serve`'s own runner, followed over the page's stream.

A real uvicorn on 127.0.0.1 (port 0) serving the app `serve` runs, pages included; a
browser stand-in (httpx with the session cookie) logs in with a token, submits the
people-only drill over the API, opens the run page while its manual step waits, follows
`/runs/{id}/events` from the `data-last-seq` the page gave (as `static/run.js` does),
acknowledges the step through the page's own form, and reads the stream to the terminal
state; the page then shows COMPLETED, the pictures and the post-mortem.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from drills.api import app as app_mod
from drills.service import auth, tokens
from drills.service import events as event_streams
from drills.web.pages import runs as runs_page
from orchestrator import events, journal, states
from tests.api import conftest as api_conftest
from tests.api import live
from tests.web.test_runs_pages import forms_posting_to, hidden, parse

FAST = event_streams.Follow(poll_s=0.02, heartbeat_s=15.0, settle_polls=2)
WAIT_S = 60.0


def _frames(lines: Iterator[str]) -> Iterator[tuple[int, str, dict[str, object]]]:
    """(seq, kind, data) per `text/event-stream` frame; comments (heartbeats) skipped."""
    fields: dict[str, str] = {}
    for line in lines:
        if line.startswith(":"):
            continue
        if line:
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")
            continue
        if fields:
            yield int(fields["id"]), fields["event"], json.loads(fields["data"])
            fields = {}


def _wait_for_manual(store: journal.Journal, run_id: states.RunId) -> None:
    deadline = time.monotonic() + WAIT_S
    while not store.events(run_id, kind=events.EventKind.MANUAL):
        if time.monotonic() > deadline:
            pytest.fail(f"run {run_id} never reached its manual step")
        time.sleep(0.05)


def test_a_live_run_page_follows_the_stream_and_its_ack_form_completes_the_drill(
    tmp_path: Path,
) -> None:
    world = api_conftest.build_world(tmp_path)
    app = app_mod.create_app(
        world.settings, world.api_settings(drive_runs=True, recover_on_start=False)
    )
    app.dependency_overrides[runs_page.follow_options] = lambda: FAST
    with live.serving(app) as base, httpx.Client(base_url=base, timeout=30.0) as browser:
        store: journal.Journal = app.state.store
        secret = tokens.create(store, role=auth.Role.OPERATOR, name="bob", created_by="test").secret
        login = browser.post("/login", data={"token": secret, "next": "/runs"})
        assert login.status_code == 303 and login.headers["location"] == "/runs"
        submitted = browser.post(
            "/api/v1/runs",
            json={"scenario": "absence-cover", "environment": "test"},
            headers={"Authorization": f"Bearer {secret}"},
        )
        assert submitted.status_code == 202, submitted.text
        run_id = states.RunId(submitted.json()["id"])
        _wait_for_manual(store, run_id)

        page = parse(browser.get(f"/runs/{run_id}").text)
        root = page.find(id="run")
        stream_url, last_seq = root.attrs["data-live"], int(root.attrs["data-last-seq"])
        assert stream_url == f"/runs/{run_id}/events"
        assert page.find(id="run-state").text() == "INJECTING"
        assert page.find("section", id="step-cover").attrs["data-waiting"] == "true"
        [ack_form] = forms_posting_to(page, f"/runs/{run_id}/steps/cover/ack")

        seen: list[tuple[int, str, dict[str, object]]] = []
        with browser.stream("GET", stream_url, params={"lastEventId": last_seq}) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            with httpx.Client(base_url=base, cookies=browser.cookies, timeout=30.0) as form:
                acked = form.post(
                    f"/runs/{run_id}/steps/cover/ack",
                    data={
                        "csrf_token": hidden(ack_form, "csrf_token"),
                        "idempotency_key": hidden(ack_form, "idempotency_key"),
                        "evidence_text": "payments restored via the runbook",
                    },
                )
            assert acked.status_code == 303, acked.text
            for frame in _frames(stream.iter_lines()):
                seen.append(frame)
                _seq, kind, view = frame
                data = view["data"]
                assert isinstance(data, dict)
                if kind == "state" and data.get("state") in {s.value for s in states.TERMINAL}:
                    break

        final = store.get_run(run_id)
        assert final.state is states.RunState.COMPLETED, final.reason
        seqs = [seq for seq, _, _ in seen]
        assert seqs == sorted(seqs) and min(seqs) > last_seq  # nothing the page already had
        later = [e.seq for e in store.events(run_id) if e.seq > last_seq]
        assert seqs == later[: len(seqs)]
        acks = [view for _, kind, view in seen if kind == "ack"]
        assert len(acks) == 1
        ack_data = acks[0]["data"]
        assert isinstance(ack_data, dict)
        assert (
            ack_data["by"] == "bob" and ack_data["evidence"] == "payments restored via the runbook"
        )
        last_kind, last_view = seen[-1][1], seen[-1][2]
        last_data = last_view["data"]
        assert last_kind == "state" and isinstance(last_data, dict)
        assert last_data["state"] == "completed"

        done = parse(browser.get(f"/runs/{run_id}").text)
        assert done.find(id="run-state").text() == "COMPLETED"
        assert "data-live" not in done.find(id="run").attrs
        assert done.find(id="timeline-picture").find_all("rect", data_kind="manual")
        assert done.find(id="postmortem").find("a", id="report-link")
        assert not forms_posting_to(done, f"/runs/{run_id}/abort")
        step = done.find("section", id="step-cover")
        assert step.attrs["data-waiting"] == "false" and "by bob" in step.text()


def test_the_stream_needs_a_session_even_over_real_http(tmp_path: Path) -> None:
    world = api_conftest.build_world(tmp_path)
    app = app_mod.create_app(
        world.settings, world.api_settings(drive_runs=False, recover_on_start=False)
    )
    with live.serving(app) as base, httpx.Client(base_url=base, timeout=30.0) as anonymous:
        answer = anonymous.get("/runs/latest/events", headers={"Accept": "text/event-stream"})
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/login?next=")
