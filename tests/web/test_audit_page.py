"""`/audit`: the trail for the roles the API lets read it, filtered, paged, exported.

Entries are written with `drills.service.audit.record` (logging in writes its own
`session.login` entries too: the filters below select around them). The page is parsed
with `html.parser` and compared with `audit.entries`; the JSON lines download is compared
with the service's export and with the API's `GET /api/v1/audit?format=jsonl` (a bearer
token of the same admin).
"""

from __future__ import annotations

import datetime as dt
import json
import urllib.parse

from drills.service import audit, auth
from tests.web.conftest import Web
from tests.web.html_tree import Node, parse

DAYS_AGO = dt.datetime.now(dt.UTC) - dt.timedelta(days=3)


def _seed(web: Web) -> None:
    for who, action, at in (
        ("alice", "run.start", DAYS_AGO),
        ("alice", "run.abort", None),
        ("bob", "run.approve", None),
        ("bob", "killswitch.engage", None),
    ):
        audit.record(
            web.store,
            audit.NewEntry(
                principal=who,
                principal_kind="token",
                action=action,
                target="runs/r1",
                status=200,
                method="POST",
                path="/api/v1/runs/r1",
                at=at,
            ),
        )


def _rows(page: Node) -> list[Node]:
    tables = page.all("table", cls="audit")
    return tables[0].all("tr", cls="entry") if tables else []


def _actions(web: Web, query: str) -> list[str]:
    answer = web.client.get(f"/audit{query}")
    assert answer.status_code == 200, answer.text
    return [row.one("td", cls="action").text() for row in _rows(parse(answer.text))]


def test_the_page_needs_a_login_and_sends_back_here(web: Web) -> None:
    answer = web.client.get("/audit?action=run.")
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/login?next=%2Faudit%3Faction%3Drun.")


def test_roles_without_the_audit_permission_get_the_403_page(web: Web) -> None:
    assert auth.roles_with(auth.Permission.AUDIT) == {auth.Role.ADMIN}
    _seed(web)
    for role in (auth.Role.VIEWER, auth.Role.OPERATOR, auth.Role.APPROVER):
        web.login(role)
        for path in ("/audit", "/audit?format=jsonl"):
            answer = web.client.get(path)
            assert answer.status_code == 403, (role, path)
            assert "may not read the audit trail" in parse(answer.text).one("p", cls="error").text()
            assert "runs/r1" not in answer.text


def test_an_admin_sees_the_trail_newest_first_as_the_service_reads_it(web: Web) -> None:
    _seed(web)
    web.login(auth.Role.ADMIN, name="root")

    answer = web.client.get("/audit")

    assert answer.status_code == 200
    rows = _rows(parse(answer.text))
    stored = audit.entries(web.store)
    assert [int(r.one("td", cls="id").text()) for r in rows] == [e.id for e in stored]
    assert [r.one("td", cls="action").text() for r in rows][:4] == [
        "session.login",
        "killswitch.engage",
        "run.approve",
        "run.abort",
    ]
    oldest = rows[-1]
    assert oldest.one("td", cls="principal").text() == "alice (token)"
    assert oldest.one("td", cls="request").text() == "POST /api/v1/runs/r1"
    assert "✓ ok 200" in oldest.one("td", cls="outcome").text()
    when = oldest.one("td", cls="at").one("time")
    assert dt.datetime.fromisoformat(when.attrs["datetime"]) == stored[-1].at.replace(
        microsecond=stored[-1].at.microsecond // 1000 * 1000
    )


def test_the_filters_are_a_labelled_get_form(web: Web) -> None:
    web.login(auth.Role.ADMIN)
    page = parse(web.client.get("/audit?principal=bob&action=run.").text)
    form = page.one("form", cls="filters")
    assert form.attrs["method"] == "get" and form.attrs["action"] == "/audit"
    labels = {label.attrs["for"] for label in form.all("label")}
    inputs = {i.attrs["id"]: i for i in form.all("input") if i.attrs.get("type") == "text"}
    assert set(inputs) == {"principal", "action", "since", "until"} == labels
    assert inputs["principal"].attrs["value"] == "bob"
    assert inputs["action"].attrs["value"] == "run."


def test_the_filters_narrow_the_trail(web: Web) -> None:
    _seed(web)
    web.login(auth.Role.ADMIN)

    assert _actions(web, "?principal=alice") == ["run.abort", "run.start"]
    assert _actions(web, "?action=run.") == ["run.approve", "run.abort", "run.start"]
    assert _actions(web, "?action=run") == []  # without the dot: that action exactly
    assert _actions(web, "?action=killswitch.engage") == ["killswitch.engage"]
    recent = _actions(web, "?since=1d&action=run.")
    assert recent == ["run.approve", "run.abort"]
    assert _actions(web, "?until=1d") == ["run.start"]
    day = (DAYS_AGO + dt.timedelta(days=1)).date().isoformat()
    assert _actions(web, f"?until={day}&principal=alice") == ["run.start"]
    assert _actions(web, "?principal=carol") == []
    assert (
        "No entries match these filters."
        in parse(web.client.get("/audit?principal=carol").text).text()
    )


def test_a_since_it_cannot_read_answers_the_form_again_422(web: Web) -> None:
    _seed(web)
    web.login(auth.Role.ADMIN)
    answer = web.client.get("/audit?since=yesterday")
    assert answer.status_code == 422
    page = parse(answer.text)
    assert "since 'yesterday'" in page.one("p", cls="error").text()
    assert page.one("input", id="since").attrs.get("aria-invalid") == "true"
    assert _rows(page) == []
    bad_until = web.client.get("/audit?until=soon")
    assert bad_until.status_code == 422
    assert "until 'soon'" in parse(bad_until.text).one("p", cls="error").text()


def test_older_pages_back_through_the_trail(web: Web) -> None:
    _seed(web)
    web.login(auth.Role.ADMIN)
    stored = audit.entries(web.store, where=audit.EntryFilter(action="run."))
    assert len(stored) == 3

    first = parse(web.client.get("/audit?action=run.&limit=2").text)

    assert [r.one("td", cls="action").text() for r in _rows(first)] == ["run.approve", "run.abort"]
    assert first.all("a", id="newest") == []
    older = first.one("a", id="older").attrs["href"]
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(older).query)
    assert query == {"action": ["run."], "before": [str(stored[1].id)], "limit": ["2"]}
    second = parse(web.client.get(older).text)
    assert [r.one("td", cls="action").text() for r in _rows(second)] == ["run.start"]
    assert second.all("a", id="older") == []  # the end of the trail
    assert second.one("a", id="newest").attrs["href"] == "/audit?action=run.&limit=2"


def test_the_jsonl_download_is_the_services_and_the_apis_export(web: Web) -> None:
    _seed(web)
    web.login(auth.Role.ADMIN, name="root")
    page = parse(web.client.get("/audit").text)
    link = page.one("a", id="download")
    assert link.attrs["href"] == "/audit?format=jsonl"
    assert link.text() == "Download JSONL"

    answer = web.client.get(link.attrs["href"])

    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/jsonl")
    assert "attachment" in answer.headers["content-disposition"]
    assert answer.text == "".join(audit.jsonl(audit.export(web.store)))
    lines = [json.loads(line) for line in answer.text.splitlines()]
    assert [line["action"] for line in lines][:4] == [
        "run.start",
        "run.abort",
        "run.approve",
        "killswitch.engage",
    ]
    token = web.issue(auth.Role.ADMIN, name="api-admin")
    api = web.client.get("/api/v1/audit?format=jsonl", headers={"Authorization": f"Bearer {token}"})
    assert api.status_code == 200 and api.text == answer.text


def test_the_download_keeps_the_filters(web: Web) -> None:
    _seed(web)
    web.login(auth.Role.ADMIN)
    page = parse(web.client.get("/audit?principal=bob&action=run.").text)
    href = page.one("a", id="download").attrs["href"]
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(href).query)
    assert query == {"principal": ["bob"], "action": ["run."], "format": ["jsonl"]}
    answer = web.client.get(href)
    expected = audit.export(web.store, where=audit.EntryFilter(principal="bob", action="run."))
    assert answer.text == "".join(audit.jsonl(expected))
    assert [json.loads(line)["action"] for line in answer.text.splitlines()] == ["run.approve"]


def test_secrets_stay_masked_on_the_page_and_in_the_download(web: Web) -> None:
    secret = "hunter2-database-pass"
    audit.record(
        web.store,
        audit.NewEntry(
            principal="alice",
            principal_kind="token",
            action="run.start",
            target="runs/r1",
            status=200,
            path="/api/v1/runs?password=" + secret,
            detail=f"used password={secret} to log in",
        ),
    )
    [stored] = audit.entries(web.store, where=audit.EntryFilter(action="run.start"))
    assert secret not in stored.detail and secret not in stored.path
    web.login(auth.Role.ADMIN)
    page = web.client.get("/audit")
    download = web.client.get("/audit?format=jsonl")
    assert page.status_code == download.status_code == 200
    assert secret not in page.text and secret not in download.text
    [row] = [r for r in _rows(parse(page.text)) if r.one("td", cls="action").text() == "run.start"]
    assert row.one("td", cls="detail").text() == stored.detail
