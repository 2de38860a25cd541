"""The CLI's principal is the OS user (`audit.local_user`): the login variables in
`getpass`'s order, else the password database, else `uid:<n>`; never a made-up `cli`. What
the CLI records (a game day's creator, its audit entries) names that person."""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import NoReturn

import pytest
from typer import testing

from drills import cli
from drills.service import audit, gamedays
from orchestrator import journal
from tests.engine_runs import support as run_support
from tests.gamedays import support

LOGIN_VARIABLES = ("LOGNAME", "USER", "LNAME", "USERNAME")
ROOT = Path(__file__).resolve().parents[2]


def _local_user_in_a_process(env: Mapping[str, str]) -> str:
    """What `local_user()` says in a fresh Python process with exactly `env` (plus PATH)."""
    done = subprocess.run(
        [sys.executable, "-c", "from drills.service import audit; print(audit.local_user())"],
        env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stdout.strip()


def test_without_login_variables_the_user_is_the_password_databases_name_for_the_uid() -> None:
    expected = pwd.getpwuid(os.getuid()).pw_name

    assert _local_user_in_a_process({}) == expected
    assert _local_user_in_a_process({"USER": "", "LOGNAME": ""}) == expected
    assert expected != "cli"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"LOGNAME": "rita", "USER": "other", "USERNAME": "third"}, "rita"),
        ({"USER": "sam", "USERNAME": "third"}, "sam"),
        ({"LOGNAME": "", "USER": "", "LNAME": "lena"}, "lena"),
        ({"USERNAME": "win"}, "win"),
    ],
)
def test_the_login_variables_are_read_in_getpass_order_skipping_empty_ones(
    env: dict[str, str], expected: str
) -> None:
    assert _local_user_in_a_process(env) == expected


def test_a_uid_the_password_database_does_not_know_is_named_by_its_number(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A container run as `--user 12345` has no passwd entry: `pwd.getpwuid` raises
    # KeyError there. The database's answer for an unknown uid is stood in for here.
    def unknown(uid: int) -> NoReturn:
        raise KeyError(f"getpwuid(): uid not found: {uid}")

    for name in LOGIN_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(pwd, "getpwuid", unknown)

    assert audit.local_user() == f"uid:{os.getuid()}"


def test_a_game_day_created_from_the_cli_names_the_os_user_as_creator_and_in_the_audit(
    tmp_path: Path,
) -> None:
    db_url = f"sqlite:///{tmp_path / 'data' / 'store.db'}"
    path = support.write(tmp_path, support.document())
    env: dict[str, str | None] = {**run_support.cli_env(db_url), **dict.fromkeys(LOGIN_VARIABLES)}
    env["LOGNAME"] = "rita"

    created = testing.CliRunner().invoke(cli.app, ["gamedays", "create", str(path)], env=env)

    assert created.exit_code == 0, created.output
    with journal.open_store(db_url) as store:
        day = gamedays.get(store, "checkout-gameday")
        [entry] = audit.entries(store, where=audit.EntryFilter(action="gameday.create"))
    assert day.created_by == "rita"
    assert (entry.principal, entry.principal_kind) == ("rita", "local")


def test_with_no_login_variable_the_cli_records_the_password_databases_name(
    tmp_path: Path,
) -> None:
    db_url = f"sqlite:///{tmp_path / 'data' / 'store.db'}"
    path = support.write(tmp_path, support.document())
    env: dict[str, str | None] = {**run_support.cli_env(db_url), **dict.fromkeys(LOGIN_VARIABLES)}

    created = testing.CliRunner().invoke(cli.app, ["gamedays", "create", str(path)], env=env)

    assert created.exit_code == 0, created.output
    with journal.open_store(db_url) as store:
        [entry] = audit.entries(store, where=audit.EntryFilter(action="gameday.create"))
    assert entry.principal == pwd.getpwuid(os.getuid()).pw_name != "cli"
