"""Settings: where Stormdrill keeps its store, reports and kill switch (read once, passed in).

Settings are built explicitly (`Settings.from_env(os.environ)`) and passed in; nothing reads the
environment at import time.

Which run store (precedence, first wins):
1. `STORMDRILL_DATABASE_URL`;
2. `STORMDRILL_DATA_DIR` set explicitly: `<data dir>/stormdrill.db`;
3. the project store, found upward from the working directory like git: the nearest folder
   with a `stormdrill.toml` (its `database_url`, else `.stormdrill/stormdrill.db` beside it)
   or a `.stormdrill/` folder (`.stormdrill/stormdrill.db`); its reports go in `.stormdrill/`;
4. the per-user default: `<user data dir>/stormdrill.db`.
`Settings.store_origin` says which one was used (for the `store: …` line commands print).
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import tomllib
import urllib.parse
from collections.abc import Mapping

import platformdirs

from scenarios import errors

APP_NAME = "stormdrill"
CMDB_ENV_VAR = "STORMDRILL_CMDB"
"""CMDB catalog files or folders, separated by `os.pathsep` (the default of `--cmdb`)."""
PROJECT_FILE = "stormdrill.toml"
PROJECT_DIR = ".stormdrill"
STORE_FILE = "stormdrill.db"


class SettingsInvalid(errors.StormdrillError):
    """A project's `stormdrill.toml` cannot be read or names no usable `database_url`."""


@dataclasses.dataclass(frozen=True)
class ProjectStore:
    """The run store a project folder carries (found upward from a folder, like git)."""

    root: pathlib.Path
    """The project folder (holding `stormdrill.toml` or `.stormdrill/`)."""
    database_url: str
    marker: pathlib.Path
    """The file or folder that made `root` a project."""

    @property
    def data_dir(self) -> pathlib.Path:
        return self.root / PROJECT_DIR


def find_project(start: pathlib.Path) -> ProjectStore | None:
    """The nearest project at or above `start`, or None.

    A folder is a project when it holds `stormdrill.toml` (its `database_url`, else
    `.stormdrill/stormdrill.db` beside it) or a `.stormdrill/` folder. A relative SQLite path
    in `database_url` is taken relative to the toml's folder. Raises `SettingsInvalid` for a
    toml that is not TOML or whose `database_url` is not a string.
    """
    start = start.absolute()
    for folder in (start, *start.parents):
        toml = folder / PROJECT_FILE
        if toml.is_file():
            return ProjectStore(root=folder, database_url=_toml_url(toml), marker=toml)
        marker = folder / PROJECT_DIR
        if marker.is_dir():
            url = f"sqlite:///{marker / STORE_FILE}"
            return ProjectStore(root=folder, database_url=url, marker=marker)
    return None


def _toml_url(toml: pathlib.Path) -> str:
    try:
        data = tomllib.loads(toml.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SettingsInvalid(f"{toml}: cannot read it as TOML: {exc}") from None
    raw = data.get("database_url")
    if raw is None:
        return f"sqlite:///{toml.parent / PROJECT_DIR / STORE_FILE}"
    if not isinstance(raw, str) or not raw.strip():
        raise SettingsInvalid(
            f'{toml}: database_url must be a URL string (e.g. "sqlite:///runs.db")'
        )
    prefix = "sqlite:///"
    if raw.startswith(prefix) and not raw.removeprefix(prefix).startswith("/"):
        return f"{prefix}{toml.parent / raw.removeprefix(prefix)}"
    return raw


@dataclasses.dataclass(frozen=True)
class Settings:
    """Process-wide settings; every field has a zero-setup default."""

    data_dir: pathlib.Path
    database_url: str
    reports_dir: pathlib.Path
    cmdb_paths: tuple[pathlib.Path, ...] = ()
    killswitch_file: pathlib.Path | None = None
    store_origin: str = "settings"
    """Where `database_url` came from: `STORMDRILL_DATABASE_URL`, a project, the default."""

    @classmethod
    def from_env(cls, env: Mapping[str, str], *, cwd: pathlib.Path | None = None) -> Settings:
        """Settings from `STORMDRILL_*` variables, else the project store found upward from
        `cwd` (default: the working directory), else the user's data directory."""
        explicit_dir = env.get("STORMDRILL_DATA_DIR")
        data_dir = pathlib.Path(explicit_dir or platformdirs.user_data_dir(APP_NAME))
        database_url = f"sqlite:///{data_dir / STORE_FILE}"
        origin = "STORMDRILL_DATA_DIR" if explicit_dir else "the per-user default"
        if env.get("STORMDRILL_DATABASE_URL"):
            database_url, origin = env["STORMDRILL_DATABASE_URL"], "STORMDRILL_DATABASE_URL"
        if not env.get("STORMDRILL_DATABASE_URL") and not explicit_dir:
            project = find_project(cwd if cwd is not None else pathlib.Path.cwd())
            if project is not None:
                data_dir, database_url = project.data_dir, project.database_url
                origin = f"the project store of {project.marker}"
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
            store_origin=origin,
        )

    def store_line(self) -> str:
        """`store: <url, password masked> (<origin>)`: which store a command reads."""
        return f"store: {mask_url_password(self.database_url)} ({self.store_origin})"


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
