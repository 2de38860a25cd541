"""API settings: `STORMDRILL_*` variables and an optional config file (pydantic-settings).

`ApiSettings.load(env, config_file=…)` is called once by `stormdrill serve` (or a test) and
passed to `create_app`; nothing reads the environment at import time. The store, reports and
CMDB come from `drills.settings.Settings` (the same resolution as the CLI: one store).
"""

from __future__ import annotations

import pathlib

import pydantic
import pydantic_settings


class ApiSettings(pydantic_settings.BaseSettings):
    """Everything `serve` needs beyond the CLI's settings; every field has a safe default."""

    model_config = pydantic_settings.SettingsConfigDict(
        env_prefix="STORMDRILL_", extra="ignore", frozen=True
    )

    host: str = "127.0.0.1"
    port: int = 8700
    scenario_dirs: tuple[pathlib.Path, ...] = ()
    """Extra folders of Scenario documents `GET /scenarios` lists (beside the bundled library)."""
    environment_dirs: tuple[pathlib.Path, ...] = ()
    """Folders of Environment documents `GET /environments` lists and runs may name."""

    # ---- who may call (drills.service.auth) ----
    oidc_issuer: str | None = None
    oidc_audience: str | None = None
    oidc_jwks_url: str | None = None
    """Default: `<issuer>/.well-known/jwks.json` is not guessed; set it explicitly."""
    oidc_roles_claim: str = "groups"
    oidc_group_roles: dict[str, str] = pydantic.Field(default_factory=dict)
    """Maps a group (a value of the roles claim) to a role: `{"sre": "operator"}`."""
    metrics_token: pydantic.SecretStr | None = None
    """When set, `/metrics` needs `Authorization: Bearer <this>`."""

    # ---- approvals and preflight hooks (drills.service.approvals) ----
    approval_ttl_s: float = 3600.0
    preflight_hooks: tuple[str, ...] = ()
    preflight_secret: pydantic.SecretStr | None = None
    preflight_timeout_s: float = 5.0
