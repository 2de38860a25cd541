"""In the browser: start a sandbox drill from its scenario page, watch it live, abort another.

The drill is the bundled `az-failure-kubernetes` in the sandbox Environment (a loopback
Kubernetes API server and moto; `stormdrill serve`'s own runner drives it). Starting goes
through the scenario page's Start drill form (the confirm dialog accepted) and lands on
`/runs/{id}`; the page is never reloaded while the run goes on: `#run-state` must reach
`completed` through the page's event stream (an EventSource request is seen), and the
post-mortem (`#postmortem`) is shown once the run ended, with a link to the full report
(HTML with the timeline and probe pictures). The abort is the Abort button of
the run page while the zone is drained; afterwards the page says `aborted`, the API shows
every journal entry reverted, and the sandbox is as it was before. A viewer sees the live
run without an Abort button. The API (httpx, bearer token) is the independent witness.
"""

from __future__ import annotations

import re
import time
from urllib import parse

import pytest
from playwright import sync_api

from orchestrator import mutations, states
from sandbox import stack
from tests.engine_runs import support
from tests.web.browser import conftest

pytestmark = pytest.mark.browser

DRIVE_TIMEOUT_MS = int(conftest.DRIVE_TIMEOUT_S * 1000)
LIVE_STATES = {s.value for s in states.RunState} - {s.value for s in states.TERMINAL}


def _wait_for_applied_mutation(served: conftest.Served, run_id: str) -> None:
    deadline = time.monotonic() + conftest.DRIVE_TIMEOUT_S
    shown = served.run(run_id)
    while not shown["journal"]:
        assert shown["state"] in LIVE_STATES, f"the run ended before it changed anything: {shown}"
        if time.monotonic() > deadline:
            pytest.fail(f"run {run_id} applied nothing within {conftest.DRIVE_TIMEOUT_S}s")
        time.sleep(0.1)
        shown = served.run(run_id)


def test_a_drill_started_from_its_scenario_page_goes_live_to_completed_and_shows_its_report(
    browse: conftest.Browse, served: conftest.Served
) -> None:
    tab = browse(conftest.OPERATOR)
    streams: list[str] = []
    tab.page.on(
        "request",
        lambda request: (
            streams.append(request.url) if request.resource_type == "eventsource" else None
        ),
    )

    run_id, asked = conftest.start_from_scenario_page(
        tab, scenario=conftest.SANDBOX_SCENARIO, environment=stack.ENVIRONMENT_NAME, soak="1m"
    )
    tab.shot(f"run {run_id} just started")
    first_state = tab.page.locator("#run-state").inner_text().strip().lower()

    sync_api.expect(tab.page.locator("#run-state")).to_have_text(
        re.compile("completed", re.IGNORECASE), timeout=DRIVE_TIMEOUT_MS
    )
    tab.shot(f"run {run_id} completed live")

    assert asked and conftest.SANDBOX_SCENARIO in asked[0]
    assert first_state.replace(" ", "_") in LIVE_STATES, first_state
    assert streams and all(parse.urlsplit(url).hostname == conftest.LOOPBACK for url in streams)
    shown = served.wait_until_ended(run_id)
    assert (shown["state"], shown["verdict"]) == ("completed", "held"), shown["reason"]
    assert shown["scenario"] == conftest.SANDBOX_SCENARIO
    assert shown["record"]["trigger"]["principal"] == conftest.OPERATOR

    tab.visit(f"/runs/{run_id}")
    assert tab.page.locator("#timeline-picture svg").count() == 1
    summary = tab.page.locator("#postmortem")
    sync_api.expect(summary).to_be_visible()
    assert summary.get_by_role("heading", name="Summary").is_visible()
    with tab.page.expect_navigation():
        summary.get_by_role("link", name="Open the post-mortem").click()
    assert parse.urlsplit(tab.page.url).path == f"/runs/{run_id}/report"
    tab.shot(f"run {run_id} post-mortem")
    report = tab.page.locator("body")
    assert run_id in report.inner_text() and conftest.SANDBOX_SCENARIO in report.inner_text()
    assert report.locator("svg").count() >= 2  # the timeline and probe pictures
    tab.assert_clean()


def test_a_drill_aborted_from_its_run_page_rolls_back_and_leaves_the_sandbox_as_it_was(
    browse: conftest.Browse, served: conftest.Served
) -> None:
    before = support.snapshot(served.sandbox)
    run_id = served.submit(
        conftest.OPERATOR,
        scenario=conftest.SANDBOX_SCENARIO,
        environment=stack.ENVIRONMENT_NAME,
        parameters={"soak": "25m"},  # 30 s at the sandbox's time scale: time to abort
    )
    _wait_for_applied_mutation(served, run_id)

    watcher = browse(conftest.VIEWER)
    watcher.visit(f"/runs/{run_id}")
    assert watcher.page.get_by_role("button", name=re.compile("Abort")).count() == 0

    tab = browse(conftest.OPERATOR)
    tab.visit(f"/runs/{run_id}")
    asked: list[str] = []

    def accept(dialog: sync_api.Dialog) -> None:
        asked.append(dialog.message)
        dialog.accept()

    tab.page.on("dialog", accept)
    with tab.page.expect_navigation():
        tab.page.get_by_role("button", name=re.compile("Abort")).click()
    assert parse.urlsplit(tab.page.url).path == f"/runs/{run_id}"
    sync_api.expect(tab.page.locator("#run-state")).to_have_text(
        re.compile("aborted", re.IGNORECASE), timeout=DRIVE_TIMEOUT_MS
    )
    tab.shot(f"run {run_id} aborted")

    assert asked, "the Abort button sent the form without asking first"
    shown = served.wait_until_ended(run_id)
    assert shown["state"] == states.RunState.ABORTED.value, shown
    assert shown["journal"] and {e["state"] for e in shown["journal"]} == {
        mutations.EntryState.REVERTED.value
    }
    seen = [e["data"]["state"] for e in shown["timeline"] if e["kind"] == "state"]
    assert "rolling_back" in seen and seen[-1] == "aborted", seen
    support.assert_same_world(before, support.snapshot(served.sandbox))
    assert support.kube_markers(served.sandbox) == []

    tab.visit(f"/runs/{run_id}")
    assert tab.page.get_by_role("button", name=re.compile("Abort")).count() == 0
    changes = tab.page.locator("table.changes tbody tr")
    assert changes.count() == len(shown["journal"])
    for row in changes.all():
        assert "reverted" in row.inner_text().lower(), row.inner_text()
    tab.assert_clean()
    watcher.assert_clean()
