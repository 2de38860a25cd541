"""The approvals inbox and its decisions: two people on one store, as the two-person rule needs.

Alice (an admin: she may start and approve) starts a drill into the protected Environment
`locked` from its scenario page; the run awaits approval. Bob (an approver) uses a second
browser over the same app and store. The inbox shows who asked, when, and the plan the
approval is for (compared with `POST /api/v1/plans`); Alice's own approval is refused (the
service's two-person rule: 403, nothing recorded), Bob's counts, a rejection needs a reason
and ends the run aborted; every decision (refusals too) is in the audit trail under the
API's action names. Schedules awaiting approval are listed and decided the same way.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator

import pytest
from fastapi import testclient

from drills.service import approvals, audit, auth, documents, schedules
from orchestrator import states
from tests.web.conftest import CSRF, Web
from tests.web.html_tree import Node, parse

API = "/api/v1"

LOCKED_DRILL = """\
apiVersion: stormdrill.dev/v1
kind: Drill
metadata:
  name: locked-absence
spec:
  scenario: absence-cover
  environment: locked
  schedule:
    cron: "0 10 * * 1"
    timezone: UTC
"""


# ---- two browsers on one store -------------------------------------------------------------


@contextlib.contextmanager
def _browser(web: Web, role: auth.Role, name: str) -> Iterator[testclient.TestClient]:
    """A second browser logged in as `name`, over the same app (and so the same store).

    `contextlib.closing`, not the client's own `with`: entering a second TestClient would
    run the app's lifespan again (a second store opened, then closed under the first).
    """
    client = testclient.TestClient(web.client.app, follow_redirects=False)
    with contextlib.closing(client):
        answer = client.post("/login", data={"token": web.issue(role, name=name), "next": "/"})
        assert answer.status_code == 303, answer.text
        yield client


def _csrf(client: testclient.TestClient) -> str:
    found = CSRF.search(client.get("/login").text)
    assert found
    return found.group(1)


def _start_locked(web: Web) -> states.Run:
    """Alice (already logged in on `web.client`) starts absence-cover in `locked`."""
    page = parse(web.client.get("/scenarios/absence-cover").text)
    form = {**page.one("form", cls="scenario-start").fields(), "environment": "locked"}
    answer = web.client.post("/scenarios/absence-cover/run", data=form)
    assert answer.status_code == 303, answer.text
    run = web.store.get_run(states.RunId(answer.headers["location"].removeprefix("/runs/")))
    assert approvals.awaiting_approval(web.store, run)
    return run


def _inbox(client: testclient.TestClient) -> Node:
    answer = client.get("/approvals")
    assert answer.status_code == 200, answer.text
    return parse(answer.text)


def _item(page: Node, run: states.Run) -> Node:
    return page.one("section", data_run=run.id)


def _entries(web: Web, action: str) -> list[audit.Entry]:
    return audit.entries(web.store, where=audit.EntryFilter(action=action), oldest_first=True)


def _awaiting(web: Web, run: states.Run) -> bool:
    return approvals.awaiting_approval(web.store, web.store.get_run(run.id))


# ---- login ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/approvals"), ("POST", "/runs/x/approve"), ("POST", "/runs/x/reject")],
)
def test_the_inbox_and_its_forms_need_a_login(web: Web, method: str, path: str) -> None:
    answer = web.client.request(
        method, path, data={"csrf_token": "x"} if method == "POST" else None
    )
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/login?next=")


# ---- the inbox ------------------------------------------------------------------------------


def test_the_inbox_shows_who_asked_when_and_the_plan_the_approval_is_for(web: Web) -> None:
    web.login(auth.Role.ADMIN, name="alice")
    run = _start_locked(web)
    request = approvals.request(web.store, run.id)
    assert request is not None
    token = web.issue(auth.Role.ADMIN, name="api-admin")
    expected = web.client.post(
        f"{API}/plans",
        json={"scenario": "absence-cover", "environment": "locked"},
        headers={"Authorization": f"Bearer {token}"},
    ).json()

    item = _item(_inbox(web.client), run)

    assert item.one("dd", cls="requester").text() == "alice"
    shown_at = dt.datetime.fromisoformat(item.one("time").attrs["datetime"])
    assert shown_at == request.requested_at.replace(tzinfo=shown_at.tzinfo)
    plan = item.one("div", cls="plan")
    assert plan.attrs["data-plan-environment"] == "locked"
    targets = {
        row.attrs["data-target"]: [c.text() for c in row.all("code")]
        for row in plan.all("tr")
        if "data-target" in row.attrs
    }
    assert targets == {name: t["refs"] for name, t in expected["targets"].items()}
    assert [m.attrs["data-action"] for m in plan.all("li", cls="mutation")] == [
        m["action"] for s in expected["steps"] for m in s["mutations"]
    ]
    # Alice asked: she may reject, but the Approve button is absent, and the page says why.
    assert item.all("form", cls="approve") == []
    assert "two-person rule" in item.one("p", cls="approve-refusal").text()
    assert item.one("form", cls="reject").attrs["action"] == f"/runs/{run.id}/reject"


def test_the_requesters_own_approval_is_refused_and_the_run_still_awaits(web: Web) -> None:
    csrf = web.login(auth.Role.ADMIN, name="alice")
    run = _start_locked(web)
    request = approvals.request(web.store, run.id)
    assert request is not None

    answer = web.client.post(
        f"/runs/{run.id}/approve",
        data={"csrf_token": csrf, "idempotency_key": "self", "plan_hash": request.plan_hash},
    )

    assert answer.status_code == 403
    assert "two-person rule" in parse(answer.text).one("p", cls="error").text()
    assert _awaiting(web, run)
    assert approvals.decisions(web.store, run.id) == ()
    (entry,) = _entries(web, "run.approve")
    assert (entry.principal, entry.status, entry.target) == ("alice", 403, f"runs/{run.id}/approve")


def test_a_second_person_approves_from_the_inbox_once_and_the_run_stops_awaiting(
    web: Web,
) -> None:
    web.login(auth.Role.ADMIN, name="alice")
    run = _start_locked(web)
    request = approvals.request(web.store, run.id)
    assert request is not None

    with _browser(web, auth.Role.APPROVER, "bob") as bob:
        item = _item(_inbox(bob), run)
        assert item.all("p", cls="approve-refusal") == []
        form = item.one("form", cls="approve")
        assert form.attrs["action"] == f"/runs/{run.id}/approve"
        fields = {**form.fields(), "comment": "reviewed with payments on-call"}
        assert fields["plan_hash"] == request.plan_hash  # the plan shown is the one awaited

        first = bob.post(form.attrs["action"], data=fields)
        again = bob.post(form.attrs["action"], data=fields)  # a double click

        assert first.status_code == again.status_code == 303
        assert first.headers["location"] == again.headers["location"] == "/approvals"
        assert _inbox(bob).all("section", data_run=run.id) == []

    after = web.store.get_run(run.id)
    assert after.state is states.RunState.PENDING  # the runner is off here: it would start it
    assert not approvals.awaiting_approval(web.store, after)
    (decision,) = approvals.decisions(web.store, run.id)
    assert (decision.decision, decision.by, decision.comment) == (
        approvals.Decision.APPROVE,
        "bob",
        "reviewed with payments on-call",
    )
    entries = [(e.principal, e.status, e.target) for e in _entries(web, "run.approve")]
    assert entries == [("bob", 303, f"runs/{run.id}/approve")] * 2  # the form, then its replay


def test_a_rejection_needs_a_reason_and_ends_the_run_aborted(web: Web) -> None:
    web.login(auth.Role.ADMIN, name="alice")
    run = _start_locked(web)

    with _browser(web, auth.Role.APPROVER, "bob") as bob:
        form = _item(_inbox(bob), run).one("form", cls="reject")
        empty = bob.post(form.attrs["action"], data={**form.fields(), "reason": "  "})
        assert empty.status_code == 422
        assert "reason" in parse(empty.text).one("p", cls="error").text()
        assert _awaiting(web, run)

        fields = {**form.fields(), "reason": "not during the sale", "next": f"/runs/{run.id}"}
        answer = bob.post(form.attrs["action"], data=fields)

    assert answer.status_code == 303 and answer.headers["location"] == f"/runs/{run.id}"
    ended = web.store.get_run(run.id)
    assert ended.state is states.RunState.ABORTED
    assert "not during the sale" in ended.reason and "bob" in ended.reason
    (decision,) = approvals.decisions(web.store, run.id)
    assert (decision.decision, decision.by) == (approvals.Decision.REJECT, "bob")
    assert [(e.principal, e.status) for e in _entries(web, "run.reject")] == [
        ("bob", 422),
        ("bob", 303),
    ]


def test_a_viewer_sees_why_there_are_no_buttons_and_may_not_decide(web: Web) -> None:
    web.login(auth.Role.ADMIN, name="alice")
    run = _start_locked(web)

    with _browser(web, auth.Role.VIEWER, "victor") as victor:
        item = _item(_inbox(victor), run)
        assert item.all("form") == []
        assert "approver" in item.one("p", cls="approve-refusal").text()
        answer = victor.post(
            f"/runs/{run.id}/approve", data={"csrf_token": _csrf(victor), "idempotency_key": "v"}
        )

    assert answer.status_code == 403
    assert approvals.decisions(web.store, run.id) == ()
    assert [(e.principal, e.status) for e in _entries(web, "run.approve")] == [("victor", 403)]


def test_a_decision_without_the_csrf_token_is_403_and_decides_nothing(web: Web) -> None:
    web.login(auth.Role.ADMIN, name="alice")
    run = _start_locked(web)

    with _browser(web, auth.Role.APPROVER, "bob") as bob:
        form = _item(_inbox(bob), run).one("form", cls="approve").fields()
        for token in ("", "not-the-token"):
            answer = bob.post(f"/runs/{run.id}/approve", data={**form, "csrf_token": token})
            assert answer.status_code == 403
        refused = bob.post(f"/runs/{run.id}/reject", data={"reason": "x", "idempotency_key": "r"})
        assert refused.status_code == 403

    assert approvals.decisions(web.store, run.id) == ()
    assert _awaiting(web, run)


def test_an_unknown_run_is_404_and_a_run_that_needs_no_approval_is_409(web: Web) -> None:
    web.login(auth.Role.ADMIN, name="alice")
    page = parse(web.client.get("/scenarios/absence-cover").text)
    form = {**page.one("form", cls="scenario-start").fields(), "environment": "test"}
    started = web.client.post("/scenarios/absence-cover/run", data=form)
    free = started.headers["location"].removeprefix("/runs/")

    with _browser(web, auth.Role.APPROVER, "bob") as bob:
        csrf = _csrf(bob)
        unknown = bob.post("/runs/no-such-run/approve", data={"csrf_token": csrf})
        unprotected = bob.post(f"/runs/{free}/approve", data={"csrf_token": csrf})

    assert unknown.status_code == 404
    assert unprotected.status_code == 409
    assert "does not await approval" in parse(unprotected.text).one("p", cls="error").text()
    assert [e.status for e in _entries(web, "run.approve")] == [404, 409]


# ---- schedules ------------------------------------------------------------------------------


def _apply_locked_schedule(web: Web) -> schedules.ScheduleView:
    world = web.world
    drill = world.drills / "locked-absence.drill.yaml"
    drill.write_text(LOCKED_DRILL, encoding="utf-8")
    applied = schedules.apply(
        world.settings,
        web.store,
        drill,
        owner="alice",
        folders=documents.Folders(
            scenarios=(world.scenarios,),
            environments=(world.environments,),
            drills=(world.drills,),
        ),
    )
    view = schedules.view(web.store, applied)
    assert view.awaiting_approval
    return view


def test_a_schedule_awaiting_approval_is_listed_and_a_second_person_approves_it(web: Web) -> None:
    view = _apply_locked_schedule(web)
    web.login(auth.Role.ADMIN, name="alice")

    mine = _inbox(web.client).one("section", data_schedule=view.id)
    assert mine.one("dd", cls="requester").text() == "alice"
    assert mine.all("form", cls="approve") == []
    assert "two-person rule" in mine.one("p", cls="approve-refusal").text()

    with _browser(web, auth.Role.APPROVER, "bob") as bob:
        form = _inbox(bob).one("section", data_schedule=view.id).one("form", cls="approve")
        answer = bob.post(form.attrs["action"], data=form.fields())
        assert answer.status_code == 303 and answer.headers["location"] == "/approvals"
        assert _inbox(bob).all("section", data_schedule=view.id) == []

    after = schedules.view(web.store, schedules.get(web.store, view.id))
    assert not after.awaiting_approval
    assert after.approval is not None and after.approval.approved_by == ["bob"]
    (entry,) = _entries(web, "schedule.approve")
    assert (entry.principal, entry.status, entry.target) == (
        "bob",
        303,
        f"schedules/{view.id}/approve",
    )


def test_a_schedule_rejected_with_a_reason_leaves_the_inbox(web: Web) -> None:
    view = _apply_locked_schedule(web)
    web.login(auth.Role.ADMIN, name="alice")

    form = _inbox(web.client).one("section", data_schedule=view.id).one("form", cls="reject")
    answer = web.client.post(form.attrs["action"], data={**form.fields(), "reason": "too often"})

    assert answer.status_code == 303
    after = schedules.view(web.store, schedules.get(web.store, view.id))
    assert after.approval is not None
    assert (after.approval.rejected_by, after.approval.rejection) == ("alice", "too often")
    assert _inbox(web.client).all("section", data_schedule=view.id) == []
    assert [(e.principal, e.status) for e in _entries(web, "schedule.reject")] == [("alice", 303)]


def test_the_inbox_has_no_inline_script_and_says_when_nothing_awaits(web: Web) -> None:
    web.login(auth.Role.APPROVER, name="bob")
    page = _inbox(web.client)
    notices = [p.text() for p in page.all("p", cls="notice")]
    assert notices == ["No run awaits approval.", "No schedule awaits approval."]
    scripts = page.all("script")
    assert scripts and all(s.attrs.get("src", "").startswith("/static/") for s in scripts)
    assert not [n for n in page.walk() if any(k.startswith("on") for k in n.attrs)]


def test_an_approval_of_another_plan_than_the_awaited_one_is_409_and_does_not_count(
    web: Web,
) -> None:
    web.login(auth.Role.ADMIN, name="alice")
    run = _start_locked(web)

    with _browser(web, auth.Role.APPROVER, "bob") as bob:
        form = _item(_inbox(bob), run).one("form", cls="approve").fields()
        answer = bob.post(f"/runs/{run.id}/approve", data={**form, "plan_hash": "0" * 64})

    assert answer.status_code == 409
    assert "awaits plan" in parse(answer.text).one("p", cls="error").text()
    assert approvals.decisions(web.store, run.id) == ()
    assert _awaiting(web, run)
