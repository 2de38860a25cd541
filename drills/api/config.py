"""API settings: `STORMDRILL_*` variables and an optional config file (pydantic-settings).

`ApiSettings.load(env, config_file=…)` is called once by `stormdrill serve` (or a test) and
passed to `create_app`; nothing reads the environment at import time, and `ApiSettings()`
itself reads nothing (its defaults only). The store, reports and CMDB come from
`drills.settings.Settings` (the same resolution as the CLI: one store); a config file may
name them too (`database_url`, `data_dir`, `reports_dir`, `cmdb`, `killswitch_file`), under
the `STORMDRILL_*` variables, which win.

Precedence, first wins: a `STORMDRILL_<FIELD>` variable, the config file (TOML or YAML,
keys as the field names below), the default. Lists in a variable are JSON (`["a","b"]`) or,
for folders, separated by `os.pathsep`; for other lists by commas; mappings are JSON.
Errors name the file (or variable) and the key: `ConfigInvalid`.
"""

from __future__ import annotations

import json
import os
import pathlib
import tomllib
import typing
from collections.abc import Mapping

import pydantic
import pydantic_settings
import yaml

from drills import settings_sources
from scenarios import errors

CONFIG_ENV_VAR = "STORMDRILL_CONFIG"
"""The config file `create_app_from_env` reads when set (`stormdrill serve --config FILE`)."""
ENV_PREFIX = "STORMDRILL_"
STORE_KEYS: Mapping[str, str] = {
    "database_url": "STORMDRILL_DATABASE_URL",
    "data_dir": "STORMDRILL_DATA_DIR",
    "reports_dir": "STORMDRILL_REPORTS_DIR",
    "cmdb": "STORMDRILL_CMDB",
    "killswitch_file": "STORMDRILL_KILLSWITCH_FILE",
}
"""Config-file keys that belong to `drills.settings.Settings`, and the variable each sets."""


class ConfigInvalid(errors.StormdrillError):
    """The config file or a `STORMDRILL_*` variable of `serve` cannot be used."""


class ApiSettings(settings_sources.PassedIn):
    """Everything `serve` needs beyond the CLI's settings; every field has a safe default."""

    model_config = pydantic_settings.SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="forbid", frozen=True
    )

    host: str = "127.0.0.1"
    port: int = 8700
    workers: int = pydantic.Field(default=1, ge=1)
    """How many uvicorn worker processes `serve --workers` started (`STORMDRILL_WORKERS`;
    `serve` sets it, a config file may not). Each worker is a replica of its own: with more
    than one, each names itself in the lease by host, port and process id."""
    scenario_dirs: tuple[pathlib.Path, ...] = ()
    """Extra folders of Scenario documents `GET /scenarios` lists (beside the bundled library)."""
    environment_dirs: tuple[pathlib.Path, ...] = ()
    """Folders of Environment documents `GET /environments` lists and runs may name."""
    drill_dirs: tuple[pathlib.Path, ...] = ()
    """Folders of Drill documents `GET /drills` lists (the scenario and environment folders
    are searched for Drill documents too)."""

    # ---- driving runs (drills.service.driver) ----
    drive_runs: bool = True
    """Drive the runs submitted through the API in this process (a thread pool)."""
    driver_workers: int = pydantic.Field(default=4, ge=1)
    driver_poll_s: float = pydantic.Field(default=1.0, gt=0)
    recover_on_start: bool = True
    """Run recovery (`drills.service.runs.recover`) once at start-up."""
    idempotency_ttl_s: float = pydantic.Field(default=86400.0, gt=0)
    """How long a POST's `Idempotency-Key` is remembered (default one day)."""
    session_ttl_s: float = pydantic.Field(default=43200.0, gt=0)
    """How long a web page login lasts (12 h; an OIDC token's own expiry is shorter)."""

    # ---- who may call (drills.service.auth) ----
    oidc_issuer: str | None = None
    oidc_audience: str | None = None
    oidc_jwks_url: str | None = None
    """Default: `<issuer>/.well-known/jwks.json` is not guessed; set it explicitly."""
    oidc_roles_claim: str = "groups"
    oidc_group_roles: dict[str, str] = pydantic.Field(default_factory=dict)
    """Maps a group (a value of the roles claim) to a role: `{"sre": "operator"}`."""
    oidc_client_id: str | None = None
    """The web pages' OIDC client: set, `/login/oidc` logs in with the authorization-code
    flow (PKCE S256) at the issuer above; the ID token's audience is this client id."""
    oidc_client_secret: pydantic.SecretStr | None = None
    """The client's secret (sent `client_secret_basic`); unset for a public client (PKCE only)."""
    oidc_authorization_url: str | None = None
    """Default: `authorization_endpoint` of `<issuer>/.well-known/openid-configuration`."""
    oidc_token_url: str | None = None
    """Default: `token_endpoint` of `<issuer>/.well-known/openid-configuration`."""
    oidc_scopes: str = "openid profile email"
    """The scopes the login asks for (space separated; `openid` is always asked for)."""
    public_url: str | None = None
    """The external base URL of the pages (`https://drills.example.com`), for the OIDC
    redirect URI; default: the request's own base URL."""
    metrics_token: pydantic.SecretStr | None = None
    """When set, `/metrics` needs `Authorization: Bearer <this>`."""

    # ---- approvals and preflight hooks (drills.service.approvals) ----
    approval_ttl_s: float = 3600.0
    preflight_hooks: tuple[str, ...] = ()
    preflight_secret: pydantic.SecretStr | None = None
    preflight_timeout_s: float = 5.0

    @classmethod
    def load(cls, env: Mapping[str, str], config_file: pathlib.Path | None = None) -> ApiSettings:
        """The settings from `env`'s `STORMDRILL_*` variables over `config_file`'s keys.

        Raises `ConfigInvalid` naming the file or variable and the key.
        """
        from_file = {k: v for k, v in read_config(config_file).items() if k not in STORE_KEYS}
        if "workers" in from_file:
            raise ConfigInvalid(
                f"{config_file}: workers: uvicorn starts the workers before any app reads this"
                " file; give `stormdrill serve --workers N` or STORMDRILL_WORKERS instead"
            )
        unknown = sorted(set(from_file) - set(cls.model_fields))
        if unknown:
            known = ", ".join(sorted(cls.model_fields))
            raise ConfigInvalid(
                f"{config_file}: unknown key(s) {', '.join(unknown)} (known: {known},"
                f" and the store's {', '.join(STORE_KEYS)})"
            )
        values: dict[str, object] = dict(from_file)
        origins = dict.fromkeys(from_file, str(config_file))
        for name, field in cls.model_fields.items():
            variable = f"{ENV_PREFIX}{name.upper()}"
            raw = env.get(variable)
            if raw is not None and raw.strip():
                values[name] = _from_variable(raw, field.annotation, variable=variable)
                origins[name] = variable
        try:
            return cls(**values)  # type: ignore[arg-type]
        except pydantic.ValidationError as exc:
            problems = "; ".join(
                f"{origins.get(str(err['loc'][0]), 'settings')}: {err['loc'][0]}: {err['msg']}"
                for err in exc.errors()
            )
            raise ConfigInvalid(f"serve settings are invalid: {problems}") from None


def read_config(path: pathlib.Path | None) -> dict[str, object]:
    """The top-level keys of a TOML (`.toml`) or YAML config file; `{}` without a file."""
    if path is None:
        return {}
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigInvalid(f"{path}: cannot read the config file: {exc.strerror}") from None
    try:
        data: object = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text) or {}
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        kind = "TOML" if path.suffix == ".toml" else "YAML"
        raise ConfigInvalid(f"{path}: not valid {kind}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigInvalid(f"{path}: the config file must be a mapping of settings to values")
    return {str(key): value for key, value in data.items()}


def store_env(env: Mapping[str, str], config_file: pathlib.Path | None) -> dict[str, str]:
    """`env` plus the store keys of `config_file` as the `STORMDRILL_*` variables
    `Settings.from_env` reads (a variable already set wins over the file)."""
    merged = dict(env)
    for key, value in read_config(config_file).items():
        variable = STORE_KEYS.get(key)
        if variable is None or merged.get(variable):
            continue
        if isinstance(value, list):
            merged[variable] = os.pathsep.join(str(item) for item in value)
        else:
            merged[variable] = str(value)
    return merged


def _from_variable(raw: str, annotation: object, *, variable: str) -> object:
    """A variable's text as the field's shape: JSON for lists and mappings, else the text."""
    origin = typing.get_origin(annotation)
    text = raw.strip()
    if origin is dict:
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigInvalid(
                f'{variable}: write a JSON object, e.g. {{"sre": "operator"}} ({exc})'
            ) from None
    if origin is tuple:
        if text.startswith("["):
            try:
                return json.loads(text)
            except json.JSONDecodeError as exc:
                raise ConfigInvalid(
                    f'{variable}: write a JSON list, e.g. ["a", "b"] ({exc})'
                ) from None
        item = typing.get_args(annotation)[0]
        separator = os.pathsep if item is pathlib.Path else ","
        return [part.strip() for part in text.split(separator) if part.strip()]
    return text
