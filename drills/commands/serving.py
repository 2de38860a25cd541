"""`stormdrill serve`: the REST API (uvicorn), with the runner that drives submitted runs.

The command only parses its flags, checks the store can be opened (one line and exit 5 if
not, as every command), and hands uvicorn the app factory by import string
(`drills.api.app:create_app_from_env`, `factory=True`): entry points never import each
other, so this module imports nothing of `drills.api`. The factory reads the settings from
the environment and the config file `--config` names (passed on as `STORMDRILL_CONFIG`);
at start-up the replica holding the lease runs recovery, then it serves. Ctrl-C (SIGINT)
or SIGTERM stops it: the drills it drives abort and roll back first. Exit codes: 0 stopped,
3 invalid settings or config, 5 the store is unreachable.

uvicorn logs with its own log config plus one filter on the `uvicorn.access` logger
(`ACCESS_LOG_FILTER`, named by import string like the app: `log_config()`), which masks
`token=` and `access_token=` values in each logged request target (a calendar client sends
its viewer token in the URL); every worker process applies the same config.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import rich.console
import typer
import uvicorn
import uvicorn.config

from drills import settings
from drills.commands import running
from orchestrator import engine
from scenarios import errors, secrets

APP_FACTORY = "drills.api.app:create_app_from_env"
CONFIG_ENV_VAR = "STORMDRILL_CONFIG"
"""Read by the app factory (`drills.api.config.CONFIG_ENV_VAR`)."""
ACCESS_LOG_FILTER = "drills.api.masking.AccessLogFilter"
"""The `logging.Filter` masking credentials in uvicorn's access log, by import string."""

_err = rich.console.Console(stderr=True, highlight=False, soft_wrap=True)


def serve(
    host: str = typer.Option(
        "127.0.0.1", "--host", envvar="STORMDRILL_HOST", help="Address to listen on."
    ),
    port: int = typer.Option(
        8700, "--port", envvar="STORMDRILL_PORT", min=0, max=65535, help="Port to listen on."
    ),
    config: Path | None = typer.Option(
        None,
        "--config",
        exists=True,
        dir_okay=False,
        help="A TOML or YAML file of serve settings (STORMDRILL_* variables win over it).",
    ),
    log_level: str = typer.Option(
        "info", "--server-log-level", help="uvicorn's log level (debug, info, warning)."
    ),
    workers: int = typer.Option(
        1,
        "--workers",
        envvar="STORMDRILL_WORKERS",
        min=1,
        help="Worker processes on the one port (each a replica: runs, leases and schedules"
        " are shared through the store). Python runs one thread at a time per process, so"
        " reads scale with workers up to the machine's cores.",
    ),
) -> None:
    """Serve the REST API: runs, plans, approvals, events, metrics; recovers at start-up."""
    if config is not None:
        os.environ[CONFIG_ENV_VAR] = str(config.resolve())
    # The app reads where it listens from its settings too (its lease names this replica
    # by host and port): the options win over the file, as their variables do.
    os.environ["STORMDRILL_HOST"], os.environ["STORMDRILL_PORT"] = host, str(port)
    os.environ["STORMDRILL_WORKERS"] = str(workers)
    try:
        config_env = settings.Settings.from_env(os.environ)
    except settings.SettingsInvalid as exc:
        _err.print(f"error: {exc}", markup=False)
        raise typer.Exit(engine.ExitCode.INVALID) from None
    if config is None:  # else the file may name the store: the app opens it
        running.open_journal(config_env).close()  # unreachable: one line and exit 5
        running.announce_store(config_env)
    try:
        uvicorn.run(
            APP_FACTORY,
            factory=True,
            host=host,
            port=port,
            log_level=log_level,
            log_config=log_config(),
            lifespan="on",
            timeout_graceful_shutdown=30,
            workers=workers,
        )
    except errors.StormdrillError as exc:
        _err.print(f"error: {secrets.redact(str(exc))}", markup=False)
        raise typer.Exit(engine.ExitCode.INVALID) from None


def log_config() -> dict[str, Any]:
    """uvicorn's default log config with `ACCESS_LOG_FILTER` on the `uvicorn.access` logger.

    A fresh copy each call (uvicorn writes into the dict it is given).
    """
    config: dict[str, Any] = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    config.setdefault("filters", {})["mask_credentials"] = {"()": ACCESS_LOG_FILTER}
    config["loggers"]["uvicorn.access"]["filters"] = ["mask_credentials"]
    return config
