"""The game-day resource over HTTP: a whole game day, who may act, bad documents, problems,
idempotency and the audit trail, on the route tests' world (a real SQLite store)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import fastapi
import httpx
import pytest
from fastapi import testclient

from drills.api import app as app_mod
from drills.api import audit as api_audit
from drills.api import deps, idempotency
from drills.service import audit, auth
from drills.service import idempotency as idempotency_store
from orchestrator import engine, journal, records, states
from tests.api import conftest

API = "/api/v1"
ALICE = "user:default/alice"  # facilitator
BOB = "user:default/bob"  # operator
DAVE = "user:default/dave"  # approver
ROLE_HEADER = "X-Test-Role"
USER_HEADER = "X-Test-User"


def window_around_now() -> tuple[datetime, datetime]:
    """From an hour ago to two hours from now: a window the route's real clock may start
    a game day in (the start route starts at the time it is called)."""
    now = datetime.now(UTC).replace(microsecond=0)
    return now - timedelta(hours=1), now + timedelta(hours=2)


def document(
    *,
    name: str = "checkout-gameday",
    drills: str | None = None,
    window: tuple[datetime, datetime] | None = None,
) -> str:
    """A GameDay of three drills: a Drill by name (auto gate), a bundled scenario (manual),
    a scenario of the API's scenario folder (approval); its window around now unless
    `window` is given."""
    start, end = window or window_around_now()
    listed = drills or (
        "    - drill: weekly-absence\n"
        "      gate: auto\n"
        "    - scenario: third-party-outage\n"
        "      environment: test\n"
        "      gate: manual\n"
        "    - scenario: absence-cover\n"
        "      environment: test\n"
        "      gate: approval\n"
    )
    return (
        "apiVersion: stormdrill.dev/v1\n"
        "kind: GameDay\n"
        "metadata:\n"
        f"  name: {name}\n"
        "spec:\n"
        "  window:\n"
        f'    start: "{start.isoformat()}"\n'
        f'    end: "{end.isoformat()}"\n'
        "    timezone: Europe/Berlin\n"
        "  services: [checkout]\n"
        "  channel: https://chat.example.com/channels/shop-oncall\n"
        "  participants:\n"
        f"    - person: {ALICE}\n"
        "      roles: [facilitator]\n"
        f"    - person: {BOB}\n"
        "      roles: [operator]\n"
        f"    - person: {DAVE}\n"
        "      roles: [approver, service-owner]\n"
        "  drills:\n" + listed
    )


def _by_header(request: fastapi.Request) -> auth.Principal:
    """Who calls: `X-Test-User` (default alice) with the role `X-Test-Role` (operator)."""
    return auth.Principal(
        name=request.headers.get(USER_HEADER, "alice"),
        roles=frozenset({auth.Role(request.headers.get(ROLE_HEADER, "operator"))}),
    )


@pytest.fixture
def client(api_world: conftest.ApiWorld) -> Iterator[testclient.TestClient]:
    app = app_mod.create_app(
        api_world.settings, api_world.api_settings(drive_runs=False, recover_on_start=False)
    )
    app.dependency_overrides[deps.get_principal] = _by_header
    with testclient.TestClient(app) as test_client:
        yield test_client


def as_(user: str, role: str = "operator") -> dict[str, str]:
    return {USER_HEADER: user, ROLE_HEADER: role}


def create(
    client: testclient.TestClient, text: str | None = None, **headers: str
) -> httpx.Response:
    answer: httpx.Response = client.post(
        f"{API}/gamedays",
        content=(text or document()).encode(),
        headers={"Content-Type": "application/yaml", **headers},
    )
    return answer


def finished_run(store: journal.Journal, verdict: states.Verdict | None) -> str:
    """A run in the store: ended with `verdict`, or (None) still pending."""
    run = states.new_run(
        id=states.new_run_id(datetime.now(UTC)),
        scenario="absence-cover",
        environment="test",
        environment_source="test.environment.yaml",
        owner=journal.UNCLAIMED,
        at=datetime.now(UTC),
        record=records.RunRecord(time_scale=1.0),
    )
    store.create_run(run)
    if verdict is not None:
        done = dataclasses.replace(run, state=states.RunState.COMPLETED, verdict=verdict)
        store.save_run(done, expected_state=states.RunState.PENDING)
    return run.id


def day_path(day: str, tail: str = "") -> str:
    return f"{API}/gamedays/{day}{tail}"


# ---- the whole game day -------------------------------------------------------------------


def test_a_game_day_runs_from_its_document_to_its_verdict_over_http(
    client: testclient.TestClient, api_world: conftest.ApiWorld
) -> None:
    store = conftest.store_of(client)
    held_run = finished_run(store, states.Verdict.HELD)

    window = window_around_now()
    created = create(client, document(window=window))
    day = created.json()
    started = client.post(day_path(day["id"], "/start"))
    first = client.post(day_path(day["id"], "/drills/1/result"), json={"runId": held_run})
    manual = client.post(
        day_path(day["name"], "/drills/2/gate"), json={"decision": "go"}, headers=as_("alice")
    )
    second = client.post(day_path(day["id"], "/drills/2/result"), json={"verdict": "deviated"})
    approval = client.post(
        day_path(day["id"], "/drills/3/gate"), json={"decision": "go"}, headers=as_("dave")
    )
    noted = client.post(
        day_path(day["id"], "/notes"),
        json={"text": "payments fell back to the second provider"},
        headers=as_("user:default/bob"),
    )
    finding = client.post(
        day_path(day["id"], "/notes"),
        json={
            "text": "the fallback took 4 minutes: alert earlier",
            "kind": "finding",
            "owner": BOB,
            "due": "2026-12-31",
            "ticketUrl": "https://tickets.example.com/SRE-42",
        },
        headers=as_("bob"),
    )
    absent = client.post(day_path(day["id"], f"/participants/{BOB}/absent"))
    third = client.post(day_path(day["id"], "/drills/3/result"), json={"verdict": "held"})
    closed = client.post(
        day_path(day["id"], "/close"), json={"verdict": "Checkout survives; alert sooner"}
    )
    shown = client.get(day_path(day["name"]))
    listed = client.get(f"{API}/gamedays")

    assert created.status_code == 201, created.text
    assert created.headers["location"] == f"/api/v1/gamedays/{day['id']}"
    assert day["state"] == "planned" and day["createdBy"] == "alice"
    assert datetime.fromisoformat(day["windowStart"]) == window[0]
    assert [d["gate"] for d in day["drills"]] == ["auto", "manual", "approval"]
    assert day["drills"][0]["drill"] == str(
        (api_world.drills / "weekly-absence.drill.yaml").resolve()
    )
    assert day["drills"][1]["scenario"] == "third-party-outage"  # bundled: by name
    assert day["drills"][2]["scenario"] == str(api_world.scenarios / "absence-cover.yaml")
    environment = str(api_world.environments / "test.environment.yaml")
    assert [d["environment"] for d in day["drills"]] == [None, environment, environment]
    assert started.status_code == 200 and started.json()["state"] == "running"
    assert started.json()["drills"][0]["decision"] == "go"
    assert started.json()["drills"][0]["decidedBy"] == "auto"
    assert first.status_code == 200, first.text
    assert first.json()["drills"][0] | {"decidedAt": None} == {
        "position": 1,
        "drill": day["drills"][0]["drill"],
        "scenario": None,
        "environment": None,
        "gate": "auto",
        "decision": "go",
        "decidedBy": "auto",
        "decidedAt": None,
        "runId": held_run,
        "verdict": "held",
    }
    assert manual.status_code == 200, manual.text
    assert manual.json()["drills"][1]["decidedBy"] == ALICE  # the participant's spelling
    assert second.json()["drills"][1]["verdict"] == "deviated"
    assert approval.status_code == 200, approval.text
    assert approval.json()["drills"][2]["decidedBy"] == DAVE
    assert noted.status_code == 201, noted.text
    assert noted.json()["author"] == BOB and noted.json()["kind"] == "note"
    assert finding.status_code == 201, finding.text
    assert finding.json() | {"at": None} == {
        "at": None,
        "author": BOB,
        "kind": "finding",
        "text": "the fallback took 4 minutes: alert earlier",
        "actionOwner": BOB,
        "due": "2026-12-31",
        "ticketUrl": "https://tickets.example.com/SRE-42",
    }
    assert absent.status_code == 200, absent.text
    assert [p["absent"] for p in absent.json()["participants"]] == [False, True, False]
    assert third.status_code == 200, third.text
    assert closed.status_code == 200 and closed.json()["state"] == "closed"
    final = shown.json()
    assert final["verdict"] == "Checkout survives; alert sooner"
    assert [d["verdict"] for d in final["drills"]] == ["held", "deviated", "held"]
    assert [(n["kind"], n["author"]) for n in final["notes"]] == [
        ("note", BOB),
        ("finding", BOB),
    ]
    assert listed.status_code == 200 and listed.json() == [final]


def test_a_game_day_document_may_come_as_json(client: testclient.TestClient) -> None:
    as_json = json.dumps(
        {
            "apiVersion": "stormdrill.dev/v1",
            "kind": "GameDay",
            "metadata": {"name": "tabletop"},
            "spec": {
                "window": {
                    "start": "2026-12-09T14:00:00Z",
                    "end": "2026-12-09T15:00:00Z",
                    "timezone": "UTC",
                },
                "participants": [{"person": "alice", "roles": ["facilitator"]}],
                "drills": [{"scenario": "key-person-loss", "environment": "test"}],
            },
        }
    )

    answer = client.post(
        f"{API}/gamedays", content=as_json, headers={"Content-Type": "application/json"}
    )

    assert answer.status_code == 201, answer.text
    assert answer.json()["drills"][0]["gate"] == "manual"
    assert answer.json()["channel"] == ""


# ---- running a drill ----------------------------------------------------------------------


def test_running_a_drill_submits_its_run_once_and_the_slot_takes_the_runs_verdict(
    client: testclient.TestClient,
) -> None:
    store = conftest.store_of(client)
    day = create(client).json()
    client.post(day_path(day["id"], "/start"))
    client.post(day_path(day["id"], "/drills/1/result"), json={"verdict": "held"})
    client.post(day_path(day["id"], "/drills/2/gate"), json={"decision": "go"})
    client.post(day_path(day["id"], "/drills/2/result"), json={"verdict": "held"})
    client.post(day_path(day["id"], "/drills/3/gate"), json={"decision": "go"}, headers=as_("dave"))

    by_approver = client.post(day_path(day["id"], "/drills/3/run"), headers=as_("dave"))
    ran = client.post(day_path(day["id"], "/drills/3/run"), headers=as_("bob"))
    again = client.post(day_path(day["id"], "/drills/3/run"), headers=as_("bob"))
    run_id = ran.json()["drills"][2]["runId"]
    pending = store.get_run(states.RunId(run_id))
    store.save_run(
        dataclasses.replace(pending, state=states.RunState.COMPLETED, verdict=states.Verdict.HELD),
        expected_state=states.RunState.PENDING,
    )
    shown = client.get(day_path(day["id"]), headers=as_("val", "viewer"))

    assert conftest.problem_of(by_approver)["status"] == 409
    assert "may not run drills; an operator or the facilitator runs them" in by_approver.text
    assert ran.status_code == 202, ran.text
    assert ran.headers["location"] == f"/api/v1/runs/{run_id}"
    assert ran.json()["drills"][2]["verdict"] is None
    assert pending.state is states.RunState.PENDING and pending.scenario == "absence-cover"
    trigger = pending.record.trigger
    assert trigger is not None and trigger.kind is engine.TriggerKind.GAMEDAY
    assert conftest.problem_of(again)["status"] == 409
    assert f"drill 3 was started already as run {run_id}" in again.json()["detail"]
    assert [r.id for r in store.list_runs()] == [run_id]
    assert shown.json()["drills"][2] | {"decidedAt": None} == {
        "position": 3,
        "drill": None,
        "scenario": day["drills"][2]["scenario"],
        "environment": day["drills"][2]["environment"],
        "gate": "approval",
        "decision": "go",
        "decidedBy": DAVE,
        "decidedAt": None,
        "runId": run_id,
        "verdict": "held",  # synced from the run that ended
    }


# ---- the report ---------------------------------------------------------------------------


def test_the_report_comes_as_markdown_html_and_json_with_each_drills_postmortem(
    client: testclient.TestClient,
) -> None:
    store = conftest.store_of(client)
    held_run = finished_run(store, states.Verdict.HELD)
    day = create(client).json()
    client.post(day_path(day["id"], "/start"))
    client.post(day_path(day["id"], "/drills/1/result"), json={"runId": held_run})
    client.post(
        day_path(day["id"], "/notes"),
        json={"text": "the runbook lacked the cover rota", "kind": "finding", "owner": BOB},
        headers=as_("bob"),
    )
    client.post(day_path(day["id"], "/close"), json={"verdict": "Covered after one drill"})
    viewer = as_("val", "viewer")

    md = client.get(day_path(day["name"], "/report"), headers=viewer)
    html = client.get(day_path(day["id"], "/report"), params={"format": "html"}, headers=viewer)
    as_json = client.get(day_path(day["id"], "/report"), params={"format": "json"})
    bad = client.get(day_path(day["id"], "/report"), params={"format": "pdf"})
    unknown = client.get(day_path("no-such-day", "/report"))

    assert md.status_code == 200 and md.headers["content-type"].startswith("text/markdown")
    assert md.text.startswith("#") and "checkout-gameday" in md.text
    assert "the runbook lacked the cover rota" in md.text
    assert f"/api/v1/runs/{held_run}/report?format=md" in md.text
    assert html.status_code == 200 and "<html" in html.text.lower()
    data = as_json.json()
    assert as_json.headers["content-type"] == "application/json"
    assert (data["name"], data["state"], data["verdict"]) == (
        "checkout-gameday",
        "closed",
        "Covered after one drill",
    )
    assert data["drills"][0]["runId"] == held_run
    assert data["drills"][0]["postmortem"]["json"] == f"/api/v1/runs/{held_run}/report?format=json"
    assert conftest.problem_of(bad)["status"] == 422
    assert "query.format" in bad.json()["detail"]
    assert conftest.problem_of(unknown)["status"] == 404


# ---- who may act --------------------------------------------------------------------------


CHANGES: list[tuple[str, dict[str, Any] | None]] = [
    ("/start", None),
    ("/notes", {"text": "hello"}),
    ("/drills/1/gate", {"decision": "go"}),
    ("/drills/1/result", {"verdict": "held"}),
    ("/drills/1/run", None),
    (f"/participants/{BOB}/absent", None),
    ("/close", {"verdict": "done"}),
]


def test_a_viewer_reads_game_days_but_changes_none(client: testclient.TestClient) -> None:
    day = create(client).json()
    viewer = as_("val", "viewer")

    refused_create = create(client, document(name="another"), **viewer)
    refused = [
        client.post(day_path(day["id"], tail), json=body, headers=viewer) for tail, body in CHANGES
    ]
    listed = client.get(f"{API}/gamedays", headers=viewer)
    shown = client.get(day_path(day["id"]), headers=viewer)

    assert conftest.problem_of(refused_create)["status"] == 403
    for answer in refused:
        problem = conftest.problem_of(answer)
        assert problem["status"] == 403, answer.text
        assert "val (viewer) may not start drills" in problem["detail"]
    assert listed.status_code == 200 and [d["id"] for d in listed.json()] == [day["id"]]
    assert shown.status_code == 200
    assert shown.json() == day  # nothing changed: still planned, no notes


def test_an_operator_who_is_no_participant_may_not_write_notes_or_decide_gates(
    client: testclient.TestClient,
) -> None:
    day = create(client).json()
    client.post(day_path(day["id"], "/start"))
    client.post(day_path(day["id"], "/drills/1/result"), json={"verdict": "held"})

    note = client.post(day_path(day["id"], "/notes"), json={"text": "hi"}, headers=as_("eve"))
    gate = client.post(
        day_path(day["id"], "/drills/2/gate"), json={"decision": "go"}, headers=as_("eve")
    )

    for answer in (note, gate):
        problem = conftest.problem_of(answer)
        assert problem["status"] == 403
        assert "'eve' is not a participant" in problem["detail"]
        assert "add 'user:default/eve' to spec.participants" in problem["detail"]
    assert client.get(day_path(day["id"])).json()["notes"] == []


def test_a_participant_marked_absent_acts_no_more(client: testclient.TestClient) -> None:
    day = create(client).json()
    client.post(day_path(day["id"], "/start"))
    client.post(day_path(day["id"], "/participants/alice/absent"))  # the short spelling

    note = client.post(day_path(day["id"], "/notes"), json={"text": "hi"}, headers=as_("alice"))

    problem = conftest.problem_of(note)
    assert problem["status"] == 403
    assert f"{ALICE!r} is marked absent" in problem["detail"]


def test_a_manual_gate_is_the_facilitators_and_an_approval_gate_not_theirs(
    client: testclient.TestClient,
) -> None:
    day = create(client).json()
    client.post(day_path(day["id"], "/start"))
    client.post(day_path(day["id"], "/drills/1/result"), json={"verdict": "held"})

    by_bob = client.post(
        day_path(day["id"], "/drills/2/gate"), json={"decision": "go"}, headers=as_("bob")
    )
    client.post(day_path(day["id"], "/drills/2/gate"), json={"decision": "go"})  # alice
    client.post(day_path(day["id"], "/drills/2/result"), json={"verdict": "held"})
    by_alice = client.post(day_path(day["id"], "/drills/3/gate"), json={"decision": "go"})

    assert conftest.problem_of(by_bob)["status"] == 409
    assert f"only the facilitator ({ALICE}) decides it" in by_bob.json()["detail"]
    assert conftest.problem_of(by_alice)["status"] == 409
    assert "needs an approval" in by_alice.json()["detail"]


# ---- refused moves and unknown things -----------------------------------------------------


def test_moves_the_game_day_refuses_are_409_naming_the_fix(
    client: testclient.TestClient,
) -> None:
    store = conftest.store_of(client)
    pending = finished_run(store, None)
    day = create(client).json()

    early_note = client.post(day_path(day["id"], "/notes"), json={"text": "hi"})
    client.post(day_path(day["id"], "/start"))
    twice = client.post(day_path(day["id"], "/start"))
    ungated = client.post(day_path(day["id"], "/drills/2/result"), json={"verdict": "held"})
    unfinished = client.post(day_path(day["id"], "/drills/1/result"), json={"runId": pending})
    auto_gate = client.post(day_path(day["id"], "/drills/1/gate"), json={"decision": "go"})

    details = {
        "early note": (early_note, "cannot take notes in a game day that is planned"),
        "start twice": (twice, "cannot start a game day that is running"),
        "ungated": (ungated, "drill 2's gate is undecided"),
        "unfinished run": (unfinished, f"run {pending} has no verdict yet (it is pending)"),
        "decided gate": (auto_gate, "the gate of drill 1 was decided already (go by auto)"),
    }
    for what, (answer, detail) in details.items():
        problem = conftest.problem_of(answer)
        assert problem["status"] == 409, what
        assert problem["type"].endswith("/conflict"), what
        assert detail in problem["detail"], (what, problem["detail"])
    assert client.get(day_path(day["id"])).json()["drills"][0]["verdict"] is None


def test_unknown_game_days_positions_participants_and_runs_are_404(
    client: testclient.TestClient,
) -> None:
    day = create(client).json()
    client.post(day_path(day["id"], "/start"))

    unknown = [
        client.get(day_path("no-such-day")),
        *(client.post(day_path("no-such-day", tail), json=body) for tail, body in CHANGES),
    ]
    position = client.post(day_path(day["id"], "/drills/4/gate"), json={"decision": "go"})
    person = client.post(day_path(day["id"], "/participants/user:default/zed/absent"))
    run = client.post(day_path(day["id"], "/drills/1/result"), json={"runId": "nope"})

    for answer in unknown:
        problem = conftest.problem_of(answer)
        assert problem["status"] == 404, answer.text
        assert "no game day has the id or name 'no-such-day'" in problem["detail"]
    assert "no drill at position 4; positions are 1 to 3" in conftest.problem_of(position)["detail"]
    assert position.status_code == 404
    assert person.status_code == 404
    assert "'user:default/zed' is not a participant; name one of" in person.json()["detail"]
    assert run.status_code == 404, run.text


@pytest.mark.parametrize(
    ("tail", "body", "said"),
    [
        ("/notes", {"text": "   "}, "body.text: Value error, text is blank; say what happened"),
        (
            "/notes",
            {"text": "hi", "owner": BOB},
            "owner, due and ticketUrl belong to a finding",
        ),
        (
            "/notes",
            {"text": "hi", "kind": "finding", "ticketUrl": "SRE-42"},
            "body.ticketUrl: String should match pattern",
        ),
        ("/drills/1/result", {}, "give exactly one of runId"),
        ("/drills/1/result", {"runId": "x", "verdict": "held"}, "give exactly one of runId"),
        ("/drills/0/gate", {"decision": "go"}, "path.position: Input should be greater than"),
        ("/drills/1/gate", {"decision": "maybe"}, "body.decision: Input should be 'go'"),
        ("/close", {"verdict": ""}, "body.verdict: Value error, verdict is blank"),
    ],
)
def test_bad_request_bodies_are_422_naming_the_field(
    client: testclient.TestClient, tail: str, body: dict[str, Any], said: str
) -> None:
    day = create(client).json()
    client.post(day_path(day["id"], "/start"))

    answer = client.post(day_path(day["id"], tail), json=body)

    problem = conftest.problem_of(answer)
    assert problem["status"] == 422
    assert any(said in line for line in problem["errors"]), problem["errors"]


# ---- bad documents ------------------------------------------------------------------------


def test_an_invalid_document_is_422_placing_each_problem_at_file_line_column(
    client: testclient.TestClient,
) -> None:
    text = document().replace("timezone: Europe/Berlin", "timezone: Mars/Olympus")
    text = text.replace("  services:", "  servcies:")

    answer = client.post(
        f"{API}/gamedays",
        params={"filename": "checkout.gameday.yaml"},
        content=text.encode(),
        headers={"Content-Type": "application/yaml"},
    )

    problem = conftest.problem_of(answer)
    assert answer.status_code == 422 and problem["type"].endswith("/invalid-document")
    assert len(problem["errors"]) == 2, problem["errors"]
    zone, typo = sorted(problem["errors"], key=lambda line: "timezone" not in line)
    assert zone.startswith("checkout.gameday.yaml:9:15: spec.window.timezone: ")
    assert "'Mars/Olympus' is not an IANA time zone" in zone
    assert typo.startswith("checkout.gameday.yaml:10:3: spec.servcies: ")
    assert {p["field"] for p in problem["problems"]} == {"spec.window.timezone", "spec.servcies"}
    assert client.get(f"{API}/gamedays").json() == []


def test_drills_naming_documents_the_api_does_not_have_are_placed_at_their_field(
    client: testclient.TestClient,
) -> None:
    drills = (
        "    - drill: weekly-absense\n"
        "    - scenario: ../../etc/hosts.yaml\n"
        "      environment: test\n"
        "    - scenario: third-party-outage\n"
        "      environment: prod\n"
    )

    answer = create(client, document(drills=drills))

    problem = conftest.problem_of(answer)
    assert answer.status_code == 422
    drill, outside, environment = problem["errors"]
    assert drill.startswith("gameday.yaml:20:14: spec.drills[0].drill: no Drill named")
    assert "did you mean 'weekly-absence'" in drill
    assert outside.startswith("gameday.yaml:21:17: spec.drills[1].scenario: ")
    assert "no such file inside the configured folders" in outside
    assert environment.startswith("gameday.yaml:24:20: spec.drills[2].environment: ")
    assert "no Environment named 'prod'" in environment
    assert client.get(f"{API}/gamedays").json() == []


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("a: [1, 2\n", "gameday.yaml:2:1: "),
        (
            "apiVersion: stormdrill.dev/v1\nkind: Drill\nmetadata: {name: x}\n",
            "gameday.yaml:2:7: kind: holds no GameDay document",
        ),
        (document() + "---\n" + document(name="two"), "2 documents; send one GameDay"),
        (
            document().replace("roles: [facilitator]", "roles: [scribe]"),
            "gameday.yaml:5:1: spec: participants need exactly one facilitator (found 0)",
        ),
    ],
)
def test_documents_that_are_no_single_valid_game_day_are_422(
    client: testclient.TestClient, text: str, said: str
) -> None:
    answer = create(client, text)

    problem = conftest.problem_of(answer)
    assert answer.status_code == 422
    assert any(said in line for line in problem["errors"]), problem["errors"]


def test_a_second_game_day_of_a_taken_name_is_409(client: testclient.TestClient) -> None:
    first = create(client)
    second = create(client)

    assert first.status_code == 201
    problem = conftest.problem_of(second)
    assert problem["status"] == 409
    assert "a game day named 'checkout-gameday' exists" in problem["detail"]
    assert len(client.get(f"{API}/gamedays").json()) == 1


# ---- idempotency and the audit trail ------------------------------------------------------


def test_a_repeated_idempotency_key_answers_the_first_response_and_does_nothing_again(
    client: testclient.TestClient,
) -> None:
    text = document()  # one body: its window is computed from the clock
    first = create(client, text, **{idempotency_store.HEADER: "create-1"})
    again = create(client, text, **{idempotency_store.HEADER: "create-1"})
    day = first.json()
    client.post(day_path(day["id"], "/start"))
    key = {idempotency_store.HEADER: "note-1"}
    note = client.post(day_path(day["id"], "/notes"), json={"text": "once"}, headers=key)
    note_again = client.post(day_path(day["id"], "/notes"), json={"text": "once"}, headers=key)
    other = client.post(day_path(day["id"], "/notes"), json={"text": "twice"}, headers=key)

    assert first.status_code == again.status_code == 201
    assert again.json() == day and again.headers[idempotency.REPLAYED] == "true"
    assert again.headers["location"] == first.headers["location"]
    assert note_again.json() == note.json() and note_again.headers[idempotency.REPLAYED] == "true"
    assert conftest.problem_of(other)["status"] == 422  # the key came with another body
    assert len(client.get(f"{API}/gamedays").json()) == 1
    assert [n["text"] for n in client.get(day_path(day["id"])).json()["notes"]] == ["once"]


def test_every_change_writes_one_audit_entry_naming_who_did_what_to_which_game_day(
    client: testclient.TestClient,
) -> None:
    store = conftest.store_of(client)
    before = len(audit.entries(store, limit=None))
    day = create(client).json()
    at = f"gamedays/{day['id']}"
    client.post(day_path(day["id"], "/start"))
    client.post(day_path(day["id"], "/drills/1/result"), json={"verdict": "held"})
    client.post(day_path(day["id"], "/drills/2/gate"), json={"decision": "no-go"})
    client.post(day_path(day["id"], "/notes"), json={"text": "stopped at drill 2"})
    client.post(day_path(day["id"], "/participants/bob/absent"))
    refused = client.post(day_path(day["id"], "/start"))
    client.post(day_path(day["id"], "/close"), json={"verdict": "stopped early"})

    written = audit.entries(store, limit=None, oldest_first=True)[before:]
    g = f"{API}/gamedays/{{gameday}}"
    assert [(e.action, e.status, e.target) for e in written] == [
        (api_audit.action_for("POST", f"{API}/gamedays"), 201, at),
        (api_audit.action_for("POST", f"{g}/start"), 200, f"{at}/start"),
        (
            api_audit.action_for("POST", f"{g}/drills/{{position}}/result"),
            200,
            f"{at}/drills/1/result",
        ),
        (api_audit.action_for("POST", f"{g}/drills/{{position}}/gate"), 200, f"{at}/drills/2/gate"),
        (api_audit.action_for("POST", f"{g}/notes"), 201, f"{at}/notes"),
        (
            api_audit.action_for("POST", f"{g}/participants/{{person}}/absent"),
            200,
            f"{at}/participants/bob/absent",
        ),
        (api_audit.action_for("POST", f"{g}/start"), 409, f"{at}/start"),
        (api_audit.action_for("POST", f"{g}/close"), 200, f"{at}/close"),
    ]
    assert {(e.principal, e.principal_kind, e.method) for e in written} == {
        ("alice", "token", "POST")
    }
    assert written[0].target == f"gamedays/{day['id']}"  # as the CLI's gameday.create names it
    assert refused.status_code == 409
    assert "cannot start a game day that is running" in written[6].detail
