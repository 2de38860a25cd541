"""Settings models that read only the values they are handed (`PassedIn`).

A `pydantic_settings.BaseSettings` reads `os.environ`, a dotenv file and secret files by
itself. Stormdrill's settings classes are built by their own `from_env(env)` / `load(env,
file)` from the mapping the caller passes (so tests and `serve` decide exactly what is
read): `PassedIn` turns every other source off. Nothing happens at import time.
"""

from __future__ import annotations

import pydantic_settings


class PassedIn(pydantic_settings.BaseSettings):
    """A settings model whose only source is the keyword arguments it is built with."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[pydantic_settings.BaseSettings],
        init_settings: pydantic_settings.PydanticBaseSettingsSource,
        env_settings: pydantic_settings.PydanticBaseSettingsSource,
        dotenv_settings: pydantic_settings.PydanticBaseSettingsSource,
        file_secret_settings: pydantic_settings.PydanticBaseSettingsSource,
    ) -> tuple[pydantic_settings.PydanticBaseSettingsSource, ...]:
        """Only what is passed in (the class's `from_env`/`load` reads the mapping it is given)."""
        del settings_cls, env_settings, dotenv_settings, file_secret_settings
        return (init_settings,)
