"""`stormdrill run` with stdout to a pipe (CI, `tee`): plain full lines as events happen.

The CLI runs as a subprocess over the sandbox, its stdout a pipe: the first lines (state
planning, the guardrail verdicts) are there, no line is wrapped, nothing is styled, and
the manual step's prompt says how to acknowledge it (the real run id) and by when.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import yaml
from typer import testing

from drills import cli
from orchestrator import journal
from sandbox import stack
from tests.engine_runs import support


def _run_piped(world: stack.Sandbox, db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **support.cli_env(db_url)}
    env.pop("COLUMNS", None)  # a pipe has no width: nothing may wrap at rich's default 80
    for forcing in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        env.pop(forcing, None)
    return subprocess.run(
        [sys.executable, "-m", "drills.cli", *args, "--env", str(world.info.environment)],
        stdin=subprocess.DEVNULL,
        capture_output=True,  # stdout is a pipe, as in CI
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


def test_a_run_piped_prints_every_event_as_a_plain_unwrapped_line_from_the_first(
    world: stack.Sandbox, db_url: str
) -> None:
    done = _run_piped(world, db_url, "run", "key-person-loss", "--yes", "--auto-ack", "1s")

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "    state planning: resolving targets and planning mutations"
    guardrails = [line for line in lines if line.startswith("guardrail ")]
    assert "guardrail environment: ok environment sandbox is allowed" in guardrails
    assert len(guardrails) >= 5
    assert lines.index(guardrails[0]) == 1, "the verdicts follow planning, none dropped"
    assert "\x1b" not in done.stdout and "[bold" not in done.stdout
    with journal.open_store(db_url) as store:
        [run] = store.list_runs(limit=1)
        stored = [f"{e.kind:>9} {e.message}" for e in store.events(run.id)]
    told = [s for s in stored if s.lstrip().startswith(("state ", "step ", "guardrail "))]
    assert [line for line in lines if line in told] == told, (
        "every state, step and guardrail event is printed, in the order it happened"
    )
    postmortem = Path(db_url.removeprefix("sqlite:///")).parent / "reports" / run.id
    assert f"post-mortem: {postmortem / 'postmortem.md'}" in lines, "long paths stay whole"
    assert f"run record: {db_url} (stormdrill runs show {run.id})" in lines


def test_a_piped_manual_prompt_names_the_ack_command_with_the_run_id_and_its_deadline(
    world: stack.Sandbox, db_url: str
) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    done = _run_piped(world, db_url, "run", "key-person-loss", "--yes", "--auto-ack", "1s")

    assert done.returncode == 0, done.stderr
    with journal.open_store(db_url) as store:
        [run] = store.list_runs(limit=1)
        [manual] = store.events(run.id, kind="manual")
    [prompt] = [line for line in done.stdout.splitlines() if line.startswith("   manual ")]
    command = f'stormdrill ack {run.id} on-call-restores-payments --by PERSON --evidence "TEXT|URL"'
    assert f"acknowledge with: {command}" in prompt
    assert manual.data["ack_command"] == command
    found = re.search(r"deadline (\S+Z) \((.+) local\)", prompt)
    assert found is not None, prompt
    deadline = datetime.fromisoformat(found.group(1))
    # taskTimeout is 30m and people are never scaled: the deadline is 30 min from the prompt
    assert 29 * 60 <= (deadline - before).total_seconds() <= 31 * 60
    assert manual.data["deadline"] == found.group(1)
    local = deadline.astimezone()
    assert found.group(2) == f"{local:%Y-%m-%d %H:%M:%S %Z}"


def test_plan_as_json_and_yaml_lists_steps_and_run_dry_run_is_plan(
    shared_world: stack.Sandbox, db_url: str
) -> None:
    env = support.cli_env(db_url)
    where = ["--env", str(shared_world.info.environment)]
    runner = testing.CliRunner()

    as_json = runner.invoke(
        cli.app, ["plan", "key-person-loss", *where, "--format", "json"], env=env
    )
    as_yaml = runner.invoke(
        cli.app, ["plan", "key-person-loss", *where, "--format", "yaml"], env=env
    )
    table = runner.invoke(cli.app, ["plan", "key-person-loss", *where], env=env)
    dry = runner.invoke(cli.app, ["run", "key-person-loss", *where, "--dry-run"], env=env)

    assert as_json.exit_code == 0 == as_yaml.exit_code, as_json.output
    body = json.loads(as_json.stdout)
    assert yaml.safe_load(as_yaml.stdout) == body
    drill = support.bind(shared_world, "key-person-loss")
    assert [s["name"] for s in body["steps"]] == [s.name for s in drill.scenario.spec.steps]
    revoke = next(s for s in body["steps"] if s["name"] == "mark-unavailable")
    assert {m["action"] for m in revoke["mutations"]} >= {"people.mark-unavailable"}
    assert body["rollback"] and body["guardrails"]
    assert (dry.exit_code, dry.stdout) == (table.exit_code, table.stdout)
    with journal.open_store(db_url) as store:
        assert store.list_runs(limit=1) == [], "a dry run submits nothing"
