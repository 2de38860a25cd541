"""The FastAPI application: `create_app(settings, api_settings)` builds it, with no globals.

The lifespan opens the run store (the same one the CLI resolves; an old schema is upgraded
on SQLite and refused on PostgreSQL, naming `stormdrill db upgrade`) and the provider
registry, starts the housekeeping that runs on whichever replica holds the lease
(`drills.service.housekeeping`: recovery at the start of each tenure and every
`STORMDRILL_RECOVERY_INTERVAL` when `ApiSettings.recover_on_start` — a run whose orchestrator
died is rolled back before anything new starts — and notification delivery when
`STORMDRILL_NOTIFICATIONS` names a file), then starts the runner that drives submitted runs
(`drills.service.driver`, when `drive_runs`); at shutdown it stops the runner (drills being
driven abort and roll back), releases the lease and closes the store. All of it is kept on
`app.state`, where `drills.api.deps` reads it. Every resource has its own router module under
`drills.api.routes`; resources live under `/api/v1`, health and metrics outside it. Every
error is answered as `application/problem+json` (`drills.api.problems`).
Once started, `serve`'s lifespan moves everything start-up made (modules, the app, settings,
the registry) out of the garbage collector's sight (`gc.freeze()`): otherwise every full
collection walks those objects again, and under load those pauses were the slowest
requests (benchmarks/api.py: p99 of `GET /healthz` at 50 clients 100 ms before, 25 ms
after; of the runs routes 220 ms before, 157 ms after, p50 unchanged).
`create_app_from_env` is the factory `stormdrill serve` hands uvicorn (by import string,
so the CLI never imports this package): settings from `os.environ` and `STORMDRILL_CONFIG`.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import pathlib
import socket
from collections.abc import AsyncIterator

import fastapi
from starlette import concurrency

from drills import settings as settings_mod
from drills import store as store_mod
from drills.api import audit as api_audit
from drills.api import config as api_config
from drills.api import examples, idempotency, problems, threads
from drills.api.routes import (
    approvals,
    audit,
    calendar,
    cmdb,
    coverage,
    drills,
    environments,
    events,
    gamedays,
    health,
    killswitch,
    metrics,
    plans,
    runs,
    scenarios,
    schedules,
    tokens,
)
from drills.scheduling import loop as schedule_loop
from drills.service import auth, driver, housekeeping, leases, notify, schema
from drills.service import tokens as tokens_service
from drills.web import app as web_app
from orchestrator import journal, registry
from orchestrator.providers import builtin

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
NOTIFICATIONS_JOB = "notifications"
_RESOURCES = (
    scenarios,
    environments,
    drills,
    runs,
    approvals,
    events,
    plans,
    coverage,
    cmdb,
    killswitch,
    audit,
    tokens,
    schedules,
    calendar,
    gamedays,
)


def create_app(
    settings: settings_mod.Settings,
    api_settings: api_config.ApiSettings | None = None,
    *,
    housekeeping_settings: housekeeping.HousekeepingSettings | None = None,
    notifications: notify.Config | None = None,
    notifications_interval_s: float = 5.0,
    freeze_gc: bool = False,
) -> fastapi.FastAPI:
    """The API over the store `settings` name (opened at start-up, closed at shutdown).

    `freeze_gc` (what `serve` passes): `gc.freeze()` once started, `gc.unfreeze()` at
    shutdown (see the module doc); it is the process's collector, so an app built inside a
    test process leaves it alone. Raises `auth.AuthConfigInvalid` for OIDC settings that
    cannot work.
    """
    config = api_settings or api_config.ApiSettings()
    oidc = auth.OidcConfig.from_settings(config)

    @contextlib.asynccontextmanager
    async def lifespan(app: fastapi.FastAPI) -> AsyncIterator[None]:
        store = await concurrency.run_in_threadpool(store_mod.open_store, settings)
        try:  # an old schema: SQLite is upgraded, PostgreSQL refused (`stormdrill db upgrade`)
            await concurrency.run_in_threadpool(schema.prepare, store)
        except BaseException:
            store.close()
            raise
        reg = builtin.registry_with_builtins()
        app.state.store = store
        app.state.registry = reg
        app.state.read_limiter = threads.limiter()
        runner: driver.Driver | None = None
        keeper: housekeeping.Housekeeper | None = None
        try:
            keeper = await concurrency.run_in_threadpool(
                _start_housekeeping,
                settings,
                store,
                reg,
                recover=config.recover_on_start,
                holder=_holder(config),
                housekeeping_settings=housekeeping_settings,
                notifications=notifications,
                notifications_interval_s=notifications_interval_s,
            )
            app.state.housekeeper = keeper
            if config.drive_runs:
                runner = driver.Driver(
                    settings,
                    store,
                    reg,
                    approval_settings=config,
                    workers=config.driver_workers,
                    poll_s=config.driver_poll_s,
                )
                runner.start()
            app.state.driver = runner
            await concurrency.run_in_threadpool(schedule_loop.register, app.state, store)
            if freeze_gc:
                gc.collect()
                gc.freeze()  # start-up's objects are never garbage: no full collection walks them
            yield
        finally:
            if freeze_gc:
                gc.unfreeze()
            await concurrency.run_in_threadpool(schedule_loop.unregister, app.state)
            if runner is not None:
                await concurrency.run_in_threadpool(runner.stop)
            if keeper is not None:  # after the runner: the lease is released last
                await concurrency.run_in_threadpool(keeper.close)
            store.close()

    app = fastapi.FastAPI(
        title="Stormdrill",
        version="1",
        summary="Chaos and continuity drills: plan, run, watch and report them over HTTP.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.api_settings = config
    app.state.oidc = None if oidc is None else auth.OidcVerifier(oidc)
    app.state.driver = None
    app.state.housekeeper = None
    app.state.schedule_loop = None
    app.state.principals = tokens_service.PrincipalCache()  # tokens checked in the last 2 s
    problems.install(app)
    idempotency.install(app)
    api_audit.install(app)
    app.include_router(health.router)
    app.include_router(metrics.router)
    for module in _RESOURCES:
        app.include_router(module.router, prefix=API_PREFIX)
    web_app.install(app)  # the pages (drills.web), beside /api/v1
    examples.install(app)  # recorded 2xx examples in app.openapi() (drills/api/examples.json)
    return app


def _holder(config: api_config.ApiSettings) -> leases.HolderId:
    """This replica's name in the lease: host and port, the same across restarts (see
    `_start_housekeeping`); with several workers on one port, each adds its process id."""
    name = f"{socket.gethostname()}:{config.port}"
    return leases.HolderId(name if config.workers == 1 else f"{name}/{os.getpid()}")


def _start_housekeeping(
    settings: settings_mod.Settings,
    store: journal.Journal,
    reg: registry.Registry,
    *,
    recover: bool,
    holder: leases.HolderId,
    housekeeping_settings: housekeeping.HousekeepingSettings | None,
    notifications: notify.Config | None,
    notifications_interval_s: float,
) -> housekeeping.Housekeeper | None:
    """The once-per-deployment work, on whichever replica holds the lease: recovery (at the
    start of each tenure and every `STORMDRILL_RECOVERY_INTERVAL`; the first pass finishes
    before this returns on the replica that takes the lease at once, so nothing new starts
    before a dead orchestrator's runs are rolled back) with, beside it, the blackout abort
    pass (drills still running when a blackout with `abortRunning` begins are asked to
    abort), and notification delivery. None when there is neither recovery nor delivery.
    `holder` names this replica the same across restarts (host and port), so a replica
    restarted after a crash takes its own lease back at once (at a new epoch) and recovers
    before it drives anything, instead of waiting for its old tenure to expire."""
    if not recover and notifications is None:
        return None
    config = housekeeping_settings or housekeeping.HousekeepingSettings()
    keeper = housekeeping.Housekeeper(
        housekeeping.lease_for(store, config.lease, holder=holder), renew_s=config.lease.renew
    )
    if recover:
        keeper.add_job(
            housekeeping.RECOVERY,
            config.recovery_interval,
            housekeeping.recovery_job(settings, store, reg),
        )
        keeper.add_job(  # the other safety pass: drills running when a blackout begins
            housekeeping.BLACKOUT_ABORTS,
            config.blackout_abort_interval,
            housekeeping.blackout_abort_job(store),
        )
    if notifications is not None:
        keeper.add_job(
            NOTIFICATIONS_JOB, notifications_interval_s, notify.job(store, notifications)
        )
    keeper.start()
    if recover and keeper.held is not None:
        keeper.wait_for_run(housekeeping.RECOVERY)
    return keeper


def create_app_from_env() -> fastapi.FastAPI:
    """The app `stormdrill serve` runs: settings from `os.environ` and the config file
    `STORMDRILL_CONFIG` names (variables win over the file)."""
    raw = os.environ.get(api_config.CONFIG_ENV_VAR)
    config_file = pathlib.Path(raw) if raw else None
    env = api_config.store_env(os.environ, config_file)
    settings = settings_mod.Settings.from_env(env)
    try:
        kept = housekeeping.HousekeepingSettings.from_env(env)
        notify_settings = notify.NotifySettings.from_env(env)
        notifications = notify.from_settings(notify_settings, env)
    except (ValueError, notify.NotificationsInvalid) as exc:
        raise api_config.ConfigInvalid(str(exc)) from exc
    return create_app(
        settings,
        api_config.ApiSettings.load(env, config_file),
        housekeeping_settings=kept,
        notifications=notifications,
        notifications_interval_s=notify_settings.notifications_interval_s,
        freeze_gc=True,
    )
