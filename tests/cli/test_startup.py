"""CLI start-up: light commands import nothing heavy, `--help` lists every command, `--version`.

The import checks run the real CLI in a subprocess under `python -X importtime` and read
which modules it imported; missing optional extras are simulated by a `-c` wrapper that
sets `sys.modules['moto'] = None` before the CLI runs (no patching of our code).
"""

from __future__ import annotations

import inspect
import pathlib
import subprocess
import sys
from importlib import metadata

import pytest
from typer import testing

from benchmarks import startup
from drills import cli
from orchestrator import engine

ROOT = pathlib.Path(__file__).resolve().parents[2]
HEAVY = ("sandbox", "moto", "flask", "boto3", "kubernetes", "fastapi")
LIGHT_COMMANDS = {
    "--help": ["--help"],
    "validate": ["validate", "scenarios/library/az-failure.yaml"],
    "schema": ["schema"],
    "scenarios list": ["scenarios", "list"],
}


def _imported(args: list[str], tmp_path: pathlib.Path) -> frozenset[str]:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "drills.cli", *args],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "STORMDRILL_DATABASE_URL": f"sqlite:///{tmp_path}/r.db"},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return startup.parse_importtime(done.stderr)[1]


@pytest.mark.parametrize("command", sorted(LIGHT_COMMANDS))
def test_light_commands_import_no_sandbox_sdk_or_web_framework(
    command: str, tmp_path: pathlib.Path
) -> None:
    imported = _imported(LIGHT_COMMANDS[command], tmp_path)

    tops = {name.partition(".")[0] for name in imported}
    assert "typer" in tops  # the parse saw the imports at all
    assert [name for name in HEAVY if name in tops] == []
    assert "drills.commands.demo" not in imported
    assert "drills.commands.sandbox" not in imported


def test_the_sandbox_is_imported_only_when_a_sandbox_command_runs(tmp_path: pathlib.Path) -> None:
    imported = _imported(["sandbox", "--help"], tmp_path)

    assert {"sandbox.stack", "moto", "drills.commands.sandbox"} <= imported
    assert "drills.commands.running" not in imported


def test_help_lists_every_command_with_its_own_summary() -> None:
    result = testing.CliRunner().invoke(cli.app, ["--help"], env={"COLUMNS": "200"})

    assert result.exit_code == 0
    for spec in cli.COMMANDS:
        command = spec.load()
        first = inspect.cleandoc(command.help or "").split("\n\n")[0].replace("\n", " ")
        assert first.strip() == spec.summary, spec.name
        assert f" {spec.name} " in result.output
        assert spec.summary in result.output


def test_version_prints_the_package_version() -> None:
    result = testing.CliRunner().invoke(cli.app, ["--version"])

    assert result.exit_code == 0
    assert result.output == f"stormdrill {metadata.version('stormdrill')}\n"
    assert result.output == "stormdrill 0.1.0\n"


@pytest.mark.parametrize("args", [["sandbox", "up", "--state-dir", "STATE"], ["demo"]])
def test_sandbox_commands_without_the_extra_name_it_and_exit_3(
    args: list[str], tmp_path: pathlib.Path
) -> None:
    argv = [a.replace("STATE", str(tmp_path / "state")) for a in args]
    wrapper = (
        "import sys\n"
        "sys.modules['moto'] = None\n"
        "from drills import cli\n"
        f"sys.argv = ['stormdrill', *{argv!r}]\n"
        "cli.main()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", wrapper],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )

    assert done.returncode == cli.MISSING_EXTRA == engine.ExitCode.INVALID
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert "moto is not installed" in lines[0]
    assert "pip install 'stormdrill[sandbox]'" in lines[0]
    assert not (tmp_path / "state").exists()
