"""`/metrics`: the Prometheus text parses and its figures are the ones of a seeded store.

The store is seeded through the journal's own write methods (runs, state moves, aborts,
probes, a recovery that reverts a fault), then scraped over httpx against the app.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import fastapi
import prometheus_client
import pytest
from fastapi import testclient
from prometheus_client import parser

from drills import settings as settings_mod
from drills import store as store_mod
from drills.api import app as app_mod
from drills.api import config as api_config
from drills.api import deps
from drills.service import auth
from drills.service import metrics as store_metrics
from orchestrator import journal, mutations, records, states

_S = states.RunState
T0 = datetime(2025, 1, 1, 12, tzinfo=UTC)
ADMIN = auth.Principal(name="test-admin", roles=frozenset({auth.Role.ADMIN}))


@pytest.fixture
def config(tmp_path: Path) -> settings_mod.Settings:
    return settings_mod.Settings(
        data_dir=tmp_path / "data",
        database_url=f"sqlite:///{tmp_path / 'data' / 'stormdrill.db'}",
        reports_dir=tmp_path / "reports",
    )


@pytest.fixture
def store(config: settings_mod.Settings) -> Iterator[journal.Journal]:
    with store_mod.open_store(config) as opened:
        yield opened


def _app(config: settings_mod.Settings, *, token: str | None = None) -> fastapi.FastAPI:
    api = api_config.ApiSettings(
        drive_runs=False,
        recover_on_start=False,
        metrics_token=token,  # type: ignore[arg-type]  # pydantic turns it into a SecretStr
    )
    app = app_mod.create_app(config, api)
    app.dependency_overrides[deps.get_principal] = lambda: ADMIN
    return app


def _run(
    store: journal.Journal,
    run_id: str,
    moves: Sequence[tuple[states.RunState, float]],
    *,
    verdict: states.Verdict | None = None,
) -> states.RunId:
    """A run moved through `moves` (state, seconds after T0), each with its `state` event."""
    run = states.new_run(
        id=states.RunId(run_id),
        scenario="absence",
        environment="test",
        environment_source="test.environment.yaml",
        owner=journal.UNCLAIMED,
        at=T0,
        record=records.RunRecord(time_scale=1.0),
    )
    store.create_run(run)
    final = moves[-1][0] if moves else _S.PENDING
    if final is not _S.PENDING:
        ended = dataclasses.replace(run, state=final, verdict=verdict)
        store.save_run(ended, expected_state=_S.PENDING)
    store.append_events(
        run.id,
        [
            journal.NewEvent(
                kind="state",
                message=f"{state.value}: seeded",
                data={"state": state.value},
                at=T0 + timedelta(seconds=at),
            )
            for state, at in moves
        ],
    )
    return run.id


def _rolled_back(state: states.RunState, seconds: float) -> list[tuple[states.RunState, float]]:
    return [
        (_S.PLANNING, 0),
        (_S.PREFLIGHT, 1),
        (_S.INJECTING, 2),
        (_S.OBSERVING, 3),
        (_S.ROLLING_BACK, 10),
        (_S.VERIFYING, 10 + seconds),
        (state, 11 + seconds),
    ]


def _probe(
    store: journal.Journal, run_id: states.RunId, *, kind: str, elapsed_ms: float | None
) -> None:
    value: dict[str, mutations.JsonValue] = {"status": 200}
    if elapsed_ms is not None:
        value["elapsedMs"] = elapsed_ms
    store.append_event(
        run_id,
        kind="probe",
        message="probe sample",
        data={"probe": "p", "type": kind, "phase": "during", "ok": True, "value": value},
    )


def _seed(store: journal.Journal) -> None:
    held = _run(store, "held-1", _rolled_back(_S.COMPLETED, 0.3), verdict=states.Verdict.HELD)
    _run(store, "held-2", _rolled_back(_S.COMPLETED, 4.0), verdict=states.Verdict.HELD)
    _run(store, "deviated", _rolled_back(_S.COMPLETED, 45.0), verdict=states.Verdict.DEVIATED)
    by_probe = _run(store, "aborted-by-probe", _rolled_back(_S.ABORTED, 2.0))
    store.append_event(by_probe, kind="abort", message="probe failed", data={"by": "probe"})
    _run(store, "refused", [(_S.PLANNING, 0), (_S.ABORTED, 1)])
    crashed = _run(
        store,
        "recovered",
        [(_S.PLANNING, 0), (_S.PREFLIGHT, 1), (_S.INJECTING, 2), (_S.CRASHED, 3)],
    )
    store.append_events(
        crashed,
        [
            journal.NewEvent(kind="state", message="rolling_back", data={"state": "rolling_back"}),
            journal.NewEvent(kind="revert", message="reverting #1", data={"seq": 1}),
            journal.NewEvent(kind="mutation", message="r", data={"seq": 1, "state": "reverted"}),
            journal.NewEvent(kind="mutation", message="r", data={"seq": 2, "state": "reverted"}),
            journal.NewEvent(kind="state", message="verifying", data={"state": "verifying"}),
            journal.NewEvent(kind="state", message="failed", data={"state": "failed"}),
        ],
    )
    store.save_run(
        dataclasses.replace(store.get_run(crashed), state=_S.FAILED), expected_state=_S.CRASHED
    )
    # The engine's own rollback of a run reverts a fault too: not an orphan.
    store.append_event(held, kind="mutation", message="r", data={"seq": 3, "state": "reverted"})
    _run(store, "queued", [])
    _probe(store, held, kind="http", elapsed_ms=12.5)
    _probe(store, held, kind="http", elapsed_ms=300.0)
    _probe(store, held, kind="kubernetes.deployment-available", elapsed_ms=None)
    store.set_killswitch(engaged=True, by="alice", reason="incident")


def _scrape(app: fastapi.FastAPI, **headers: str) -> tuple[int, str, str]:
    with testclient.TestClient(app) as client:
        response = client.get("/metrics", headers=headers)
    return response.status_code, response.headers.get("content-type", ""), response.text


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in parser.text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_the_exposition_parses_and_counts_the_seeded_runs_aborts_and_recoveries(
    config: settings_mod.Settings, store: journal.Journal
) -> None:
    _seed(store)

    status, content_type, text = _scrape(_app(config))

    assert status == 200 and content_type.startswith("text/plain")
    samples = _samples(text)

    def runs(state: str, verdict: str) -> float:
        return samples[("stormdrill_runs", (("state", state), ("verdict", verdict)))]

    assert runs("completed", "held") == 2
    assert runs("completed", "deviated") == 1
    assert runs("aborted", "none") == 2
    assert runs("failed", "none") == 1
    assert runs("pending", "none") == 1
    assert runs("observing", "held") == 0  # every pair is exposed, zeros included
    assert samples[("stormdrill_run_aborts_total", (("by", "probe"),))] == 1
    assert samples[("stormdrill_run_aborts_total", (("by", "other"),))] == 1
    assert samples[("stormdrill_run_aborts_total", (("by", "operator"),))] == 0
    assert samples[("stormdrill_recoveries_total", (("found", "crashed"),))] == 1
    assert samples[("stormdrill_recoveries_total", (("found", "rollback_failed"),))] == 0
    assert samples[("stormdrill_orphans_swept_total", ())] == 2
    assert samples[("stormdrill_schedule_fires_total", ())] == 0
    assert samples[("stormdrill_killswitch_engaged", ())] == 1


def test_rollback_durations_and_probe_latencies_are_histograms_of_the_seeded_times(
    config: settings_mod.Settings, store: journal.Journal
) -> None:
    _seed(store)

    samples = _samples(_scrape(_app(config))[2])

    def bucket(name: str, le: str, **labels: str) -> float:
        return samples[(name, tuple(sorted({**labels, "le": le}.items())))]

    rollback = "stormdrill_rollback_duration_seconds"
    # Four engine rollbacks (0.3 s, 4 s, 45 s, 2 s) and the recovery's (written at once).
    assert samples[(f"{rollback}_count", ())] == 5
    assert samples[(f"{rollback}_sum", ())] == pytest.approx(51.3, abs=0.5)
    assert bucket(f"{rollback}_bucket", "0.5") == 2  # 0.3 s and the recovery's
    assert bucket(f"{rollback}_bucket", "5.0") == 4
    assert bucket(f"{rollback}_bucket", "30.0") == 4
    assert bucket(f"{rollback}_bucket", "60.0") == 5
    assert bucket(f"{rollback}_bucket", "+Inf") == 5

    latency = "stormdrill_probe_latency_seconds"
    assert samples[(f"{latency}_count", (("type", "http"),))] == 2
    assert samples[(f"{latency}_sum", (("type", "http"),))] == pytest.approx(0.3125)
    assert bucket(f"{latency}_bucket", "0.025", type="http") == 1
    assert bucket(f"{latency}_bucket", "0.5", type="http") == 2
    unmeasured = (("type", "kubernetes.deployment-available"),)
    assert not any(labels == unmeasured for _, labels in samples)


def test_an_empty_store_exposes_every_family_with_zeros(config: settings_mod.Settings) -> None:
    text = _scrape(_app(config))[2]

    families = {family.name: family for family in parser.text_string_to_metric_families(text)}
    assert set(families) == {
        "stormdrill_runs",
        "stormdrill_run_aborts",
        "stormdrill_rollback_duration_seconds",
        "stormdrill_probe_latency_seconds",
        "stormdrill_recoveries",
        "stormdrill_orphans_swept",
        "stormdrill_schedule_fires",
        "stormdrill_killswitch_engaged",
    }
    assert all(s.value == 0 for f in families.values() for s in f.samples)
    # The app's registry is its own: nothing went into prometheus-client's global one.
    assert prometheus_client.REGISTRY.get_sample_value("stormdrill_killswitch_engaged") is None


def test_a_configured_scrape_token_is_required_and_checked(
    config: settings_mod.Settings,
) -> None:
    app = _app(config, token="scrape-secret")

    missing = _scrape(app)
    wrong = _scrape(app, authorization="Bearer guess")
    right = _scrape(app, authorization="Bearer scrape-secret")

    assert missing[0] == 401 and wrong[0] == 401
    assert "metrics token" in missing[2] and "scrape-secret" not in missing[2]
    assert right[0] == 200 and "stormdrill_runs" in right[2]


def test_the_store_figures_fold_a_rollback_that_is_still_running_as_not_observed(
    store: journal.Journal,
) -> None:
    _run(store, "rolling", _rolled_back(_S.COMPLETED, 1.0)[:5])

    figures = store_metrics.read(store)

    assert figures.rollback_s.count == 0
    assert figures.runs[(_S.ROLLING_BACK, store_metrics.NO_VERDICT)] == 1


def test_the_figures_are_the_same_on_both_backends(store_url: str, tmp_path: Path) -> None:
    config = settings_mod.Settings(
        data_dir=tmp_path / "data", database_url=store_url, reports_dir=tmp_path / "reports"
    )
    with store_mod.open_store(config) as opened:
        _seed(opened)
        figures = store_metrics.read(opened)

    assert figures.runs[(_S.COMPLETED, "held")] == 2
    assert figures.aborts == {"guardrail": 0, "operator": 0, "other": 1, "probe": 1}
    assert figures.rollback_s.count == 5 and figures.orphans_swept == 2
    assert figures.probe_latency_s["http"].count == 2
    assert figures.recoveries[_S.CRASHED] == 1 and figures.killswitch_engaged
