"""Plans stay what they were: paginated, slim listings plan exactly what full listings planned.

`data/plans-before.json` was recorded (by `plan_world.main`) with the listing code as it was
before plans paginated and kept slim facts; today's code must plan the same scenarios on the
same world to the same content: targets, mutations (pre-states with the evicted pods and
their manifests, undo tokens), impact and guardrail verdicts. The same holds whatever the
page size, and whether nodes are read one by one or listed in bulk.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

import pytest

from orchestrator.providers.kubernetes import listing
from tests.providers_kubernetes import plan_world


def _recorded() -> dict[str, Any]:
    found: dict[str, Any] = json.loads(plan_world.GOLDEN.read_text())
    return found


def _planned(tmp_path: pathlib.Path) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(json.dumps(plan_world.plan_all(tmp_path)))
    return found


def test_the_recorded_plans_cover_bulk_and_one_by_one_reads_refusals_and_unowned_pods() -> None:
    recorded = _recorded()

    assert len(recorded) >= 10
    zone = recorded["az-failure-kubernetes-1b-all"]["selections"]["zone-nodes"]
    assert len(zone["refs"]) > listing.FEW_NODES
    assert any(p["refused"] for p in recorded.values())
    assert any(not p["refused"] for p in recorded.values())
    unowned = recorded["drain-zone-a-unowned"]["steps"][0]["mutations"]
    assert any("manifest" in m["undo"]["data"] for m in unowned)


def test_todays_plans_equal_the_plans_recorded_before_paginated_listing(
    tmp_path: pathlib.Path,
) -> None:
    recorded = _recorded()

    planned = _planned(tmp_path)

    assert sorted(planned) == sorted(recorded)
    for name, plan in recorded.items():
        assert planned[name] == plan, name


@pytest.mark.parametrize(("page_size", "few_nodes"), [(3, 0), (7, 100), (1, 10)])
def test_plans_do_not_depend_on_page_size_or_on_reading_nodes_one_by_one(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, page_size: int, few_nodes: int
) -> None:
    monkeypatch.setattr(listing, "PAGE_SIZE", page_size)
    monkeypatch.setattr(listing, "FEW_NODES", few_nodes)

    planned = _planned(tmp_path)

    assert planned == _recorded()
