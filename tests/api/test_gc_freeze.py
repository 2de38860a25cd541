"""`serve`'s app freezes the garbage collector's view of start-up's objects while it
serves and gives them back at shutdown; an app built without `freeze_gc` leaves it alone."""

from __future__ import annotations

import gc

from fastapi import testclient

from drills.api import app as app_mod
from tests.api import conftest


def test_the_served_app_freezes_start_up_objects_while_serving_and_unfreezes_at_shutdown(
    api_world: conftest.ApiWorld,
) -> None:
    app = app_mod.create_app(
        api_world.settings,
        api_world.api_settings(drive_runs=False, recover_on_start=False),
        freeze_gc=True,
    )
    assert gc.get_freeze_count() == 0

    with testclient.TestClient(app) as client:
        frozen = gc.get_freeze_count()
        answered = client.get("/healthz").status_code

    assert answered == 200
    assert frozen > 0
    assert gc.get_freeze_count() == 0


def test_an_app_built_without_freeze_gc_leaves_the_collector_alone(
    app_for: conftest.AppFor,
) -> None:
    with testclient.TestClient(app_for(drive_runs=False)) as client:
        during = gc.get_freeze_count()
        client.get("/healthz")

    assert during == 0
