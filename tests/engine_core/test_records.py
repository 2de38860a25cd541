"""Typed run records: today's stored records read back typed, unknown keys survive, no secrets."""

from __future__ import annotations

import dataclasses
import json
import pathlib
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from orchestrator import journal, mutations, records, states
from scenarios import secrets
from tests.engine_core import factories

STORED = pathlib.Path(__file__).parent / "records_v0"
"""Records as the engine wrote them before records had a schema version (one per ending)."""


def _stored(name: str) -> dict[str, mutations.JsonValue]:
    loaded: dict[str, mutations.JsonValue] = json.loads((STORED / name).read_text())
    return loaded


def _insert_raw_run(url: str, run_id: str, record: object) -> None:
    """A `runs` row written as the previous version wrote it: the record as plain JSON."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(
                journal.runs_table.insert().values(
                    id=run_id,
                    scenario="zone-loss",
                    environment="sandbox",
                    environment_source="environments/sandbox.yaml",
                    state="rollback_failed",
                    verdict=None,
                    ending="completed",
                    reason="faults may remain",
                    abort_reason=None,
                    owner_host="test-host",
                    owner_pid=4242,
                    owner_token="boot:1",
                    heartbeat_at=None,
                    started_at=factories.T0,
                    updated_at=factories.T0,
                    finished_at=factories.T0,
                    record=record,
                )
            )
    finally:
        engine.dispose()


@pytest.mark.parametrize("name", sorted(p.name for p in STORED.glob("*.json")))
def test_a_record_of_todays_format_reads_back_unchanged_plus_its_schema_version(
    name: str,
) -> None:
    raw = _stored(name)
    record = records.RunRecord.from_json(raw)
    assert record.schema_version == 0
    assert record.extra == {}
    assert record.to_json() == {**raw, records.SCHEMA_KEY: records.SCHEMA_VERSION}


def test_a_rolled_back_record_reads_its_targets_impact_and_leftovers_typed() -> None:
    record = records.RunRecord.from_json(_stored("rollback_failed.json"))
    assert record.scenario_source == "/work/main/scenarios/library/zone-loss.yaml"
    assert record.parameters["zone"] == "zone-a"
    assert record.time_scale == 0.02
    assert record.approvals == ("user:default/ben",)
    assert record.redaction is not None and record.redaction.salt.startswith("5b0f")
    assert record.targets is not None
    nodes = record.targets["zone-nodes"]
    assert (nodes.kind, nodes.population, len(nodes.refs)) == ("node", 6, 2)
    assert nodes.excluded == ("kubernetes/node/node-c-1: not in zone zone-a",)
    assert [(row.ref, row.distance, row.tier) for row in record.impact_rows] == [
        ("component:default/web", 0, 1),
        ("component:default/checkout", 1, 2),
    ]
    assert record.impact_rows[1].path == ("component:default/web", "component:default/checkout")
    assert record.impact_rows[1].owner is None
    assert record.planned_mutations == 2
    assert record.leftovers is not None
    (leftover,) = record.leftovers
    assert (leftover.seq, leftover.name, leftover.error) == (7, "node-a-1", "node gone: 404")
    assert leftover.params == {"key": "stormdrill.dev/outage", "effect": "NoExecute"}
    assert record.objectives is None and record.t0 is None
    assert not record.refused and not record.infrastructure_error


def test_a_verified_record_reads_every_objective_typed() -> None:
    record = records.RunRecord.from_json(_stored("verified.json"))
    objectives = record.objectives
    assert objectives is not None
    assert objectives.t0 == datetime(2025, 1, 1, 12, 0, 3, 250000, tzinfo=UTC)
    assert record.t0 == objectives.t0
    assert (objectives.achieved_rto_s, objectives.scaled_target_rto_s) == (4.125, 60.0)
    assert objectives.target_rto_s == 600 and objectives.rto_met is True
    assert objectives.target_rto_source == "scenario"
    assert (objectives.time_scale, objectives.stability_window_s) == (0.1, 6.0)
    assert (objectives.achieved_rpo_s, objectives.scaled_target_rpo_s) == (2.5, 30.0)
    assert objectives.rpo_met is True
    assert objectives.rpo_canary is not None
    assert objectives.rpo_canary.probe == "payments-canary"
    assert objectives.rpo_canary.all_lost is False
    assert record.drill == "drills/zone-loss-staging.yaml"
    assert record.impact == () and record.leftovers is None


def test_refused_and_unreachable_records_keep_their_flags() -> None:
    assert records.RunRecord.from_json(_stored("refused.json")).refused is True
    unreachable = records.RunRecord.from_json(_stored("unreachable.json"))
    assert unreachable.infrastructure_error is True
    assert unreachable.targets is None and unreachable.impact is None


def test_unknown_keys_and_misshapen_values_are_kept_and_written_back() -> None:
    raw: dict[str, mutations.JsonValue] = {
        **_stored("verified.json"),
        "notYetKnown": {"from": "a newer stormdrill", "n": [1, 2]},
        "time_scale": "fast",
        "impact": [{"ref": "component:default/web", "distance": 0}, "not a row"],
        records.SCHEMA_KEY: 7,
    }
    assert isinstance(raw["objectives"], dict)
    raw["objectives"] = {**raw["objectives"], "jitter_s": 0.25, "rto_met": "yes"}
    record = records.RunRecord.from_json(raw)
    assert record.schema_version == 7
    assert record.time_scale is None and record.impact is None
    assert record.extra == {
        "notYetKnown": {"from": "a newer stormdrill", "n": [1, 2]},
        "time_scale": "fast",
        "impact": [{"ref": "component:default/web", "distance": 0}, "not a row"],
    }
    assert record.objectives is not None and record.objectives.rto_met is None
    assert record.objectives.extra == {"jitter_s": 0.25, "rto_met": "yes"}
    assert record.to_json() == {**raw, records.SCHEMA_KEY: records.SCHEMA_VERSION}


def test_an_empty_or_missing_record_reads_as_a_fresh_one() -> None:
    assert records.RunRecord.from_json(None) == records.RunRecord()
    assert records.RunRecord.from_json({}) == records.RunRecord()


def test_the_trigger_is_written_and_read_back() -> None:
    trigger = records.Trigger(kind=records.TriggerKind.SCHEDULE, principal="schedule:nightly")
    record = records.RunRecord(trigger=trigger)
    stored = record.to_json()
    assert stored["trigger"] == {
        "kind": "schedule",
        "principal": "schedule:nightly",
        "reason": "",
    }
    assert records.RunRecord.from_json(stored).trigger == trigger
    odd = records.RunRecord.from_json({"trigger": {"kind": "carrier-pigeon"}})
    assert odd.trigger is None and odd.extra == {"trigger": {"kind": "carrier-pigeon"}}


def test_a_leftover_of_a_journal_entry_carries_the_entry_and_the_error() -> None:
    entry = mutations.JournalEntry(
        seq=3,
        run_id=states.RunId("run-1"),
        step="taint",
        target=factories.target("web"),
        action="kubernetes.nodes.taint",
        params={"key": "x"},
        pre_state={},
        undo=mutations.UndoToken(action="kubernetes.nodes.taint", data={}),
        state=mutations.EntryState.REVERT_FAILED,
        error="gone",
        created_at=factories.T0,
        updated_at=factories.T0,
        attempts=1,
    )
    leftover = records.Leftover.of(entry, "gone", summary="taint on web: gone")
    assert (leftover.seq, leftover.namespace, leftover.kind) == (3, "shop", "deployment")
    assert records.Leftover.from_json(leftover.to_json()) == leftover


def test_a_record_stored_by_the_previous_version_reads_back_typed_from_the_store(
    store_url: str,
) -> None:
    raw = _stored("rollback_failed.json")
    with journal.open_store(store_url) as store:  # creates the tables
        _insert_raw_run(journal.normalise_url(store_url), "old-run", raw)
        run = store.get_run(states.RunId("old-run"))
    assert run.record == records.RunRecord.from_json(raw)
    assert run.record.leftovers is not None and run.record.leftovers[0].seq == 7


def test_a_typed_record_and_its_unknown_keys_survive_a_save_and_a_read(
    journal: journal.Journal,
) -> None:
    raw: dict[str, Any] = {**_stored("verified.json"), "notYetKnown": {"kept": True}}
    run = dataclasses.replace(factories.make_run(), record=records.RunRecord.from_json(raw))
    journal.create_run(run)
    moved = states.transition(run, states.RunState.PLANNING, reason="p", at=factories.later(1))
    moved = dataclasses.replace(
        moved, record=dataclasses.replace(moved.record, refused=True, planned_mutations=0)
    )
    journal.save_run(moved, expected_state=run.state)
    read = journal.get_run(run.id).record
    assert read == dataclasses.replace(moved.record, schema_version=records.SCHEMA_VERSION)
    assert read.extra == {"notYetKnown": {"kept": True}}
    assert read.refused is True and read.objectives == run.record.objectives


def test_secrets_in_typed_fields_and_unknown_keys_are_masked_before_storing(
    journal: journal.Journal,
) -> None:
    secret = "s3cr3t-Token-Value-42"
    prints = secrets.Fingerprints.of([secret], salt="pepper")
    record = records.RunRecord(
        scenario_source=f"zone-loss.yaml ({secret})",
        parameters={"apiToken": secret, "note": f"uses {secret}"},
        redaction=prints,
        extra={"later": {"detail": f"token {secret}"}},
    )
    run = dataclasses.replace(factories.make_run(), record=record)
    journal.create_run(run)
    stored = journal.get_run(run.id).record
    text = json.dumps(stored.to_json())
    assert secret not in text
    assert stored.parameters == {"apiToken": "***", "note": "uses ***"}
    assert stored.scenario_source == "zone-loss.yaml (***)"
    assert stored.extra == {"later": {"detail": "token ***"}}
    assert stored.redaction == prints
