"""Record the OpenAPI examples: the first successful answer of every operation of a real app.

`.venv/bin/python -m tests.api.record_examples` (from the project root) builds the route
tests' world (`conftest.build_world`) in a temporary folder, starts the app with its runner
(`drive_runs`) through `fastapi.testclient` as an admin (a second principal, an approver,
decides on the protected run: no self-approval), and exercises every operation with real
data: it reads the documents, validates one, plans and runs the people-only
`absence-cover` drill on `test` (its manual step acknowledged over HTTP, then COMPLETED),
fetches its reports, JUnit and events; submits protected runs on `locked` (one approved,
then aborted mid-drill; one rejected); engages the kill switch over a running drill and
releases it; reads coverage, the CMDB, the audit trail and the metrics; creates, lists,
shows and revokes a token. The first successful body of each (path template, method,
status, media type) goes to `drills/api/examples.json` (sorted keys), after neutralising
what depends on this machine: the temporary folder is `/srv/stormdrill`, the sample
catalog's folder `/srv/stormdrill/catalog`, the checkout `/srv/stormdrill/src`, and a
token's secret a placeholder of the same prefix and length. Run ids and times stay as
recorded. It fails, writing nothing, when an answer is not the expected success or when a
2xx response of the OpenAPI document was not recorded (add the call to `_exercise`).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import fastapi
import httpx
import pydantic
from fastapi import testclient

from drills.api import app as app_mod
from drills.api import deps, examples
from drills.api.routes import events as event_routes
from drills.service import auth, tokens
from drills.service import events as event_streams
from orchestrator import events, journal, states
from sandbox import stack
from tests.api import conftest

log = logging.getLogger("record_examples")

API = "/api/v1"
WAIT_S = 60.0
NEUTRAL_ROOT = "/srv/stormdrill"
OUTPUT = Path(examples.__file__).with_name(examples.RESOURCE)
PROJECT = Path(__file__).resolve().parents[2]
AS_HEADER = "X-Record-As"
APPROVER = auth.Principal(name="route-approver", roles=frozenset({auth.Role.APPROVER}))
SECRET_PLACEHOLDER = "EXAMPLE-not-a-real-secret-"


GAMEDAY = """\
apiVersion: stormdrill.dev/v1
kind: GameDay
metadata:
  name: payments-gameday
spec:
  window:
    start: "2026-12-08T10:00:00"
    end: "2026-12-08T13:00:00"
    timezone: Europe/Berlin
  services: [checkout, payments]
  channel: https://chat.example.com/channels/shop-oncall
  participants:
    - person: user:default/route-admin
      roles: [facilitator]
    - person: user:default/bob
      roles: [operator]
    - person: user:default/route-approver
      roles: [approver]
  drills:
    - drill: weekly-absence
      gate: auto
    - scenario: absence-cover
      environment: test
      gate: manual
"""
"""The game day the recorder creates: the recorder's admin facilitates."""


class RecordingFailed(Exception):
    """An answer was not the success the recorder expected, or a success went unrecorded."""


def _principal(request: fastapi.Request) -> auth.Principal:
    """The admin, or the approver when the request says `X-Record-As: approver`."""
    return APPROVER if request.headers.get(AS_HEADER) == "approver" else conftest.ADMIN


@dataclasses.dataclass(frozen=True)
class Recorder:
    """Calls the app and keeps the first successful body of each documented response."""

    client: testclient.TestClient
    documented: frozenset[examples.ResponseKey]
    recorded: dict[examples.ResponseKey, pydantic.JsonValue] = dataclasses.field(
        default_factory=dict
    )
    secrets: list[str] = dataclasses.field(default_factory=list)

    def call(
        self,
        method: str,
        template: str,
        *,
        expect: int = 200,
        path: Mapping[str, str] | None = None,
        approver: bool = False,
        **request: Any,
    ) -> httpx.Response:
        """`method template` (its `{…}` filled from `path`); records the body of a success."""
        url = template.format(**(path or {}))
        headers = dict(request.pop("headers", {}))
        if approver:
            headers[AS_HEADER] = "approver"
        response: httpx.Response = self.client.request(method, url, headers=headers, **request)
        if response.status_code != expect:
            raise RecordingFailed(
                f"{method} {url}: expected {expect}, got {response.status_code}: {response.text}"
            )
        media = examples.base_media(response.headers.get("content-type", ""))
        key = examples.ResponseKey(template, method.lower(), str(expect), media)
        if key not in self.documented:
            raise RecordingFailed(f"{key}: the OpenAPI document has no such success response")
        if key not in self.recorded:
            self.recorded[key] = response.json() if examples.is_json(media) else response.text
        return response

    def json(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        body: dict[str, Any] = self.call(*args, **kwargs).json()
        return body


def _wait_for(what: str, check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not check():
        if time.monotonic() > deadline:
            raise RecordingFailed(f"timed out after {WAIT_S:.0f}s waiting for {what}")
        time.sleep(0.05)


def _manual_waiting(store: journal.Journal, run_id: str) -> list[journal.Event]:
    return store.events(states.RunId(run_id), kind=events.EventKind.MANUAL)


def _wait_manual(store: journal.Journal, run_id: str) -> str:
    """Wait until the run's manual step waits; the name of someone it is assigned to."""
    _wait_for(f"the manual step of {run_id}", lambda: bool(_manual_waiting(store, run_id)))
    [manual] = _manual_waiting(store, run_id)
    eligible = manual.data["eligible"]
    assert isinstance(eligible, list) and eligible, manual.data
    return str(eligible[0]).rpartition("/")[2]


def _wait_terminal(store: journal.Journal, run_id: str) -> states.Run:
    _wait_for(f"run {run_id} to end", lambda: store.get_run(states.RunId(run_id)).terminal)
    return store.get_run(states.RunId(run_id))


def _exercise(rec: Recorder, store: journal.Journal) -> None:
    """Every operation, with real data, in an order where each has something to show."""
    drill = {"scenario": "absence-cover", "environment": "test"}
    locked = {"scenario": "absence-cover", "environment": "locked"}

    rec.call("GET", "/healthz")
    rec.call("GET", "/readyz")

    rec.call("GET", f"{API}/scenarios")
    rec.call("GET", f"{API}/scenarios/{{name}}", path={"name": "absence-cover"})
    rec.call(
        "POST",
        f"{API}/scenarios:validate",
        params={"filename": "absence-cover.yaml"},
        content=conftest.ABSENCE_SCENARIO.encode(),
        headers={"Content-Type": "application/yaml"},
    )
    rec.call("GET", f"{API}/environments")
    rec.call("GET", f"{API}/environments/{{name}}", path={"name": "test"})
    rec.call("GET", f"{API}/drills")
    rec.call("GET", f"{API}/drills/{{name}}", path={"name": "weekly-absence"})
    rec.call("POST", f"{API}/plans", json=drill)

    # a drill run to the end: its manual step acknowledged over HTTP
    run_id = rec.json("POST", f"{API}/runs", expect=202, json=drill)["id"]
    by = _wait_manual(store, run_id)
    rec.call(
        "POST",
        f"{API}/runs/{{run_id}}/steps/{{step}}/ack",
        path={"run_id": run_id, "step": "cover"},
        json={"evidence": "payments restored by the on-call of team-payments", "by": by},
    )
    done = _wait_terminal(store, run_id)
    if done.state is not states.RunState.COMPLETED:
        raise RecordingFailed(f"run {run_id} ended {done.state.value}, not completed")
    one = {"run_id": run_id}
    rec.call("GET", f"{API}/runs/{{run_id}}", path=one)
    for fmt in ("md", "html", "json"):
        rec.call("GET", f"{API}/runs/{{run_id}}/report", path=one, params={"format": fmt})
    rec.call("GET", f"{API}/runs/{{run_id}}/junit", path=one)
    seqs = [event.seq for event in store.events(states.RunId(run_id))]
    rec.call(
        "GET",
        f"{API}/runs/{{run_id}}/events",
        path=one,
        headers={"Last-Event-ID": str(seqs[-4])},  # the run's last events, then the end
    )

    # a protected run: approved by a second person, then aborted mid-drill
    approved = rec.json("POST", f"{API}/runs", expect=202, json=locked)["id"]
    status = rec.json("GET", f"{API}/runs/{{run_id}}/approvals", path={"run_id": approved})
    rec.call(
        "POST",
        f"{API}/runs/{{run_id}}/approve",
        path={"run_id": approved},
        approver=True,
        json={
            "comment": "reviewed with the payments on-call",
            "planHash": status["approval"]["planHash"],
        },
    )
    _wait_manual(store, approved)
    rec.call("POST", f"{API}/runs/{{run_id}}/abort", expect=202, path={"run_id": approved})
    _wait_terminal(store, approved)

    # a protected run rejected
    rejected = rec.json("POST", f"{API}/runs", expect=202, json=locked)["id"]
    rec.call(
        "POST",
        f"{API}/runs/{{run_id}}/reject",
        path={"run_id": rejected},
        approver=True,
        json={"reason": "not during the sale"},
    )
    rec.call("GET", f"{API}/runs", params={"limit": 3})

    # the kill switch engaged over a running drill, then released
    running = rec.json("POST", f"{API}/runs", expect=202, json=drill)["id"]
    _wait_manual(store, running)
    rec.call("GET", f"{API}/killswitch")
    rec.call("PUT", f"{API}/killswitch", json={"reason": "incident INC-1234 in progress"})
    _wait_terminal(store, running)
    rec.call("DELETE", f"{API}/killswitch")

    rec.call("GET", f"{API}/coverage")
    rec.call("GET", f"{API}/coverage", params={"format": "csv"})
    rec.call("GET", f"{API}/cmdb/services")
    rec.call("GET", f"{API}/cmdb/services/{{ref}}", path={"ref": "checkout"})
    rec.call(
        "GET",
        f"{API}/cmdb/services/{{ref}}/impact",
        path={"ref": "resource:payments-db"},
        params={"failureMode": "region"},
    )

    token_body = {"role": "operator", "name": "ci-payments", "expires": "90d"}
    issued = rec.json(
        "POST", f"{API}/tokens", expect=201, json=token_body | {"teams": ["team-payments"]}
    )
    rec.secrets.append(issued["token"])
    rec.call("GET", f"{API}/tokens")
    rec.call("GET", f"{API}/tokens/{{token_id}}", path={"token_id": issued["id"]})
    rec.call("DELETE", f"{API}/tokens/{{token_id}}", path={"token_id": issued["id"]})

    # a schedule from a Drill's schedule:, a blackout over it, then the schedule removed
    applied = rec.json("POST", f"{API}/schedules", expect=201, json={"drill": "weekly-absence"})
    which = {"schedule": applied["name"]}
    rec.call("GET", f"{API}/schedules")
    rec.call(
        "POST",
        f"{API}/blackouts",
        expect=201,
        json={
            "scope": "global",
            "windows": [{"days": ["fri"], "start": "16:00", "end": "08:00"}],
            "timezone": "Europe/Berlin",
            "reason": "release freeze: no drills over the weekend deploy",
        },
    )
    rec.call("GET", f"{API}/blackouts")
    rec.call("GET", f"{API}/schedules/{{schedule}}", path=which)
    rec.call("GET", f"{API}/schedules/{{schedule}}/preview", path=which, params={"n": 3})
    rec.call("GET", f"{API}/gamedays.ics", params={"days": 14})
    rec.call("POST", f"{API}/schedules/{{schedule}}/pause", path=which)
    rec.call("POST", f"{API}/schedules/{{schedule}}/resume", path=which)
    rec.call("GET", f"{API}/schedules/{{schedule}}/fires", path=which)
    rec.call("DELETE", f"{API}/schedules/{{schedule}}", path=which)

    # a schedule for a protected environment: approved by a second person, then rejected
    protected = rec.json("POST", f"{API}/schedules", expect=201, json={"drill": "locked-absence"})
    guarded = {"schedule": protected["name"]}
    rec.call(
        "POST",
        f"{API}/schedules/{{schedule}}/approve",
        path=guarded,
        approver=True,
        json={"comment": "reviewed with the payments on-call"},
    )
    rec.call(
        "POST",
        f"{API}/schedules/{{schedule}}/reject",
        path=guarded,
        approver=True,
        json={"reason": "not during the sale"},
    )
    rec.call("DELETE", f"{API}/schedules/{{schedule}}", path=guarded)

    # a game day: the finished drill's run as drill 1's result, a gate, drill 2 run (its
    # manual step acknowledged), a finding, an absence, the verdict (the admin facilitates,
    # so it may decide the manual gate and run the drill)
    gameday = rec.json(
        "POST",
        f"{API}/gamedays",
        expect=201,
        params={"filename": "checkout.gameday.yaml"},
        content=GAMEDAY.encode(),
        headers={"Content-Type": "application/yaml"},
    )
    day = {"gameday": gameday["name"]}
    rec.call("GET", f"{API}/gamedays")
    # the example window is a fixed date, so the recorded start is a forced one
    rec.call("POST", f"{API}/gamedays/{{gameday}}/start", path=day, json={"force": True})
    rec.call(
        "POST",
        f"{API}/gamedays/{{gameday}}/drills/{{position}}/result",
        path=day | {"position": "1"},
        json={"runId": run_id},
    )
    rec.call(
        "POST",
        f"{API}/gamedays/{{gameday}}/drills/{{position}}/gate",
        path=day | {"position": "2"},
        json={"decision": "go"},
    )
    rec.call(
        "POST",
        f"{API}/gamedays/{{gameday}}/notes",
        expect=201,
        path=day,
        json={
            "text": "the cover took 20 minutes to find the runbook",
            "kind": "finding",
            "owner": "user:default/bob",
            "due": "2026-12-31",
            "ticketUrl": "https://tickets.example.com/SRE-42",
        },
    )
    rec.call(
        "POST",
        f"{API}/gamedays/{{gameday}}/participants/{{person}}/absent",
        path=day | {"person": "user:default/bob"},
    )
    drill_run = (
        rec.call(
            "POST",
            f"{API}/gamedays/{{gameday}}/drills/{{position}}/run",
            expect=202,
            path=day | {"position": "2"},
        )
        .headers["location"]
        .rpartition("/")[2]
    )
    rec.call(
        "POST",
        f"{API}/runs/{{run_id}}/steps/{{step}}/ack",
        path={"run_id": drill_run, "step": "cover"},
        json={"evidence": "bob covered with the runbook", "by": _wait_manual(store, drill_run)},
    )
    _wait_terminal(store, drill_run)
    rec.call(
        "POST",
        f"{API}/gamedays/{{gameday}}/close",
        path=day,
        json={"verdict": "The team covers for alice; the runbook needs a link"},
    )
    rec.call("GET", f"{API}/gamedays/{{gameday}}", path=day)
    for fmt in ("md", "html", "json"):
        rec.call("GET", f"{API}/gamedays/{{gameday}}/report", path=day, params={"format": fmt})

    rec.call("GET", f"{API}/audit", params={"limit": 5})
    rec.call("GET", f"{API}/audit", params={"format": "jsonl", "limit": 5})
    rec.call("GET", "/metrics")


def _placeholder(secret: str) -> str:
    """A stand-in for a token: the same prefix (it is shown in lists) and length."""
    keep = secret[: tokens.PREFIX_LENGTH]
    filler = SECRET_PLACEHOLDER * (1 + len(secret) // len(SECRET_PLACEHOLDER))
    return keep + filler[: len(secret) - len(keep)]


def neutralise(value: pydantic.JsonValue, replacements: Mapping[str, str]) -> pydantic.JsonValue:
    """`value` with each key of `replacements` replaced in every string (keys too)."""
    if isinstance(value, str):
        for old, new in replacements.items():
            value = value.replace(old, new)
        return value
    if isinstance(value, list):
        return [neutralise(item, replacements) for item in value]
    if isinstance(value, dict):
        return {
            str(neutralise(key, replacements)): neutralise(item, replacements)
            for key, item in value.items()
        }
    return value


def replacements_for(root: Path, secrets: Iterable[str] = ()) -> dict[str, str]:
    """What `neutralise` replaces: each token secret, then the folders of this machine
    (the most specific first: the catalog lies under the checkout)."""
    found = {secret: _placeholder(secret) for secret in secrets}
    found[str(stack.catalog_path().parent)] = f"{NEUTRAL_ROOT}/catalog"
    found[str(root.resolve())] = NEUTRAL_ROOT
    found[str(root)] = NEUTRAL_ROOT
    found[str(PROJECT)] = f"{NEUTRAL_ROOT}/src"
    return found


LOCKED_DRILL = """\
apiVersion: stormdrill.dev/v1
kind: Drill
metadata:
  name: locked-absence
spec:
  scenario: absence-cover
  environment: locked
  parameters:
    person: user:default/alice
  schedule:
    cron: "0 10 * * 2"
    timezone: Europe/Berlin
"""
"""A schedule for the protected `locked` Environment: it waits for an approval."""


def record(root: Path) -> dict[examples.ResponseKey, pydantic.JsonValue]:
    """Build the world under `root`, exercise the app, and return the neutralised examples."""
    world = conftest.build_world(root)
    (world.drills / "locked-absence.drill.yaml").write_text(LOCKED_DRILL, encoding="utf-8")
    app = app_mod.create_app(world.settings, world.api_settings(recover_on_start=False))
    app.dependency_overrides[deps.get_principal] = _principal
    app.dependency_overrides[event_routes.follow_options] = lambda: event_streams.Follow(
        poll_s=0.05, heartbeat_s=15.0, settle_polls=2
    )
    # the generated document itself, not decorated from the file this run rewrites
    generated = fastapi.FastAPI.openapi(app)
    documented = frozenset(key for key, _ in examples.successes(generated))
    with testclient.TestClient(app) as client:
        rec = Recorder(client=client, documented=documented)
        _exercise(rec, conftest.store_of(client))
    missing = sorted(documented - set(rec.recorded))
    if missing:
        raise RecordingFailed(
            "not recorded (add a call to tests/api/record_examples.py _exercise): "
            + ", ".join(str(key) for key in missing)
        )
    replacements = replacements_for(root, rec.secrets)
    return {key: neutralise(body, replacements) for key, body in sorted(rec.recorded.items())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--output", type=Path, default=OUTPUT, help="default: %(default)s")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    log.setLevel(logging.INFO)
    with tempfile.TemporaryDirectory(prefix="stormdrill-examples-") as folder:
        try:
            recorded = record(Path(folder))
        except RecordingFailed as exc:
            log.error("recording failed: %s", exc)
            return 1
    args.output.write_text(examples.render(recorded), encoding="utf-8")
    log.info("recorded %d examples into %s", len(recorded), args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
