"""`stormdrill gamedays report`: the game-day report from the terminal, to stdout or a
private file, and a bad format refused in one line (exit 3)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from typer import testing

from drills import cli
from tests.engine_runs import support as run_support
from tests.gamedays import support
from tests.gamedays.support import ALICE

RUNNER = testing.CliRunner()


def _cli(db_url: str, *args: str) -> testing.Result:
    return RUNNER.invoke(cli.app, ["gamedays", *args], env=run_support.cli_env(db_url))


def test_the_report_of_a_closed_game_day_prints_as_json_and_writes_html_privately(
    tmp_path: Path,
) -> None:
    db_url = f"sqlite:///{tmp_path / 'data' / 'store.db'}"
    assert _cli(db_url, "create", str(support.EXAMPLE)).exit_code == 0
    # the example's window is a fixed date: started with --force, whatever the day
    assert _cli(db_url, "start", "checkout-gameday", "--force").exit_code == 0
    found = _cli(
        db_url,
        *("note", "checkout-gameday", "checkout has no PDB", "--by", ALICE, "--finding"),
        *("--owner", "team-payments", "--due", "2026-12-31"),
    )
    assert found.exit_code == 0, found.output
    assert _cli(db_url, "close", "checkout-gameday", "--verdict", "Checkout held.").exit_code == 0

    printed = _cli(db_url, "report", "checkout-gameday", "--format", "json")
    html_file = tmp_path / "out" / "gameday.html"
    written = _cli(
        db_url, "report", "checkout-gameday", "--format", "html", "--output", str(html_file)
    )

    assert printed.exit_code == 0, printed.output
    data = json.loads(printed.stdout)
    assert (data["name"], data["verdict"]) == ("checkout-gameday", "Checkout held.")
    assert [f["text"] for f in data["findings"]] == ["checkout has no PDB"]
    assert {p["person"] for p in data["participants"]} >= {ALICE}
    assert written.exit_code == 0, written.output
    assert "checkout-gameday" in html_file.read_text(encoding="utf-8")
    assert stat.S_IMODE(html_file.stat().st_mode) == 0o600


def test_an_unknown_format_or_game_day_is_refused_in_one_line(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'data' / 'store.db'}"
    assert _cli(db_url, "create", str(support.EXAMPLE)).exit_code == 0

    bad_format = _cli(db_url, "report", "checkout-gameday", "--format", "pdf")
    unknown = _cli(db_url, "report", "no-such-day")

    assert bad_format.exit_code == 3
    assert "md" in bad_format.stderr and "html" in bad_format.stderr
    assert unknown.exit_code == 3 and "no-such-day" in unknown.stderr
