"""The dashboard and its kill switch form, over the app `serve` runs and a real store.

Runs are submitted through the API with real tokens (the runner is off: they stay queued,
in flight) or recorded finished (`tests.reports.factories.record_run`); schedules, game
days and blackouts through the service the API calls. Pages are parsed with `html.parser`;
the kill switch form is checked for its CSRF token, its permission (the API's: admin), its
effect on the store, its audit entries and its idempotency key.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import html.parser
import urllib.parse
from pathlib import Path

import httpx
import pydantic
import pytest

from drills.service import audit, auth, documents, killswitches, tokens
from drills.service import gamedays as gameday_service
from drills.service import schedules as schedule_service
from orchestrator import journal, states
from tests.reports import factories
from tests.web.conftest import Web

_R = auth.Role


# ---- parsing the page -------------------------------------------------------------------


@dataclasses.dataclass
class Form:
    action: str
    attrs: dict[str, str]
    fields: dict[str, str] = dataclasses.field(default_factory=dict)
    """name -> value of its inputs (hidden and visible)."""
    required: set[str] = dataclasses.field(default_factory=set)
    inputs: dict[str, str] = dataclasses.field(default_factory=dict)
    """id -> name of its visible inputs."""
    buttons: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Row:
    attrs: dict[str, str]
    text: str = ""
    links: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Dashboard:
    forms: list[Form] = dataclasses.field(default_factory=list)
    banners: list[tuple[set[str], dict[str, str], str]] = dataclasses.field(default_factory=list)
    rows: dict[str, list[Row]] = dataclasses.field(default_factory=dict)
    """table class (or `awaiting` list) -> its body rows."""
    labels: dict[str, str] = dataclasses.field(default_factory=dict)
    h2: list[str] = dataclasses.field(default_factory=list)
    links: list[str] = dataclasses.field(default_factory=list)

    def forms_to(self, action: str) -> list[Form]:
        return [f for f in self.forms if f.action == action]


class DashboardParser(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.page = Dashboard()
        self._form: Form | None = None
        self._banner: tuple[set[str], dict[str, str]] | None = None
        self._banner_text = ""
        self._table: str | None = None
        self._row: Row | None = None
        self._label: str | None = None
        self._label_text = ""
        self._button = False
        self._button_text = ""
        self._h2 = False
        self._h2_text = ""

    def handle_starttag(self, tag: str, attrs_list: list[tuple[str, str | None]]) -> None:
        attrs = {k: v or "" for k, v in attrs_list}
        classes = set(attrs.get("class", "").split())
        if tag == "form":
            self._form = Form(action=attrs.get("action", ""), attrs=attrs)
        if tag == "input" and self._form is not None and "name" in attrs:
            self._form.fields[attrs["name"]] = attrs.get("value", "")
            if "required" in attrs:
                self._form.required.add(attrs["name"])
            if attrs.get("type") != "hidden" and "id" in attrs:
                self._form.inputs[attrs["id"]] = attrs["name"]
        if tag == "button":
            self._button, self._button_text = True, ""
        if tag == "p" and "banner" in classes:
            self._banner, self._banner_text = (classes, attrs), ""
        if (tag == "table" and attrs.get("class")) or (tag == "ul" and "awaiting" in classes):
            self._table = attrs["class"]
            self.page.rows.setdefault(self._table, [])
        row_keys = ("data-run", "data-killswitch", "data-kind")
        if self._table is not None and tag in ("tr", "li") and any(k in attrs for k in row_keys):
            self._row = Row(attrs=attrs)
        if tag == "a":
            self.page.links.append(attrs.get("href", ""))
            if self._row is not None:
                self._row.links.append(attrs.get("href", ""))
        if tag == "label":
            self._label, self._label_text = attrs.get("for", ""), ""
        if tag == "h2":
            self._h2, self._h2_text = True, ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "form" and self._form is not None:
            self.page.forms.append(self._form)
            self._form = None
        if tag == "button" and self._button:
            if self._form is not None:
                self._form.buttons.append(self._button_text.strip())
            self._button = False
        if tag == "p" and self._banner is not None:
            classes, attrs = self._banner
            self.page.banners.append((classes, attrs, " ".join(self._banner_text.split())))
            self._banner = None
        if tag in ("tr", "li") and self._row is not None and self._table is not None:
            self._row.text = " ".join(self._row.text.split())
            self.page.rows[self._table].append(self._row)
            self._row = None
        if tag in ("table", "ul"):
            self._table = None
        if tag == "label" and self._label is not None:
            self.page.labels[self._label] = self._label_text.strip()
            self._label = None
        if tag == "h2" and self._h2:
            self.page.h2.append(self._h2_text.strip())
            self._h2 = False

    def handle_data(self, data: str) -> None:
        if self._banner is not None:
            self._banner_text += data
        if self._row is not None:
            self._row.text += data
        if self._label is not None:
            self._label_text += data
        if self._button:
            self._button_text += data
        if self._h2:
            self._h2_text += data


def dashboard(web: Web) -> Dashboard:
    answer = web.client.get("/")
    assert answer.status_code == 200, answer.text
    parser = DashboardParser()
    parser.feed(answer.text)
    parser.close()
    return parser.page


# ---- helpers ----------------------------------------------------------------------------


def _submit(web: Web, *, environment: str = "test", role: _R = _R.OPERATOR, name: str) -> str:
    """A run submitted over the API with a real token (queued: nobody drives it)."""
    secret = web.issue(role, name=name)
    answer = web.client.post(
        "/api/v1/runs",
        json={"scenario": "absence-cover", "environment": environment},
        headers={"Authorization": f"Bearer {secret}"},
    )
    assert answer.status_code == 202, answer.text
    run_id: str = answer.json()["id"]
    return run_id


def _entries(web: Web, action: str = "killswitch.") -> list[audit.Entry]:
    return audit.entries(web.store, where=audit.EntryFilter(action=action))


def _switch(web: Web, csrf: str, **fields: str) -> httpx.Response:
    data = {"csrf_token": csrf, "idempotency_key": fields.pop("key", "k-" + fields["action"])}
    data.update(fields)
    answer: httpx.Response = web.client.post("/killswitch", data=data)
    return answer


def _record_finished(web: Web, run_id: str, *, deviate: bool, ago: dt.timedelta) -> None:
    start = dt.datetime.now(dt.UTC) - ago
    with journal.open_store(
        web.world.settings.database_url, clock=factories.StepClock(start)
    ) as store:
        factories.record_run(
            store,
            run_id=run_id,
            scenario_name="zone-loss",
            deviate=deviate,
            started=start,
            failure_mode="availability-zone",
        )


# ---- login ------------------------------------------------------------------------------


def test_the_dashboard_needs_a_login(web: Web) -> None:
    answer = web.client.get("/")
    assert answer.status_code == 303
    target = urllib.parse.urlsplit(answer.headers["location"])
    assert target.path == "/login" and urllib.parse.parse_qs(target.query)["next"] == ["/"]


def test_the_kill_switch_form_without_a_session_goes_to_the_login_page(web: Web) -> None:
    answer = web.client.post("/killswitch", data={"action": "engage", "reason": "x"})
    assert answer.status_code == 303 and answer.headers["location"].startswith("/login?")
    assert not killswitches.get(web.store).engaged


def test_an_empty_dashboard_says_so_in_every_section(web: Web) -> None:
    web.login(_R.VIEWER)
    page = dashboard(web)
    assert page.h2 == [
        "Running now",
        "Kill switch",
        "Awaiting my approval",
        "Next 7 days",
        "Recent results",
    ]
    assert page.banners == []
    text = web.client.get("/").text
    assert "No drill is running." in text and "No drill has finished yet." in text
    assert "<script>" not in text and "onclick" not in text.lower()


# ---- running now and abort --------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "may_abort"),
    [(_R.VIEWER, False), (_R.APPROVER, False), (_R.OPERATOR, True), (_R.ADMIN, True)],
)
def test_a_running_run_is_listed_with_an_abort_form_only_for_roles_that_may_abort(
    web: Web, role: _R, may_abort: bool
) -> None:
    run_id = _submit(web, name="ops-submitter")
    csrf = web.login(role, name=f"looker-{role.value}")
    page = dashboard(web)

    (row,) = page.rows["running"]
    assert row.attrs["data-run"] == run_id
    assert f"/runs/{run_id}" in row.links
    assert "absence-cover" in row.text and "test" in row.text and "pending" in row.text
    aborts = page.forms_to(f"/runs/{run_id}/abort")
    if not may_abort:
        assert aborts == []
        return
    (form,) = aborts
    assert form.attrs["method"] == "post"
    assert form.fields["csrf_token"] == csrf
    assert len(form.fields["idempotency_key"]) >= 16
    assert "Abort run" in form.attrs["data-confirm"]
    assert form.buttons == ["Abort"]


def test_each_abort_form_carries_its_own_idempotency_key(web: Web) -> None:
    first, second = _submit(web, name="ops-a"), _submit(web, name="ops-b")
    web.login(_R.OPERATOR)
    page = dashboard(web)
    keys = {
        page.forms_to(f"/runs/{run_id}/abort")[0].fields["idempotency_key"]
        for run_id in (first, second)
    }
    assert len(keys) == 2
    again = dashboard(web).forms_to(f"/runs/{first}/abort")[0].fields["idempotency_key"]
    assert again not in keys  # a fresh key each time the page is drawn


def test_a_scoped_operator_sees_abort_only_on_runs_of_its_team(web: Web) -> None:
    run_id = _submit(web, name="ops-submitter")
    secret = tokens_scoped(web, teams=("team-nobody",))
    answer = web.client.post("/login", data={"token": secret, "next": "/"})
    assert answer.status_code == 303
    page = dashboard(web)
    # The run's plan targets a person, no CMDB service: abort only ever stops faults, so a
    # scoped operator may abort it (as the API's abort route allows).
    assert [r.attrs["data-run"] for r in page.rows["running"]] == [run_id]
    assert len(page.forms_to(f"/runs/{run_id}/abort")) == 1


def tokens_scoped(web: Web, *, teams: tuple[str, ...]) -> str:
    made = tokens.create(
        web.store,
        role=_R.OPERATOR,
        name="scoped-ops",
        created_by="test",
        teams=teams,
    )
    return made.secret


# ---- the kill switch --------------------------------------------------------------------


def test_the_kill_switch_form_needs_the_csrf_token(web: Web) -> None:
    csrf = web.login(_R.ADMIN)
    missing = web.client.post("/killswitch", data={"action": "engage", "reason": "stop"})
    wrong = _switch(web, csrf[:-2] + "zz", action="engage", reason="stop")
    assert missing.status_code == 403 and "CSRF" in missing.text
    assert wrong.status_code == 403
    assert not killswitches.get(web.store).engaged
    assert _entries(web) == []


@pytest.mark.parametrize("role", [_R.VIEWER, _R.OPERATOR, _R.APPROVER])
def test_a_role_without_the_killswitch_permission_is_refused_and_audited(
    web: Web, role: _R
) -> None:
    csrf = web.login(role, name=f"not-admin-{role.value}")
    answer = web.client.post(
        "/killswitch",
        data={"csrf_token": csrf, "idempotency_key": "k1", "action": "engage", "reason": "x"},
    )
    assert answer.status_code == 403
    assert "engage or release the kill switch" in answer.text
    assert not killswitches.get(web.store).engaged
    (entry,) = _entries(web)
    assert (entry.action, entry.status, entry.principal) == (
        "killswitch.engage",
        403,
        f"not-admin-{role.value}",
    )
    assert dashboard(web).forms_to("/killswitch") == []  # no form for them either


def test_an_admin_engages_the_global_switch_then_releases_it(web: Web) -> None:
    csrf = web.login(_R.ADMIN, name="boss")
    before = dashboard(web)
    (global_form,) = [f for f in before.forms_to("/killswitch") if f.fields["environment"] == ""]
    assert global_form.fields["action"] == "engage" and "reason" in global_form.required
    (reason_id,) = global_form.inputs
    assert before.labels[reason_id] == "Reason"

    engaged = web.client.post(
        "/killswitch",
        data={**global_form.fields, "reason": "payments incident"},
    )
    assert engaged.status_code == 303 and engaged.headers["location"] == "/"
    switch = killswitches.get(web.store)
    assert (switch.engaged, switch.by, switch.reason) == (True, "boss", "payments incident")
    (entry,) = _entries(web)
    assert (entry.action, entry.target, entry.status, entry.method, entry.path) == (
        "killswitch.engage",
        "killswitch",
        200,
        "POST",
        "/killswitch",
    )
    page = dashboard(web)
    ((classes, attrs, text),) = page.banners
    assert {"banner", "engaged"} <= classes and attrs["data-killswitch"] == "global"
    assert "payments incident" in text and "boss" in text
    (row,) = [r for r in page.rows["killswitches"] if r.attrs["data-killswitch"] == "global"]
    assert row.attrs["data-engaged"] == "yes" and "engaged" in row.text

    (release,) = [f for f in page.forms_to("/killswitch") if f.fields["environment"] == ""]
    assert release.fields["action"] == "release" and release.buttons == ["Release"]
    assert release.fields["csrf_token"] == csrf
    released = web.client.post("/killswitch", data=release.fields)
    assert released.status_code == 303 and released.headers["location"] == "/"
    assert not killswitches.get(web.store).engaged
    assert [e.action for e in _entries(web)] == ["killswitch.release", "killswitch.engage"]
    assert dashboard(web).banners == []


def test_an_environments_switch_engages_alone_and_aborts_the_runs_queued_there(web: Web) -> None:
    run_id = _submit(web, name="ops")
    csrf = web.login(_R.ADMIN, name="boss")
    answer = _switch(web, csrf, action="engage", environment="test", reason="db migration")
    assert answer.status_code == 303

    assert killswitches.get(web.store, environment="test").engaged
    assert not killswitches.get(web.store).engaged
    assert not killswitches.get(web.store, environment="locked").engaged
    assert web.store.get_run(states.RunId(run_id)).state is states.RunState.ABORTED
    (entry,) = _entries(web)
    assert entry.target == "killswitch?environment=test" and run_id in entry.detail
    page = dashboard(web)
    ((classes, attrs, text),) = page.banners
    assert "engaged" in classes and attrs["data-killswitch"] == "test"
    assert "Environment test" in text and "db migration" in text
    switches = {
        r.attrs["data-killswitch"]: r.attrs["data-engaged"] for r in page.rows["killswitches"]
    }
    assert switches == {"global": "no", "test": "yes", "locked": "no"}
    assert page.rows.get("running", []) == []


def test_engaging_without_a_reason_is_refused_with_why(web: Web) -> None:
    csrf = web.login(_R.ADMIN)
    blank = _switch(web, csrf, action="engage", reason="   ")
    unknown = _switch(web, csrf, action="toggle", reason="x")
    assert blank.status_code == 422
    assert "reason" in blank.text
    assert unknown.status_code == 422
    assert not killswitches.get(web.store).engaged
    assert [e.status for e in _entries(web)] == [422, 422]


def test_the_same_form_sent_twice_engages_once_and_is_audited_once(web: Web) -> None:
    csrf = web.login(_R.ADMIN, name="boss")
    data = {
        "csrf_token": csrf,
        "idempotency_key": "one-click-twice",
        "action": "engage",
        "reason": "stop everything",
    }
    first = web.client.post("/killswitch", data=data)
    second = web.client.post("/killswitch", data=data)

    assert first.status_code == second.status_code == 303
    assert first.headers["location"] == second.headers["location"] == "/"
    assert killswitches.get(web.store).engaged
    assert len(_entries(web, "killswitch.engage")) == 1
    # A new form (a new key) acts again: release, then engage with another key.
    release = _switch(web, csrf, action="release", key="another-key")
    assert release.status_code == 303
    assert not killswitches.get(web.store).engaged
    assert len(_entries(web)) == 2


def test_a_viewer_sees_the_switch_state_but_no_form(web: Web) -> None:
    killswitches.set_environment(
        web.store, environment="locked", engaged=True, by="someone", reason="freeze"
    )
    web.login(_R.VIEWER)
    page = dashboard(web)
    assert page.forms_to("/killswitch") == []
    ((classes, attrs, text),) = page.banners
    assert "engaged" in classes and attrs["data-killswitch"] == "locked" and "freeze" in text


# ---- awaiting my approval ---------------------------------------------------------------


def test_a_run_awaiting_approval_is_listed_for_an_approver_but_not_for_its_requester(
    web: Web,
) -> None:
    run_id = _submit(web, environment="locked", role=_R.ADMIN, name="asker")
    web.client.post("/login", data={"token": web.issue(_R.APPROVER, name="checker"), "next": "/"})
    page = dashboard(web)
    (item,) = page.rows["awaiting"]
    assert item.attrs["data-run"] == run_id and "asker" in item.text
    assert f"/runs/{run_id}" in item.links and "/approvals" in page.links
    (running,) = page.rows["running"]
    assert "awaiting approval" in running.text

    # The requester (an admin, who could approve others') does not see their own run.
    web.client.post("/login", data={"token": web.issue(_R.ADMIN, name="asker"), "next": "/"})
    assert dashboard(web).rows.get("awaiting", []) == []
    # An operator may not approve at all.
    web.login(_R.OPERATOR, name="ops")
    text = web.client.get("/").text
    assert "Your role does not approve runs" in text


def test_a_run_i_already_approved_leaves_my_list(web: Web) -> None:
    run_id = _submit(web, environment="locked", role=_R.OPERATOR, name="asker")
    secret = web.issue(_R.APPROVER, name="checker")
    web.client.post("/login", data={"token": secret, "next": "/"})
    assert [i.attrs["data-run"] for i in dashboard(web).rows["awaiting"]] == [run_id]
    approved = web.client.post(
        f"/api/v1/runs/{run_id}/approve",
        json={"comment": "fine"},
        headers={"Authorization": f"Bearer {secret}"},
    )
    assert approved.status_code == 200, approved.text
    assert dashboard(web).rows.get("awaiting", []) == []


# ---- next 7 days and blackouts ----------------------------------------------------------


def _gameday(web: Web, folder: Path, *, name: str, starts_in: dt.timedelta) -> str:
    start = (dt.datetime.now(dt.UTC) + starts_in).replace(microsecond=0)
    end = start + dt.timedelta(hours=2)
    folder.mkdir(exist_ok=True)
    path = folder / f"{name}.gameday.yaml"
    path.write_text(
        "apiVersion: stormdrill.dev/v1\n"
        "kind: GameDay\n"
        f"metadata:\n  name: {name}\n"
        "spec:\n"
        f'  window:\n    start: "{start.isoformat()}"\n    end: "{end.isoformat()}"\n'
        "    timezone: Europe/Berlin\n"
        "  participants:\n"
        "    - person: user:default/alice\n      roles: [facilitator]\n"
        "  drills:\n"
        "    - scenario: third-party-outage\n      environment: test\n      gate: manual\n",
        encoding="utf-8",
    )
    day = gameday_service.create(web.store, path, by="test")
    return str(day.id)


def test_the_next_seven_days_list_schedule_fires_and_game_days_in_order(
    web: Web, tmp_path: Path
) -> None:
    folders = documents.Folders(
        scenarios=(web.world.scenarios,),
        environments=(web.world.environments,),
        drills=(web.world.drills,),
    )
    schedule_service.apply(
        web.world.settings,
        web.store,
        web.world.drills / "weekly-absence.drill.yaml",
        owner="planner",
        folders=folders,
    )
    soon = _gameday(web, tmp_path / "days", name="soon-day", starts_in=dt.timedelta(days=2))
    _gameday(web, tmp_path / "days", name="far-day", starts_in=dt.timedelta(days=20))
    web.login(_R.VIEWER)

    rows = dashboard(web).rows["upcoming"]
    kinds = [r.attrs["data-kind"] for r in rows]
    assert kinds.count("drill") == 1  # Mondays 10:00 Berlin: once in any 7 days
    assert kinds.count("game day") == 1
    (day,) = [r for r in rows if r.attrs["data-kind"] == "game day"]
    assert "soon-day" in day.text and f"/gamedays/{soon}" in day.links
    assert "far-day" not in " ".join(r.text for r in rows)
    (fire,) = [r for r in rows if r.attrs["data-kind"] == "drill"]
    assert "weekly-absence" in fire.text and "Europe/Berlin" in fire.text
    assert "/schedules" in fire.links
    page_text = web.client.get("/").text
    times = [dt.datetime.fromisoformat(t) for t in _times_in(page_text, "upcoming")]
    assert times == sorted(times)


def _times_in(text: str, table: str) -> list[str]:
    body = text.split(f'<table class="{table}">', 1)[1].split("</table>", 1)[0]
    return [part.split('"', 1)[0] for part in body.split('<time datetime="')[1:]]


def test_blackouts_active_now_or_starting_within_a_week_are_banners(web: Web) -> None:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)

    def add(
        reason: str,
        windows: list[pydantic.JsonValue],
        *,
        scope: schedule_service.BlackoutScope = schedule_service.BlackoutScope.GLOBAL,
        value: str = "",
    ) -> str:
        made = schedule_service.add_blackout(
            web.store,
            scope=scope,
            value=value,
            windows=schedule_service.parse_windows(windows, timezone="UTC"),
            timezone="UTC",
            reason=reason,
            by="test",
        )
        return str(made.id)

    iso = dt.datetime.isoformat
    active = add(
        "year-end freeze",
        [{"start": iso(now - dt.timedelta(hours=1)), "end": iso(now + dt.timedelta(hours=5))}],
    )
    later = add(
        "sale",
        [{"start": iso(now + dt.timedelta(days=3)), "end": iso(now + dt.timedelta(days=4))}],
        scope=schedule_service.BlackoutScope.ENVIRONMENT,
        value="test",
    )
    weekday = (now + dt.timedelta(days=2)).strftime("%a").lower()
    weekly = add("maintenance", [{"days": [weekday], "start": "10:00", "end": "11:00"}])
    add(
        "far away",
        [{"start": iso(now + dt.timedelta(days=20)), "end": iso(now + dt.timedelta(days=21))}],
    )
    add(
        "over",
        [{"start": iso(now - dt.timedelta(days=3)), "end": iso(now - dt.timedelta(days=2))}],
    )
    web.login(_R.VIEWER)

    banners = {attrs["data-blackout"]: text for _, attrs, text in dashboard(web).banners}
    assert set(banners) == {active, later, weekly}
    assert "active now" in banners[active] and "year-end freeze" in banners[active]
    assert "starts" in banners[later] and "environment test" in banners[later]
    assert "starts" in banners[weekly] and "10:00 UTC" in banners[weekly]
    assert next(iter(banners)) == active  # active ones first


# ---- recent results ---------------------------------------------------------------------


def test_recent_results_show_the_last_ten_finished_runs_with_state_and_verdict(
    web: Web,
) -> None:
    for index in range(12):
        _record_finished(
            web, f"run-{index:02d}", deviate=index % 2 == 1, ago=dt.timedelta(hours=12 - index)
        )
    queued = _submit(web, name="ops")
    web.login(_R.VIEWER)

    rows = dashboard(web).rows["recent"]
    assert [r.attrs["data-run"] for r in rows] == [f"run-{i:02d}" for i in range(11, 1, -1)]
    assert queued not in {r.attrs["data-run"] for r in rows}
    by_id = {r.attrs["data-run"]: r for r in rows}
    assert "completed" in by_id["run-10"].text and "held" in by_id["run-10"].text
    assert "aborted" in by_id["run-11"].text and "deviated" in by_id["run-11"].text
    assert "/runs/run-11" in by_id["run-11"].links
