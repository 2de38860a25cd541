"""A real drill over the sandbox with a secret planted everywhere: none reaches any output.

The CLI runs as a separate process (as a person or CI runs it), under umask 022. Every
output is collected — stdout and stderr (log lines included) of `run`, `ack`, `runs show`
(text and JSON), `runs list`, `report` (md, html, json) and `recover`; the post-mortem
files, the JUnit file, the SQLite database with its -wal/-shm, and the journal — and
searched for every canary. A second test kills the drill mid-run and checks `recover`
still undoes the fault from the (redacted) journal: undo data is kept intact.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import sqlalchemy as sa

from orchestrator import journal, states
from sandbox import stack
from tests.engine_runs import support
from tests.secrets import planting

REPO = Path(__file__).resolve().parents[2]
_S = states.RunState


@contextlib.contextmanager
def _umask(mask: int) -> Iterator[None]:
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


class _Drill:
    """The planted drill's files, and the CLI run as a subprocess over them."""

    def __init__(self, world: stack.Sandbox, tmp_path: Path) -> None:
        self.folder = tmp_path / "store"  # does not exist yet: the CLI creates it
        self.db = self.folder / "stormdrill.db"
        self.db_url = f"sqlite:///{self.db}"
        self.env = {**os.environ, **planting.process_environment(self.db_url)}
        self.env.pop("STORMDRILL_CMDB", None)
        self.scenario = support.write_yaml(
            tmp_path / "secret-canary.yaml",
            planting.scenario_document(vendor_port=planting.closed_port()),
        )
        self.environment = planting.environment_file(world, tmp_path / "environment.yaml")
        self.junit = tmp_path / "ci-output" / "junit.xml"
        self.outputs: dict[str, bytes] = {}

    def plan_args(self) -> list[str]:
        return [
            "plan",
            str(self.scenario),
            "--env",
            str(self.environment),
            "--set",
            f"vendorApiKey={planting.CANARIES['set-value']}",
            "--set",
            f"vendorHeader={planting.CANARIES['declared-secret']}",
        ]

    def start(self) -> subprocess.Popen[bytes]:
        args = [
            "run",
            str(self.scenario),
            "--env",
            str(self.environment),
            "--yes",
            "--set",
            f"vendorApiKey={planting.CANARIES['set-value']}",
            "--set",
            f"vendorHeader={planting.CANARIES['declared-secret']}",
            "--junit",
            str(self.junit),
        ]
        with _umask(0o022):
            return subprocess.Popen(
                [sys.executable, "-m", "drills.cli", *args],
                cwd=REPO,
                env=self.env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )

    def cli(self, name: str, *args: str) -> subprocess.CompletedProcess[bytes]:
        with _umask(0o022):
            done = subprocess.run(
                [sys.executable, "-m", "drills.cli", *args],
                cwd=REPO,
                env=self.env,
                capture_output=True,
                timeout=240,
                check=False,
            )
        self.outputs[f"{name} stdout"] = done.stdout
        self.outputs[f"{name} stderr"] = done.stderr
        return done

    def finish(self, process: subprocess.Popen[bytes]) -> int:
        stdout, stderr = process.communicate(timeout=240)
        self.outputs["run stdout"], self.outputs["run stderr"] = stdout, stderr
        return process.returncode

    def wait_for_manual_step(self) -> states.RunId:
        """The run's id once its manual step is waiting (the cordon is applied by then)."""
        found: list[states.RunId] = []

        def waiting() -> bool:
            if not self.db.exists():
                return False
            with journal.open_store(self.db_url) as store:
                for run in store.list_runs(limit=1):
                    if store.events(run.id, kind="manual"):
                        found.append(run.id)
                        return True
            return False

        support.wait_for(waiting, timeout_s=120, what="the drill's manual step waiting")
        return found[0]

    def files(self) -> dict[str, bytes]:
        """Every file the drill wrote: the store folder (database, -wal, -shm, reports), JUnit."""
        written = {
            str(path): path.read_bytes()
            for path in sorted(self.folder.rglob("*"))
            if path.is_file()
        }
        if self.junit.exists():
            written[str(self.junit)] = self.junit.read_bytes()
        return written


def _leaks(outputs: dict[str, bytes]) -> dict[str, list[str]]:
    found = {name: planting.leaks(text) for name, text in outputs.items()}
    return {name: places for name, places in found.items() if places}


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _journal_dump(db_url: str, run_id: states.RunId) -> bytes:
    """The journal, timeline and record as the store returns them (every field)."""
    with journal.open_store(db_url) as store:
        run = store.get_run(run_id)
        body: dict[str, object] = {
            "record": run.record.to_json(),
            "reason": run.reason,
            "abort_reason": run.abort_reason,
            "events": [[e.kind, e.message, dict(e.data)] for e in store.events(run_id)],
            "entries": [
                [e.action, dict(e.params), dict(e.pre_state), e.error, e.undo.to_json()]
                for e in store.entries(run_id)
            ],
        }
    return json.dumps(body, default=str).encode()


def _private(paths: Sequence[Path]) -> dict[str, str]:
    """The paths (files 0600, folders 0700) that are not private, with their mode."""
    wrong = {}
    for path in paths:
        wanted = 0o700 if path.is_dir() else 0o600
        if _mode(path) != wanted:
            wrong[str(path)] = oct(_mode(path))
    return wrong


def test_no_planted_secret_reaches_any_output_of_a_real_drill(
    world: stack.Sandbox, tmp_path: Path
) -> None:
    drill = _Drill(world, tmp_path)
    before = support.kube_snapshot(world)
    for fmt in ("table", "json"):
        drill.cli(f"plan {fmt}", *drill.plan_args(), "--format", fmt)
    assert b'"refused": false' in drill.outputs["plan json stdout"]  # it planned, and printed

    process = drill.start()
    run_id = drill.wait_for_manual_step()
    acked = drill.cli(
        "ack",
        "ack",
        run_id,
        planting.STEP_MANUAL,
        "--by",
        "alice",
        "--evidence",
        f"logged in; console password={planting.CANARIES['ack-evidence']} worked;"
        f" pasted {planting.CANARIES['set-value']} by mistake",
    )
    code = drill.finish(process)
    shown = drill.cli("runs show", "runs", "show", run_id)
    shown_json = drill.cli("runs show json", "runs", "show", run_id, "--format", "json")
    drill.cli("runs list", "runs", "list", "--format", "json")
    for fmt in ("md", "html", "json"):
        drill.cli(f"report {fmt}", "report", run_id, "--format", fmt)
    drill.cli("recover", "recover")

    assert acked.returncode == 0, acked.stderr.decode()
    assert code == 2, drill.outputs["run stdout"].decode() + drill.outputs["run stderr"].decode()
    # Rollback still works from the redacted journal: the cordon is gone.
    assert support.kube_snapshot(world) == before
    outputs = {**drill.outputs, **drill.files(), "journal": _journal_dump(drill.db_url, run_id)}
    assert _leaks(outputs) == {}
    for name, text in drill.outputs.items():
        assert b"Traceback" not in text, name
    # Not vacuous: the drill ran, probed with the secrets, and shows them masked.
    with journal.open_store(drill.db_url) as store:
        run = store.get_run(run_id)
        acks = store.events(run_id, kind="ack")
        probes = store.events(run_id, kind="probe")
        timeline = "\n".join(
            f"{e.kind}: {e.message} {dict(e.data)}"
            for e in store.events(run_id)
            if e.kind != "probe"
        )
    assert run.state is _S.ABORTED and "vendor-answers" in run.reason, timeline
    assert "***@127.0.0.1" in run.reason
    parameters = run.record.parameters
    assert isinstance(parameters, dict)
    assert parameters["apiToken"] == parameters["vendorApiKey"] == "***"
    assert parameters["vendorHeader"] == "***"
    assert str(parameters["webHealthUrl"]).startswith("http://***@127.0.0.1:")
    # The ack ran in another process: the bare --set value is masked by its fingerprint.
    assert [a.data["evidence"] for a in acks] == [
        "logged in; console password=*** worked; pasted *** by mistake"
    ]
    assert any(p.data.get("probe") == "web-healthy" and p.data.get("ok") for p in probes)
    record = json.loads(shown_json.stdout)
    assert record["record"]["parameters"]["apiToken"] == "***"
    assert "token ***, header ***" in shown.stdout.decode()
    markdown = (drill.folder / "reports" / run_id / "postmortem.md").read_text(encoding="utf-8")
    assert "apiToken" in markdown and "vendorHeader" in markdown
    # Private: the store folder we created, the database (and -wal/-shm), reports, JUnit.
    written = [drill.folder, *drill.folder.rglob("*"), drill.junit.parent, drill.junit]
    assert drill.db in written and (drill.folder / "reports" / run_id / "junit.xml") in written
    assert _private(written) == {}


def test_a_drill_with_secrets_killed_mid_run_is_recovered_from_its_redacted_journal(
    world: stack.Sandbox, tmp_path: Path
) -> None:
    drill = _Drill(world, tmp_path)
    before = support.kube_snapshot(world)
    process = drill.start()
    run_id = drill.wait_for_manual_step()
    with journal.open_store(drill.db_url) as store:
        applied = [e for e in store.entries(run_id) if e.state.value == "applied"]
    assert applied, "the cordon should be applied before the manual step waits"
    assert support.kube_snapshot(world) != before

    process.send_signal(signal.SIGKILL)
    drill.finish(process)
    recovered = drill.cli("recover", "recover")

    assert recovered.returncode == 0, recovered.stderr.decode()
    assert f"run {run_id}:" in recovered.stdout.decode()
    assert support.kube_snapshot(world) == before
    with journal.open_store(drill.db_url) as store:
        assert store.get_run(run_id).state is _S.CRASHED or store.get_run(run_id).terminal
        assert store.undo_plan(run_id) == []
    outputs = {**drill.outputs, **drill.files(), "journal": _journal_dump(drill.db_url, run_id)}
    assert _leaks(outputs) == {}


@pytest.mark.postgres
def test_a_postgresql_password_in_the_store_url_is_never_printed(
    tmp_path: Path, postgres_url: str
) -> None:
    password = planting.CANARIES["database-password"]
    env = {**os.environ, "STORMDRILL_DATA_DIR": str(tmp_path), "COLUMNS": "200"}
    # A schema of its own (trust auth takes any password): an empty store, created at head.
    reachable = sa.make_url(postgres_url).set(password=password)
    urls = {
        "reachable": reachable.render_as_string(hide_password=False),
        "unreachable": f"postgresql://postgres:{password}@127.0.0.1:{planting.closed_port()}/test",
        "unknown driver": f"postgresql+nosuchdriver://postgres:{password}@127.0.0.1:5432/test",
    }
    outputs: dict[str, bytes] = {}
    codes: dict[str, int] = {}
    for name, url in urls.items():
        for command in (["runs", "list"], ["runs", "show", "no-such-run"]):
            done = subprocess.run(
                [sys.executable, "-m", "drills.cli", *command],
                cwd=REPO,
                env={**env, "STORMDRILL_DATABASE_URL": url},
                capture_output=True,
                timeout=120,
                check=False,
            )
            outputs[f"{name} {command} stdout"] = done.stdout
            outputs[f"{name} {command} stderr"] = done.stderr
            codes[f"{name} {' '.join(command)}"] = done.returncode

    assert _leaks(outputs) == {}
    assert codes["reachable runs list"] == 0
    assert codes["unreachable runs list"] != 0 and codes["unknown driver runs list"] != 0
    assert b"127.0.0.1" in outputs[f"unreachable {['runs', 'list']} stderr"]
