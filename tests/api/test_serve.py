"""`stormdrill serve` as a real process: it recovers at start-up, answers, and stops cleanly.

Each test starts `python -m drills.cli serve` on a free loopback port with a fresh SQLite
store and talks to it with httpx over real HTTP; a real token (created in that store as an
admin would) authenticates the API calls.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from drills import settings as settings_mod
from drills import store as store_mod
from drills.api import config as api_config
from drills.service import auth, leases, tokens
from orchestrator import journal, records, states
from tests.api import conftest

STARTUP_S = 60.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _dead_owner() -> states.Owner:
    """An owner on this host whose pid runs no process (a crashed orchestrator)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return states.Owner(host=socket.gethostname(), pid=child.pid, token="gone")


def _env(api_world: conftest.ApiWorld) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STORMDRILL_")}
    env["STORMDRILL_DATABASE_URL"] = api_world.settings.database_url
    env["STORMDRILL_REPORTS_DIR"] = str(api_world.settings.reports_dir)
    return env


def _wait_healthy(proc: subprocess.Popen[str], base: str) -> httpx.Response:
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"serve exited {proc.returncode}:\n{out}\n{err}")
        try:
            return httpx.get(f"{base}/healthz", timeout=2.0)
        except httpx.TransportError:
            time.sleep(0.1)
    pytest.fail(f"serve did not answer {base}/healthz within {STARTUP_S}s")


def _crash_a_run(api_world: conftest.ApiWorld) -> None:
    with store_mod.open_store(api_world.settings) as store:
        crashed = states.new_run(
            id=states.RunId("20250101T120000Z-crashed0"),
            scenario="absence-cover",
            environment="test",
            environment_source=str(api_world.environments / "test.environment.yaml"),
            owner=_dead_owner(),
            at=datetime.now(UTC) - timedelta(hours=1),
            record=records.RunRecord(),
        )
        store.create_run(crashed)
        store.save_run(
            states.transition(
                crashed, states.RunState.PLANNING, reason="test", at=datetime.now(UTC)
            ),
            expected_state=states.RunState.PENDING,
        )


@contextlib.contextmanager
def _serving(
    api_world: conftest.ApiWorld, port: int, *extra: str
) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    config = api_world.root / "serve.yaml"
    config.write_text(
        f"environment_dirs: [{api_world.environments}]\nscenario_dirs: [{api_world.scenarios}]\n",
        encoding="utf-8",
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "drills.cli",
            "serve",
            "--port",
            str(port),
            "--config",
            str(config),
            *extra,
        ],
        env=_env(api_world),
        cwd=api_world.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield f"http://127.0.0.1:{port}", proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def served(api_world: conftest.ApiWorld) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """A crashed run in the store, then `serve --config FILE` on a free port."""
    _crash_a_run(api_world)
    with _serving(api_world, _free_port()) as running:
        yield running


def test_a_serve_restarted_after_a_crash_takes_its_own_lease_back_and_recovers_at_once(
    api_world: conftest.ApiWorld,
) -> None:
    _crash_a_run(api_world)
    port = _free_port()
    with store_mod.open_store(api_world.settings) as store:  # the crashed serve's tenure
        crashed_serve = leases.SqlLease(
            store,
            holder=leases.HolderId(f"{socket.gethostname()}:{port}"),
            ttl=timedelta(hours=1),
        )
        tenure = crashed_serve.try_acquire(datetime.now(UTC))
    assert tenure is not None

    with _serving(api_world, port) as (base, proc):
        _wait_healthy(proc, base)
        with store_mod.open_store(api_world.settings) as store:
            recovered = store.get_run(states.RunId("20250101T120000Z-crashed0"))
            row = leases.SqlLease(store, holder=tenure.holder, ttl=timedelta(hours=1)).current()

    assert recovered.terminal, recovered.state  # not left until the old tenure expired
    assert row is not None and row.holder == tenure.holder


def _workers(pid: int) -> set[int]:
    """The uvicorn workers under `pid` (spawned processes; not multiprocessing's tracker)."""
    children = {
        int(child)
        for task in Path(f"/proc/{pid}/task").iterdir()
        for child in (task / "children").read_text().split()
    }
    return {c for c in children if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()}


def test_serve_with_two_workers_has_each_name_itself_by_its_pid_and_one_recovers(
    api_world: conftest.ApiWorld,
) -> None:
    _crash_a_run(api_world)
    port = _free_port()
    with _serving(api_world, port, "--workers", "2") as (base, proc):
        _wait_healthy(proc, base)
        workers = _workers(proc.pid)
        with store_mod.open_store(api_world.settings) as store:
            recovered = store.get_run(states.RunId("20250101T120000Z-crashed0"))
            probe = leases.SqlLease(store, holder=leases.HolderId("probe"), ttl=timedelta(1))
            row = probe.current()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0

    assert recovered.terminal, recovered.state
    assert len(workers) == 2
    assert row is not None
    name, _, pid = row.holder.rpartition("/")
    assert name == f"{socket.gethostname()}:{port}" and int(pid) in workers


def test_a_config_file_may_not_set_the_workers(tmp_path: Path) -> None:
    config = tmp_path / "serve.yaml"
    config.write_text("workers: 2\n", encoding="utf-8")

    with pytest.raises(api_config.ConfigInvalid, match=r"workers: .*serve --workers N"):
        api_config.ApiSettings.load({}, config)


def test_serve_recovers_at_start_up_answers_healthz_and_serves_the_configured_folders(
    served: tuple[str, subprocess.Popen[str]], api_world: conftest.ApiWorld
) -> None:
    base, proc = served

    health = _wait_healthy(proc, base)
    with store_mod.open_store(api_world.settings) as store:
        secret = tokens.create(store, role=auth.Role.VIEWER, created_by="test").secret
        recovered = store.get_run(states.RunId("20250101T120000Z-crashed0"))
    headers = {"Authorization": f"Bearer {secret}"}
    environments = httpx.get(f"{base}/api/v1/environments", headers=headers, timeout=10.0)
    anonymous = httpx.get(f"{base}/api/v1/environments", timeout=10.0)
    proc.send_signal(signal.SIGINT)
    code = proc.wait(timeout=30)

    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert recovered.terminal, recovered.state
    assert environments.status_code == 200
    assert [e["name"] for e in environments.json()["environments"]] == ["locked", "test"]
    assert anonymous.status_code == 401
    assert code == 0


def test_serve_with_a_config_file_it_cannot_use_says_so_in_one_line_and_exits_3(
    api_world: conftest.ApiWorld,
) -> None:
    config = api_world.root / "bad.toml"
    config.write_text('scenario_dir = "/typo"\n', encoding="utf-8")

    done = subprocess.run(
        [sys.executable, "-m", "drills.cli", "serve", "--port", "0", "--config", str(config)],
        env=_env(api_world),
        cwd=api_world.root,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 3, done.stderr
    assert "unknown key(s) scenario_dir" in done.stderr
    assert "Traceback" not in done.stderr


def test_serve_with_an_unreachable_store_exits_5_naming_it(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STORMDRILL_")}
    env["STORMDRILL_DATABASE_URL"] = "postgresql://nobody:pw@127.0.0.1:1/none"

    done = subprocess.run(
        [sys.executable, "-m", "drills.cli", "serve", "--port", "0"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 5, done.stderr
    assert "127.0.0.1:1" in done.stderr and "pw" not in done.stderr
    assert "Traceback" not in done.stderr


def test_settings_from_a_config_file_name_the_store_too(api_world: conftest.ApiWorld) -> None:
    config = api_world.root / "serve.toml"
    config.write_text(
        f'database_url = "sqlite:///{api_world.root / "other.db"}"\nport = 9000\n',
        encoding="utf-8",
    )
    env = api_config.store_env({"STORMDRILL_PORT": "9100"}, config)

    assert settings_mod.Settings.from_env(env).database_url.endswith("/other.db")
    assert api_config.ApiSettings.load(env, config).port == 9100
    assert journal.normalise_url(env["STORMDRILL_DATABASE_URL"]).startswith("sqlite:///")
