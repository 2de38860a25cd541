"""Shell completion: `--show-completion` prints a script, and the README says how to install it.

Typer detects the shell it runs in; `_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION` (typer's own
switch for tests) makes `--show-completion SHELL` take the shell as written instead, so these
tests do not depend on the shell that started pytest.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest
from typer import testing

from drills import cli

ROOT = pathlib.Path(__file__).resolve().parents[2]
NO_DETECTION = "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION"


def test_show_completion_bash_prints_a_completion_script(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(NO_DETECTION, "1")
    result = testing.CliRunner().invoke(
        cli.app, ["--show-completion", "bash"], prog_name="stormdrill"
    )
    assert result.exit_code == 0, result.output
    assert "complete -o default -F _stormdrill_completion stormdrill" in result.output
    assert "_STORMDRILL_COMPLETE=complete_bash" in result.output


@pytest.mark.parametrize(
    ("shell", "marker"),
    [
        ("bash", "complete -o default -F _stormdrill_completion stormdrill"),
        ("zsh", "compdef _stormdrill_completion stormdrill"),
        ("fish", "complete --command stormdrill"),
    ],
)
def test_installed_binary_shows_completion_for_each_shell(shell: str, marker: str) -> None:
    binary = pathlib.Path(sys.executable).parent / "stormdrill"
    shown = subprocess.run(
        [str(binary), "--show-completion", shell],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={**os.environ, NO_DETECTION: "1"},
    )
    assert shown.returncode == 0, shown.stderr
    assert marker in shown.stdout


def test_help_offers_install_and_show_completion() -> None:
    result = testing.CliRunner().invoke(cli.app, ["--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "--install-completion" in result.output
    assert "--show-completion" in result.output


def test_readme_documents_shell_completion() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "stormdrill --install-completion" in readme
    assert "stormdrill --show-completion" in readme
