"""Settings: where Stormdrill keeps its store, reports and kill switch (read once, passed in).

Settings are built explicitly (`Settings.from_env(os.environ)`) and passed in; nothing reads the
environment at import time.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import urllib.parse
from collections.abc import Mapping

import platformdirs

APP_NAME = "stormdrill"
CMDB_ENV_VAR = "STORMDRILL_CMDB"
"""CMDB catalog files or folders, separated by `os.pathsep` (the default of `--cmdb`)."""


@dataclasses.dataclass(frozen=True)
class Settings:
    """Process-wide settings; every field has a zero-setup default."""

    data_dir: pathlib.Path
    database_url: str
    reports_dir: pathlib.Path
    cmdb_paths: tuple[pathlib.Path, ...] = ()
    killswitch_file: pathlib.Path | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Settings from `STORMDRILL_*` variables, else the user's data directory."""
        data_dir = pathlib.Path(
            env.get("STORMDRILL_DATA_DIR") or platformdirs.user_data_dir(APP_NAME)
        )
        database_url = (
            env.get("STORMDRILL_DATABASE_URL") or f"sqlite:///{data_dir / 'stormdrill.db'}"
        )
        reports_dir = pathlib.Path(env.get("STORMDRILL_REPORTS_DIR") or data_dir / "reports")
        raw_cmdb = env.get(CMDB_ENV_VAR, "")
        cmdb = tuple(pathlib.Path(p) for p in raw_cmdb.split(os.pathsep) if p.strip())
        killswitch = env.get("STORMDRILL_KILLSWITCH_FILE")
        return cls(
            data_dir=data_dir,
            database_url=database_url,
            reports_dir=reports_dir,
            cmdb_paths=cmdb,
            killswitch_file=pathlib.Path(killswitch) if killswitch else None,
        )


def mask_url_password(url: str, text: str | None = None) -> str:
    """`text` (default: `url` itself) with the password of `url` replaced by `***`.

    For messages that name the database: `postgresql://user:***@host/db`.
    """
    shown = url if text is None else text
    try:
        password = urllib.parse.urlsplit(url).password
    except ValueError:
        return shown
    if not password:
        return shown
    for form in {password, urllib.parse.unquote(password)}:
        shown = shown.replace(f":{form}@", ":***@").replace(form, "***")
    return shown
