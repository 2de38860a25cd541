"""Fixtures for the browser tests: the sandbox, a real `stormdrill serve`, headless Chromium.

Once per test process (an xdist worker each has its own): Debian's Chromium and axe-core
are installed if missing (`setup_browser`; a failure fails the tests, never skips them),
the sandbox starts (`sandbox.stack.Sandbox`), and `python -m drills.cli serve` listens on a
free loopback port over a fresh SQLite store whose tokens were made as an admin would
(`drills.service.tokens.create`) before it started: an operator, an approver (the second
person of the two-person rule), a viewer and an admin. The environment folder holds the
sandbox's Environment (`sandbox`) and a protected copy of it (`staging`: one approval
needed), both reaching the same sandbox; the CMDB is the sandbox's catalog folder, as the
Environments name it. `completed_run` is a sandbox drill driven to its end and `gameday` a
game day around now, both made through the API, for the pages that show one. Each user
logs in once through the login form; its cookies are kept as a Playwright storage state,
so every test's browser context starts logged in.

`browse(user)` opens a fresh context and page (`Tab`), CSP on; `browse(user,
bypass_csp=True)` is for the axe-core pass only (axe is injected as a script tag). A `Tab`
collects console errors (with their source), page errors, answers of 400 or more and every
request that leaves 127.0.0.1; `tab.assert_clean()` fails the test with the list.
`tab.visit(path)` saves a full-page screenshot into the session's `screenshots` folder and
records its path on the test (`user_properties`); `pytest_terminal_summary` lists them all
at the end of the run. `log_in(page, secret)` and `start_from_scenario_page(tab, ...)` fill
and send the login and Start drill forms as a person would (labels and button names).
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib import parse

import httpx
import pytest
import yaml
from _pytest import terminal
from playwright import sync_api

from drills import settings as settings_mod
from drills import store as store_mod
from drills.service import auth, tokens
from orchestrator import states
from sandbox import stack
from tests.web.browser import setup_browser

log = logging.getLogger(__name__)

STARTUP_S = 60.0
DRIVE_TIMEOUT_S = 120.0
UI_TIMEOUT_MS = 15_000
PROTECTED_ENVIRONMENT = "staging"
SANDBOX_SCENARIO = "az-failure-kubernetes"
LOOPBACK = "127.0.0.1"
LOCAL_SCHEMES = frozenset({"data", "blob", "about"})
SCREENSHOT_PROPERTY = "screenshot"
RUN_PATH = re.compile(r"^/runs/(?P<id>[^/]+)$")
RESPONSE_STATUS = "answered HTTP"
RESOURCE_STATUS = "Failed to load resource: the server responded with a status of"


@dataclasses.dataclass(frozen=True)
class User:
    """A person with a token: the token's name is the principal's name."""

    name: str
    role: auth.Role
    secret: str


USERS: Mapping[str, auth.Role] = {
    "olga-operator": auth.Role.OPERATOR,
    "abe-approver": auth.Role.APPROVER,
    "vic-viewer": auth.Role.VIEWER,
    "ada-admin": auth.Role.ADMIN,
}
OPERATOR, APPROVER, VIEWER, ADMIN = USERS


@dataclasses.dataclass(frozen=True)
class Served:
    """`stormdrill serve` on `base`, over the sandbox, with a token per user."""

    base: str
    users: Mapping[str, User]
    sandbox: stack.Sandbox
    log_file: Path

    def api(self, user: str) -> httpx.Client:
        """An httpx client of the REST API as `user` (bearer token)."""
        return httpx.Client(
            base_url=self.base,
            headers={"Authorization": f"Bearer {self.users[user].secret}"},
            timeout=30.0,
        )

    def submit(
        self, user: str, *, scenario: str, environment: str, parameters: Mapping[str, str]
    ) -> str:
        """Submit a run through the API as `user`; its id."""
        with self.api(user) as client:
            answer = client.post(
                "/api/v1/runs",
                json={
                    "scenario": scenario,
                    "environment": environment,
                    "parameters": dict(parameters),
                },
            )
        assert answer.status_code == 202, answer.text
        run_id: str = answer.json()["id"]
        return run_id

    def run(self, run_id: str) -> dict[str, Any]:
        """The API's view of the run (as the admin)."""
        with self.api(ADMIN) as client:
            answer = client.get(f"/api/v1/runs/{run_id}")
        assert answer.status_code == 200, answer.text
        shown: dict[str, Any] = answer.json()
        return shown

    def wait_until_ended(self, run_id: str) -> dict[str, Any]:
        """The run once it is in a terminal state (the test fails past `DRIVE_TIMEOUT_S`)."""
        ended = {state.value for state in states.TERMINAL}
        deadline = time.monotonic() + DRIVE_TIMEOUT_S
        shown = self.run(run_id)
        while shown["state"] not in ended:
            if time.monotonic() > deadline:
                pytest.fail(f"run {run_id} did not end within {DRIVE_TIMEOUT_S}s: {shown['state']}")
            time.sleep(0.2)
            shown = self.run(run_id)
        return shown


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def _write_protected_copy(environment: Path) -> Path:
    """`staging`: the sandbox's Environment, protected, one approval needed (same folder,
    so its relative kubeconfig resolves the same)."""
    document = yaml.safe_load(environment.read_text(encoding="utf-8"))
    document["metadata"]["name"] = PROTECTED_ENVIRONMENT
    document["spec"]["protected"] = True
    document["spec"]["approvals"] = {"required": 1}
    target = environment.with_name(f"{PROTECTED_ENVIRONMENT}.environment.yaml")
    target.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return target


def _make_users(config: settings_mod.Settings) -> dict[str, User]:
    with store_mod.open_store(config) as store:
        return {
            name: User(
                name=name,
                role=role,
                secret=tokens.create(
                    store, role=role, name=name, created_by="browser-tests"
                ).secret,
            )
            for name, role in USERS.items()
        }


def _wait_healthy(proc: subprocess.Popen[bytes], base: str, log_file: Path) -> None:
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(
                f"serve exited {proc.returncode}:\n{log_file.read_text(errors='replace')[-4000:]}"
            )
        try:
            if httpx.get(f"{base}/healthz", timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"serve did not answer {base}/healthz within {STARTUP_S}s")


@contextlib.contextmanager
def _serving(root: Path, world: stack.Sandbox) -> Iterator[Served]:
    environments = world.info.environment.parent
    _write_protected_copy(world.info.environment)
    config = settings_mod.Settings(
        data_dir=root / "data",
        database_url=f"sqlite:///{root / 'data' / 'stormdrill.db'}",
        reports_dir=root / "reports",
    )
    users = _make_users(config)
    config_file = root / "serve.yaml"
    config_file.write_text(
        yaml.safe_dump({"environment_dirs": [str(environments)], "driver_poll_s": 0.2}),
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("STORMDRILL_")}
    env |= {
        "STORMDRILL_DATABASE_URL": config.database_url,
        "STORMDRILL_DATA_DIR": str(config.data_dir),
        "STORMDRILL_REPORTS_DIR": str(config.reports_dir),
        "STORMDRILL_CMDB": str(stack.catalog_path().parent),
    }
    port = _free_port()
    base = f"http://{LOOPBACK}:{port}"
    log_file = root / "serve.log"
    with log_file.open("wb") as output:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "drills.cli",
                "serve",
                "--host",
                LOOPBACK,
                "--port",
                str(port),
                "--config",
                str(config_file),
                "--server-log-level",
                "warning",
            ],
            env=env,
            cwd=root,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_healthy(proc, base, log_file)
            yield Served(base=base, users=users, sandbox=world, log_file=log_file)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


# ---- set-up -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def chromium() -> Path:
    try:
        return setup_browser.ensure_chromium()
    except setup_browser.SetupFailed as exc:
        pytest.fail(f"browser set-up: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def axe_script() -> str:
    try:
        return setup_browser.axe_source(setup_browser.DEFAULT_AXE_CACHE)
    except setup_browser.SetupFailed as exc:
        pytest.fail(f"browser set-up: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("served")
    with stack.Sandbox(root / "sandbox") as world:
        if not world.wait_settled(timeout_s=30.0):
            pytest.fail("the sandbox's deployments did not settle within 30s")
        with _serving(root, world) as running:
            yield running


@pytest.fixture(scope="module")
def browser(chromium: Path) -> Iterator[sync_api.Browser]:
    """Chromium under Playwright, for one test module at a time: Playwright's sync API runs an
    event loop in this thread while it is open, and a test of another module that calls
    `asyncio.run` in the same worker must not find it running."""
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(chromium), headless=True)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("screenshots", numbered=False)


# ---- pages --------------------------------------------------------------------------------


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-")[:90] or "root"


@dataclasses.dataclass
class Tab:
    """A page in a fresh browser context, with what went wrong on it so far."""

    page: sync_api.Page
    node: pytest.Item
    folder: Path
    who: str
    numbers: Iterator[int]
    """Shared by the test's tabs, so their screenshots are numbered in the order taken."""
    problems: list[str] = dataclasses.field(default_factory=list)

    def watch(self) -> None:
        self.page.on("console", self._on_console)
        self.page.on("pageerror", self._on_pageerror)
        self.page.on("request", self._on_request)
        self.page.on("response", self._on_response)

    def _on_console(self, message: sync_api.ConsoleMessage) -> None:
        if message.type == "error":
            source = message.location.get("url") or "?"
            self.problems.append(
                f"console error on {self.page.url}: {message.text} (source: {source})"
            )

    def _on_pageerror(self, error: sync_api.Error) -> None:
        self.problems.append(f"page error on {self.page.url}: {error.message}")

    def _on_request(self, request: sync_api.Request) -> None:
        url = parse.urlsplit(request.url)
        if url.scheme not in LOCAL_SCHEMES and url.hostname != LOOPBACK:
            self.problems.append(f"request leaving {LOOPBACK} from {self.page.url}: {request.url}")

    def _on_response(self, response: sync_api.Response) -> None:
        if response.status >= 400:
            self.problems.append(f"{RESPONSE_STATUS} {response.status} for {response.url}")

    def visit(self, path: str, *, status: int = 200) -> sync_api.Response:
        """Open `path`, check it answered `status` without a redirect (to `/login`, say),
        and save a full-page screenshot."""
        answer = self.page.goto(path, wait_until="load")
        assert answer is not None, f"no response for {path}"
        assert answer.status == status, f"{path}: {answer.status}\n{self.page.content()[:2000]}"
        landed = parse.urlsplit(self.page.url).path
        assert landed == parse.urlsplit(path).path, f"{path} went to {self.page.url}"
        self.shot(path)
        return answer

    def shot(self, label: str) -> Path:
        """A full-page screenshot named after the test and `label`; its path is recorded."""
        number = next(self.numbers)
        target = self.folder / f"{_slug(self.node.name)}-{number:02d}-{self.who}-{_slug(label)}.png"
        self.page.screenshot(path=str(target), full_page=True)
        self.node.user_properties.append((SCREENSHOT_PROPERTY, str(target)))
        log.info("screenshot of %s saved to %s", self.page.url, target)
        return target

    def assert_clean(self, *, answered: Iterable[int] = ()) -> None:
        """No console error, page error, answer of 400 or more, or request off the
        loopback host so far.

        `answered`: statuses the test made a page answer on purpose (a refused login's
        401); Chromium reports each as a console error, which is then not a problem.
        """
        expected = tuple(
            f"{prefix} {status} "
            for status in answered
            for prefix in (RESOURCE_STATUS, RESPONSE_STATUS)
        )
        problems = [p for p in self.problems if not any(e in p for e in expected)]
        assert not problems, "\n".join(problems)


def log_in(page: sync_api.Page, secret: str) -> sync_api.Response | None:
    """Fill the login form as a person would and send it; the answer to the POST."""
    page.goto("/login")
    page.get_by_label("Token").fill(secret)
    with page.expect_navigation() as navigation:
        page.get_by_role("button", name="Log in").click()
    return navigation.value


def start_from_scenario_page(
    tab: Tab, *, scenario: str, environment: str, soak: str
) -> tuple[str, list[str]]:
    """Fill and send the Start drill form of `/scenarios/{scenario}`; the new run's id and
    the confirm dialog's questions (accepted)."""
    tab.visit(f"/scenarios/{scenario}")
    form = tab.page.locator("form").filter(has=tab.page.get_by_role("button", name="Start drill"))
    form.get_by_label("Environment").select_option(environment)
    form.get_by_label("soak", exact=True).fill(soak)
    asked: list[str] = []

    def accept(dialog: sync_api.Dialog) -> None:
        asked.append(dialog.message)
        dialog.accept()

    tab.page.on("dialog", accept)
    with tab.page.expect_navigation(url=re.compile(r"/runs/[^/]+$")):
        form.get_by_role("button", name="Start drill").click()
    tab.page.remove_listener("dialog", accept)
    found = RUN_PATH.match(parse.urlsplit(tab.page.url).path)
    assert found, tab.page.url
    return found.group("id"), asked


@pytest.fixture(scope="module")
def logged_in(browser: sync_api.Browser, served: Served) -> Callable[[str], Mapping[str, Any]]:
    """`logged_in(user)`: the storage state (cookies) of `user` after the login form."""
    states_by_user: dict[str, Any] = {}

    def state(user: str) -> Mapping[str, Any]:
        if user not in states_by_user:
            context = browser.new_context(base_url=served.base)
            try:
                page = context.new_page()
                log_in(page, served.users[user].secret)
                if parse.urlsplit(page.url).path == "/login":
                    pytest.fail(f"{user} could not log in: {page.content()[:2000]}")
                states_by_user[user] = context.storage_state()
            finally:
                context.close()
        stored: Mapping[str, Any] = states_by_user[user]
        return stored

    return state


Browse = Callable[..., Tab]


@pytest.fixture
def browse(
    browser: sync_api.Browser,
    served: Served,
    logged_in: Callable[[str], Mapping[str, Any]],
    screenshots: Path,
    request: pytest.FixtureRequest,
) -> Iterator[Browse]:
    """`browse(user=None, bypass_csp=False)`: a `Tab` in a new context (`user` logged in)."""
    contexts: list[sync_api.BrowserContext] = []
    numbers = itertools.count(1)

    def open_tab(user: str | None = None, *, bypass_csp: bool = False) -> Tab:
        context = browser.new_context(
            base_url=served.base,
            bypass_csp=bypass_csp,
            storage_state=None if user is None else logged_in(user),  # type: ignore[arg-type]
        )
        context.set_default_timeout(UI_TIMEOUT_MS)
        contexts.append(context)
        tab = Tab(
            page=context.new_page(),
            node=request.node,
            folder=screenshots,
            who=user or "anonymous",
            numbers=numbers,
        )
        tab.watch()
        return tab

    yield open_tab
    for context in reversed(contexts):
        context.close()


@pytest.fixture(scope="session")
def completed_run(served: Served) -> str:
    """A sandbox drill submitted through the API and driven to its end (for run pages)."""
    run_id = served.submit(
        OPERATOR,
        scenario=SANDBOX_SCENARIO,
        environment=stack.ENVIRONMENT_NAME,
        parameters={"soak": "1m"},
    )
    shown = served.wait_until_ended(run_id)
    assert shown["state"] == states.RunState.COMPLETED.value, shown
    return run_id


GAMEDAY = """\
apiVersion: stormdrill.dev/v1
kind: GameDay
metadata:
  name: browser-gameday
spec:
  window:
    start: "{start}"
    end: "{end}"
    timezone: Europe/Berlin
  services: [checkout]
  participants:
    - person: user:default/alice
      roles: [facilitator]
    - person: user:default/bob
      roles: [operator]
  drills:
    - scenario: {scenario}
      environment: {environment}
      gate: manual
"""


@pytest.fixture(scope="session")
def gameday(served: Served) -> str:
    """A game day (created through the API by the admin) around now; its id."""
    now = datetime.now(UTC).replace(microsecond=0)
    text = GAMEDAY.format(
        start=(now - timedelta(hours=1)).isoformat(),
        end=(now + timedelta(hours=2)).isoformat(),
        scenario=SANDBOX_SCENARIO,
        environment=stack.ENVIRONMENT_NAME,
    )
    with served.api(ADMIN) as client:
        answer = client.post(
            "/api/v1/gamedays",
            content=text.encode(),
            headers={"Content-Type": "application/yaml"},
        )
    assert answer.status_code == 201, answer.text
    day_id: str = answer.json()["id"]
    return day_id


def pytest_terminal_summary(terminalreporter: terminal.TerminalReporter) -> None:
    """List the screenshots the browser tests saved (from every worker's reports)."""
    saved: list[str] = []
    for reports in terminalreporter.stats.values():
        for report in reports:
            if getattr(report, "when", None) != "call":
                continue
            saved.extend(
                str(value)
                for key, value in getattr(report, "user_properties", ())
                if key == SCREENSHOT_PROPERTY
            )
    if saved:
        terminalreporter.write_sep("-", f"browser screenshots ({len(saved)})")
        for path in sorted(saved):
            terminalreporter.write_line(path)
