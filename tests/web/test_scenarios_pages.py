"""The scenarios pages: the list, one scenario (YAML, parameters, targets, guardrails), its
plan against an environment, and the Start drill form.

Real tokens and sessions, the app `serve` runs, the API's test world (people-only
scenarios, the environments `test` and `locked`). The plan on the page is compared with
`POST /api/v1/plans` for the same input (a bearer token of the same store); a start is
checked in the store (the run, its trigger, its approval request) and the audit trail, and
the bad paths (no session, no CSRF token, a viewer, the same form sent twice, no
environment) are checked to start nothing.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
import yaml

from drills.service import approvals, audit, auth
from orchestrator import engine, states
from tests.web.conftest import Web, WebFor
from tests.web.html_tree import Node, parse

API = "/api/v1"
WAIT_S = 60.0


# ---- helpers --------------------------------------------------------------------------------


def _bearer(web: Web, role: auth.Role = auth.Role.ADMIN) -> dict[str, str]:
    return {"Authorization": f"Bearer {web.issue(role, name=f'api-{role.value}')}"}


def _start_form(web: Web, name: str, query: str = "") -> dict[str, str]:
    page = web.client.get(f"/scenarios/{name}{query}")
    assert page.status_code == 200, page.text
    return parse(page.text).one("form", cls="scenario-start").fields()


def _start(web: Web, name: str, **fields: str) -> Any:
    form = _start_form(web, name)
    assert form["environment"] == ""  # nothing is chosen for the person
    form.update({"environment": "test", **fields})
    return web.client.post(f"/scenarios/{name}/run", data=form)


def _run_id(location: str) -> states.RunId:
    found = re.fullmatch(r"/runs/(.+)", location)
    assert found, location
    return states.RunId(found.group(1))


def _entries(web: Web, action: str) -> list[audit.Entry]:
    return audit.entries(web.store, where=audit.EntryFilter(action=action), oldest_first=True)


def _web_entries(web: Web, action: str) -> list[audit.Entry]:
    return [e for e in _entries(web, action) if not e.path.startswith(API)]


# ---- login ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/scenarios", "/scenarios/absence-cover"])
def test_the_scenario_pages_send_a_browser_without_a_session_to_log_in(web: Web, path: str) -> None:
    answer = web.client.get(path)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/login?next=" + path.replace("/", "%2F"))


def test_starting_without_a_session_is_sent_to_log_in_and_starts_nothing(web: Web) -> None:
    answer = web.client.post(
        "/scenarios/absence-cover/run", data={"environment": "test", "csrf_token": "x"}
    )
    assert answer.status_code == 303 and answer.headers["location"].startswith("/login")
    assert web.store.list_runs(limit=None) == []


# ---- the list and one scenario --------------------------------------------------------------


def test_the_list_names_every_scenario_the_api_lists_with_mode_description_and_link(
    web: Web,
) -> None:
    web.login(auth.Role.VIEWER, name="reader")
    api = web.client.get(f"{API}/scenarios", headers=_bearer(web, auth.Role.VIEWER)).json()

    page = parse(web.client.get("/scenarios").text)

    rows = [n for n in page.all("tr") if "data-scenario" in n.attrs]
    names = [row.attrs["data-scenario"] for row in rows]
    assert names == [s["name"] for s in api["scenarios"]]
    assert {"absence-cover", "with-secret"} <= set(names)
    by_name = {row.attrs["data-scenario"]: row for row in rows}
    absence = by_name["absence-cover"]
    assert absence.one("a").attrs["href"] == "/scenarios/absence-cover"
    cells = [td.text() for td in absence.all("td")]
    assert cells[0] == "key-person"
    assert cells[1] == "Alice is away; someone of team-payments covers for her."
    assert "inferred from the CMDB" in cells[2]  # it names no services
    assert cells[3] == "30m"
    bundled = next(s for s in api["scenarios"] if s["name"] == "az-failure")
    az = by_name["az-failure"]
    assert az.all("td")[0].text() == bundled["failure_mode"]
    assert "component:default/checkout" in [c.text() for c in az.all("code")]


def test_a_scenario_page_shows_the_api_document_as_yaml_with_the_secret_default_masked(
    web: Web,
) -> None:
    web.login(auth.Role.VIEWER)
    api = web.client.get(f"{API}/scenarios/with-secret", headers=_bearer(web)).json()

    answer = web.client.get("/scenarios/with-secret")

    assert answer.status_code == 200
    assert "tok-default-0123456789" not in answer.text
    page = parse(answer.text)
    shown = yaml.safe_load(page.one("pre", cls="yaml").raw_text())
    assert shown == api["document"]
    assert shown["spec"]["parameters"]["webhookToken"]["default"] == "***"
    params = {
        row.one("th").all("code")[0].text(): [td.text() for td in row.all("td")]
        for row in page.one("table", cls="parameters").all("tr")
        if row.all("td")
    }
    assert params == {
        "webhookToken": ["string", "***", "—"],
        "person": ["string", "user:default/alice", "—"],
    }
    target = page.one("table", cls="targets").one("tr", data_target="absent")
    assert [td.text() for td in target.all("td")][:2] == ["people", "person"]
    assert "user:default/alice" in target.all("td")[2].text()
    assert target.all("td")[3].text() == "1"
    guardrails = {
        row.one("th").text(): row.one("td").text()
        for row in page.one("table", cls="guardrails").all("tr")
    }
    assert guardrails == {"Environments it may run in": "test", "Longest run": "1h"}


def test_an_unknown_scenario_is_a_404_page_with_the_names_it_knows(web: Web) -> None:
    web.login(auth.Role.VIEWER)
    answer = web.client.get("/scenarios/absence-covr")
    assert answer.status_code == 404
    assert "absence-cover" in parse(answer.text).one("p", cls="error").text()


# ---- the plan -------------------------------------------------------------------------------


def test_the_plan_on_the_page_is_the_api_plan_for_the_same_input_and_writes_nothing(
    web: Web,
) -> None:
    web.login(auth.Role.OPERATOR, name="ops")
    api = web.client.post(
        f"{API}/plans",
        json={
            "scenario": "absence-cover",
            "environment": "test",
            "parameters": {"person": "user:default/bob"},
        },
        headers=_bearer(web),
    )
    assert api.status_code == 200, api.text
    expected = api.json()

    answer = web.client.get(
        "/scenarios/absence-cover?environment=test&param.person=user%3Adefault%2Fbob"
    )

    assert answer.status_code == 200, answer.text
    plan = parse(answer.text).one("div", cls="plan")
    assert (plan.attrs["data-plan-scenario"], plan.attrs["data-plan-environment"]) == (
        "absence-cover",
        "test",
    )
    targets = {
        row.attrs["data-target"]: row
        for row in plan.one("table", cls="plan-targets").all("tr")
        if "data-target" in row.attrs
    }
    assert set(targets) == set(expected["targets"])
    for name, row in targets.items():
        want = expected["targets"][name]
        assert int(row.one("span").attrs["data-count"]) == want["count"]
        assert [c.text() for c in row.all("code")] == want["refs"]
        assert row.all("td")[2].text() == (want["limit"] or "no limit")
    steps = plan.one("ol", cls="plan-steps").all("li", cls=None)
    assert [s.attrs["data-step"] for s in steps if "data-step" in s.attrs] == [
        s["name"] for s in expected["steps"]
    ]
    assert [m.attrs["data-action"] for m in plan.all("li", cls="mutation")] == [
        m["action"] for s in expected["steps"] for m in s["mutations"]
    ]
    verdicts = plan.one("table", cls="plan-guardrails").all("tr")[1:]
    assert len(verdicts) == len(expected["guardrails"])
    assert web.store.list_runs(limit=None) == []  # a plan touches nothing
    # The start form below the plan carries what was planned.
    start = parse(answer.text).one("form", cls="scenario-start").fields()
    assert start["environment"] == "test" and start["param.person"] == "user:default/bob"


def test_a_plan_of_an_unknown_environment_says_why_on_the_page_with_404(web: Web) -> None:
    web.login(auth.Role.OPERATOR)
    answer = web.client.get("/scenarios/absence-cover?environment=nowhere")
    assert answer.status_code == 404
    error = parse(answer.text).one("p", cls="plan-error").text()
    assert "no Environment named 'nowhere'" in error
    assert parse(answer.text).all("div", cls="plan") == []


def test_a_viewer_sees_neither_the_plan_form_nor_the_start_form_and_why(web: Web) -> None:
    web.login(auth.Role.VIEWER, name="reader")
    page = parse(web.client.get("/scenarios/absence-cover").text)
    assert page.all("form", cls="scenario-plan") == []
    assert page.all("form", cls="scenario-start") == []
    said = page.one("main").text()
    assert "You may not plan drills" in said and "You may not start drills" in said

    asked = web.client.get("/scenarios/absence-cover?environment=test")
    assert asked.status_code == 403
    assert parse(asked.text).all("div", cls="plan") == []


# ---- starting a drill -----------------------------------------------------------------------


def test_an_operator_starts_a_run_as_the_api_would_and_is_sent_to_its_page(web: Web) -> None:
    web.login(auth.Role.OPERATOR, name="ops")

    answer = _start(web, "absence-cover", **{"param.person": "user:default/bob"})

    assert answer.status_code == 303, answer.text
    run_id = _run_id(answer.headers["location"])
    run = web.store.get_run(run_id)
    assert (run.scenario, run.environment, run.state) == (
        "absence-cover",
        "test",
        states.RunState.PENDING,
    )
    trigger = run.record.trigger
    assert trigger is not None
    assert (trigger.kind, trigger.principal) == (engine.TriggerKind.API, "ops")
    assert run.record.parameters["person"] == "user:default/bob"
    assert approvals.request(web.store, run.id) is None  # `test` is not protected
    (entry,) = _web_entries(web, "run.start")
    assert (entry.principal, entry.target, entry.status, entry.method) == (
        "ops",
        f"runs/{run_id}",
        303,
        "POST",
    )
    assert entry.path == "/scenarios/absence-cover/run"


def test_starting_without_the_csrf_token_is_403_and_starts_nothing(web: Web) -> None:
    web.login(auth.Role.OPERATOR)
    form = {**_start_form(web, "absence-cover"), "environment": "test"}
    for token in ("", "wrong-token"):
        form["csrf_token"] = token
        answer = web.client.post("/scenarios/absence-cover/run", data=form)
        assert answer.status_code == 403
        assert "CSRF" in parse(answer.text).one("p", cls="error").text()
    assert web.store.list_runs(limit=None) == []


def test_a_viewer_may_not_start_a_drill_and_the_refusal_is_audited(web: Web) -> None:
    csrf = web.login(auth.Role.VIEWER, name="reader")

    answer = web.client.post(
        "/scenarios/absence-cover/run",
        data={"csrf_token": csrf, "idempotency_key": "k1", "environment": "test"},
    )

    assert answer.status_code == 403
    assert "start drills" in parse(answer.text).one("p", cls="error").text()
    assert web.store.list_runs(limit=None) == []
    (entry,) = _web_entries(web, "run.start")
    assert (entry.principal, entry.status, entry.target) == (
        "reader",
        403,
        "scenarios/absence-cover",
    )


def test_the_same_form_sent_twice_starts_one_run(web: Web) -> None:
    web.login(auth.Role.OPERATOR)
    form = {**_start_form(web, "absence-cover"), "environment": "test"}
    assert form["idempotency_key"]

    first = web.client.post("/scenarios/absence-cover/run", data=form)
    second = web.client.post("/scenarios/absence-cover/run", data=form)

    assert first.status_code == second.status_code == 303
    assert first.headers["location"] == second.headers["location"]
    assert [r.id for r in web.store.list_runs(limit=None)] == [_run_id(first.headers["location"])]
    # A fresh page draws a fresh key: that form starts another run.
    third = _start(web, "absence-cover")
    assert third.headers["location"] != first.headers["location"]
    assert len(web.store.list_runs(limit=None)) == 2


def test_a_run_in_a_protected_environment_is_submitted_awaiting_approval(web: Web) -> None:
    web.login(auth.Role.OPERATOR, name="ops")

    answer = _start(web, "absence-cover", environment="locked")

    assert answer.status_code == 303
    run = web.store.get_run(_run_id(answer.headers["location"]))
    assert run.state is states.RunState.PENDING and run.environment == "locked"
    assert approvals.awaiting_approval(web.store, run)
    request = approvals.request(web.store, run.id)
    assert request is not None and request.requester == "ops" and request.required == 1


def test_a_start_without_an_environment_is_422_and_starts_nothing(web: Web) -> None:
    web.login(auth.Role.OPERATOR)
    answer = _start(web, "absence-cover", environment="")
    assert answer.status_code == 422
    assert "choose the environment" in parse(answer.text).one("p", cls="error").text()
    assert web.store.list_runs(limit=None) == []


def test_a_start_of_an_unknown_scenario_is_404(web: Web) -> None:
    csrf = web.login(auth.Role.OPERATOR)
    answer = web.client.post(
        "/scenarios/weekly-absence/run",  # a Drill's name, not a Scenario's
        data={"csrf_token": csrf, "idempotency_key": "k2", "environment": "test"},
    )
    assert answer.status_code == 404
    assert web.store.list_runs(limit=None) == []


def test_the_serve_runner_drives_a_run_started_from_the_page_to_completed(
    web_for: WebFor,
) -> None:
    web = web_for(drive_runs=True)
    web.login(auth.Role.OPERATOR, name="ops")

    answer = _start(web, "with-secret", environment="test")

    assert answer.status_code == 303, answer.text
    run_id = _run_id(answer.headers["location"])
    deadline = time.monotonic() + WAIT_S
    while web.store.get_run(run_id).state not in states.TERMINAL:
        if time.monotonic() > deadline:
            pytest.fail(f"run {run_id} did not end: {web.store.get_run(run_id).state}")
        time.sleep(0.05)
    run = web.store.get_run(run_id)
    assert run.state is states.RunState.COMPLETED, run.reason
    assert run.record.parameters["webhookToken"] != "tok-default-0123456789"  # masked


def _plan_page(web: Web, name: str, environment: str) -> tuple[Node, dict[str, Any]]:
    api = web.client.post(
        f"{API}/plans", json={"scenario": name, "environment": environment}, headers=_bearer(web)
    )
    assert api.status_code == 200, api.text
    answer = web.client.get(f"/scenarios/{name}?environment={environment}")
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = api.json()
    return parse(answer.text).one("div", cls="plan"), body


def test_a_plan_in_a_protected_environment_says_it_needs_approval_not_that_it_is_refused(
    web: Web,
) -> None:
    web.login(auth.Role.OPERATOR)
    plan, api = _plan_page(web, "absence-cover", "locked")
    assert api["refused"] is True  # the engine's approvals guardrail: nobody approved yet
    assert [g["rule"] for g in api["guardrails"] if not g["ok"]] == ["approvals"]
    assert plan.one("p", cls="plan-verdict").text().startswith("⏸ Needs approval")
    verdicts = {
        row.one("th").text().split(" (")[0]: row.all("td")[0].text()
        for row in plan.one("table", cls="plan-guardrails").all("tr")[1:]
    }
    assert verdicts["approvals"] == "⏸ awaits approval"
    assert {v for rule, v in verdicts.items() if rule != "approvals"} == {"✓ passes"}


def test_a_plan_a_guardrail_refuses_says_so_with_the_refusing_verdict(web: Web) -> None:
    web.login(auth.Role.OPERATOR)
    plan, api = _plan_page(web, "with-secret", "locked")  # it may run in `test` only
    assert api["refused"] is True
    refusing = [g["rule"] for g in api["guardrails"] if not g["ok"]]
    assert "environment" in refusing
    assert plan.one("p", cls="plan-verdict").text().startswith("✗ Refused")
    failed = [
        row.one("th").text().split(" (")[0]
        for row in plan.one("table", cls="plan-guardrails").all("tr")[1:]
        if row.all("td")[0].text() == "✗ refuses"
    ]
    assert failed == refusing


def test_the_scenario_pages_have_no_inline_script(web: Web) -> None:
    web.login(auth.Role.ADMIN)
    for path in ("/scenarios", "/scenarios/absence-cover?environment=test"):
        page = parse(web.client.get(path).text)
        scripts = page.all("script")
        assert scripts and all(s.attrs.get("src", "").startswith("/static/") for s in scripts)
        assert all(not s.raw_text().strip() for s in scripts)
        assert not [n for n in page.walk() if any(k.startswith("on") for k in n.attrs)]
