"""The shared output vocabulary: `--format table|json|yaml`, `-o FILE`, `-y`, log options.

Also: `run` without `--yes` and without a terminal never prompts and exits 3.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from typer import testing

from drills import cli
from orchestrator import logcontext

_SANDBOX_ENV = Path(__file__).parents[2] / "drills" / "examples" / "sandbox.environment.yaml"


def _invoke(tmp_path: Path, *args: str) -> testing.Result:
    env = {"STORMDRILL_DATABASE_URL": f"sqlite:///{tmp_path / 'stormdrill.db'}"}
    return testing.CliRunner().invoke(cli.app, list(args), env=env)


@pytest.fixture
def root_logging() -> Iterator[None]:
    """Restore the root logger's handlers and level after a test configures logging."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_actions_as_yaml_is_the_same_data_as_json(tmp_path: Path) -> None:
    as_json = _invoke(tmp_path, "actions", "--format", "json")
    as_yaml = _invoke(tmp_path, "actions", "--format", "yaml")

    assert as_json.exit_code == 0 == as_yaml.exit_code, as_yaml.output
    assert yaml.safe_load(as_yaml.stdout) == json.loads(as_json.stdout)
    assert as_yaml.stdout.startswith("actions:\n"), "keys keep the view's order"


def test_output_file_gets_the_data_and_stdout_stays_empty(tmp_path: Path) -> None:
    target = tmp_path / "out" / "actions.json"

    written = _invoke(tmp_path, "actions", "--format", "json", "-o", str(target))

    assert written.exit_code == 0, written.output
    assert written.stdout == ""
    data = json.loads(target.read_text())
    assert {"kubernetes.nodes.drain"} <= {a["name"] for a in data["actions"]}


def test_a_table_written_with_output_is_plain_text_without_styles(tmp_path: Path) -> None:
    target = tmp_path / "actions.txt"

    written = _invoke(tmp_path, "actions", "--output", str(target))

    assert written.exit_code == 0, written.output
    text = target.read_text()
    assert "Actions" in text and "kubernetes.nodes.drain" in text
    assert "\x1b" not in text


def test_run_without_yes_and_without_a_terminal_exits_3_asking_for_yes(tmp_path: Path) -> None:
    refused = _invoke(tmp_path, "run", "key-person-loss", "--env", str(_SANDBOX_ENV))

    assert refused.exit_code == 3, refused.output
    assert refused.stderr.strip() == "confirmation needed: pass --yes"
    assert "[y/N]" not in refused.output, "it never prompts"


def test_run_takes_y_for_yes_and_dry_run_for_plan(tmp_path: Path) -> None:
    helped = _invoke(tmp_path, "run", "--help")

    assert helped.exit_code == 0
    assert "-y" in helped.stdout and "--dry-run" in helped.stdout


def test_log_format_json_writes_one_object_per_line_with_run_and_step(
    tmp_path: Path, root_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert root_logging is None
    configured = _invoke(tmp_path, "--log-level", "info", "--log-format", "json", "actions")
    assert configured.exit_code == 0, configured.output
    capsys.readouterr()

    with logcontext.bound(run_id="20260101T000000Z-abcd1234"), logcontext.bound(step="drain"):
        logging.getLogger("orchestrator.engine").info("draining %s", "node-a")
    logging.getLogger("orchestrator.engine").warning("outside a run")
    logging.getLogger("orchestrator.engine").debug("below the level")

    lines = capsys.readouterr().err.splitlines()
    inside, outside = (json.loads(line) for line in lines)
    assert inside["message"] == "draining node-a"
    assert (inside["run_id"], inside["step"]) == ("20260101T000000Z-abcd1234", "drain")
    assert (inside["level"], inside["logger"]) == ("info", "orchestrator.engine")
    assert inside["ts"].endswith("Z")
    assert (outside["run_id"], outside["step"], outside["level"]) == (None, None, "warning")


def test_without_log_options_logging_is_left_alone(tmp_path: Path, root_logging: None) -> None:
    assert root_logging is None
    before = list(logging.getLogger().handlers)

    shown = _invoke(tmp_path, "actions", "--format", "json")

    assert shown.exit_code == 0
    assert logging.getLogger().handlers == before


_CMDB = str(Path(__file__).parents[2] / "sandbox" / "data")


@pytest.mark.parametrize(
    "command",
    [
        ("cmdb", "show", "--cmdb", _CMDB),
        ("cmdb", "show", "checkout", "--cmdb", _CMDB),
        ("cmdb", "impact", "payments", "--cmdb", _CMDB),
        ("cmdb", "validate", "--cmdb", _CMDB),
        ("runs", "list"),
    ],
    ids=lambda c: " ".join(c[:3]),
)
def test_cmdb_and_runs_commands_speak_yaml_and_write_to_a_file(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    as_json = _invoke(tmp_path, *command, "--format", "json")
    as_yaml = _invoke(tmp_path, *command, "--format", "yaml")
    written = tmp_path / "out" / "data.yaml"
    to_file = _invoke(tmp_path, *command, "--format", "yaml", "-o", str(written))

    assert as_json.exit_code == as_yaml.exit_code == to_file.exit_code == 0, as_yaml.output
    assert yaml.safe_load(as_yaml.stdout) == json.loads(as_json.stdout)
    assert to_file.stdout == ""
    assert yaml.safe_load(written.read_text(encoding="utf-8")) == json.loads(as_json.stdout)


def test_a_cmdb_table_written_with_output_is_plain_and_complete(tmp_path: Path) -> None:
    written = tmp_path / "services.txt"
    result = _invoke(tmp_path, "cmdb", "show", "--cmdb", _CMDB, "-o", str(written))

    text = written.read_text(encoding="utf-8")
    assert result.exit_code == 0 and result.stdout == ""
    assert "\x1b[" not in text
    assert "checkout" in text and "payments" in text
