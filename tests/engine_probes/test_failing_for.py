"""Duration-based abort conditions: `failingFor` and `failingRatio`, judged on sample timestamps.

The probe here stamps its samples with a fake clock (0.25 s apart, whatever the real loop
speed), so the tests feed the observer samples over time without sleeping and assert
counts and order, never durations.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pydantic
import pytest
from typer import testing

from drills import cli
from orchestrator import engine, journal, mutations, observing, registry, states
from sandbox import stack
from scenarios import models
from tests.engine_probes import factories as f
from tests.engine_runs import support

WAIT = 20.0
"""Generous upper bound for anything the tests wait for (never asserted)."""
STEP = timedelta(seconds=0.25)
"""The fake time between two samples of the stamped probe."""
T0 = datetime(2030, 1, 7, 9, 0, tzinfo=UTC)


@pytest.fixture
def store(sqlite_url: str) -> Iterator[journal.Journal]:
    with journal.open_store(sqlite_url) as opened:
        yield opened


class _Stamped:
    """Results in order (the last repeats), each stamped STEP after the previous one."""

    def __init__(self, results: list[bool]) -> None:
        self.results = results
        self.calls = 0
        self.lock = threading.Lock()
        self.done = threading.Event()

    def next(self) -> tuple[bool, datetime]:
        with self.lock:
            index = self.calls
            self.calls += 1
        if index >= len(self.results):
            self.done.set()
        return self.results[min(index, len(self.results) - 1)], T0 + STEP * index


def _stamped_probe(script: _Stamped) -> type[registry.Probe[Any]]:
    class StampedProbe(registry.Probe[f.ScriptParams]):
        params_model: ClassVar[type[pydantic.BaseModel]] = f.ScriptParams
        description: ClassVar[str] = "probe with fake sample times"

        def check(
            self, ctx: registry.ProviderContext, *, params: f.ScriptParams
        ) -> registry.ProbeResult:
            ok, at = script.next()
            return registry.ProbeResult(ok=ok, value=None, message="up" if ok else "down", at=at)

    StampedProbe.name = "test.stamped"
    return StampedProbe


def _observer(
    store: journal.Journal, script: _Stamped, condition: dict[str, Any]
) -> tuple[observing.Observer, list[str]]:
    run = states.new_run(
        id=states.RunId("run-1"),
        scenario="observed",
        environment="sandbox",
        environment_source="sandbox.yaml",
        owner=states.Owner(host="h", pid=1, token="t"),
        at=datetime.now(UTC),
    )
    store.create_run(run)
    scenario = f.scenario([f.probe("checkout", "test.stamped")])
    raw = scenario.model_dump(by_alias=True, mode="json", exclude_none=True)
    raw["spec"]["guardrails"]["abortWhen"] = [{"probe": "checkout", **condition}]
    reg = registry.Registry()
    reg.register(_stamped_probe(script))
    aborts: list[str] = []
    observer = observing.Observer(
        ctx=f.run_context(run_id="run-1"),  # time scale 0.02
        reg=reg,
        store=store,
        scenario=models.Scenario.model_validate(raw),
        on_abort=aborts.append,
        started_at=datetime.now(UTC),
        control_interval_s=0.05,
    )
    return observer, aborts


def test_a_probe_failing_longer_than_failing_for_aborts(store: journal.Journal) -> None:
    # failingFor 30s at time scale 0.02 is 0.6 s of samples: the 4th failing sample
    # (0.75 s after the first) breaches it; the 3rd (0.5 s) does not.
    script = _Stamped([True, False, False, False, False, False, False])
    observer, aborts = _observer(store, script, {"failingFor": "30s"})

    observer.start()
    assert observer.abort_event.wait(WAIT)
    observer.stop()

    assert len(aborts) == 1
    assert aborts[0].startswith("probe checkout failing for 0.8s (abortWhen: failingFor 0.6s)")
    samples = store.events(states.RunId("run-1"), kind="probe")
    assert [e.data["ok"] for e in samples] == [True, False, False, False, False]
    assert [d.probe for d in observer.deviations()] == ["checkout"]  # hypothesis deviated
    [guardrail] = store.events(states.RunId("run-1"), kind="guardrail")
    assert guardrail.data["rule"] == "abort-when"


def test_a_pass_restarts_the_failing_for_clock(store: journal.Journal) -> None:
    flapping = [*itertools.repeat(False, 3), True, *itertools.repeat(False, 3), True]
    script = _Stamped(flapping)
    observer, aborts = _observer(store, script, {"failingFor": "30s"})

    observer.start()
    assert script.done.wait(WAIT)
    observer.stop()

    assert aborts == []
    assert not observer.abort_event.is_set()


def test_more_failures_than_the_ratio_in_a_full_window_abort(store: journal.Journal) -> None:
    # window 2m at 0.02 is 2.4 s: judged from the 11th sample (2.5 s after the first).
    pattern = [True, False] * 5 + [False, False]
    script = _Stamped(pattern)
    observer, aborts = _observer(store, script, {"failingRatio": {"above": "50%", "window": "2m"}})

    observer.start()
    assert observer.abort_event.wait(WAIT)
    observer.stop()

    samples = store.events(states.RunId("run-1"), kind="probe")
    assert len(samples) == 11  # the 11th fills the window; the first is 2.5 s old, outside it
    assert aborts == [
        "probe checkout 6 of 10 samples failed in the last 2.4s "
        "(abortWhen: failingRatio above 50%): down"
    ]


def _history(*pattern: tuple[float, bool]) -> list[tuple[datetime, bool]]:
    return [(T0 + timedelta(seconds=s), ok) for s, ok in pattern]


def test_failing_for_is_judged_from_the_first_failing_sample() -> None:
    rule = observing.AbortRule(text="probe web failing for 30s", failing_for_s=30.0)
    history = _history((0, True), (10, False), (20, False), (39, False))

    assert rule.breach(history, failing_since=T0 + timedelta(seconds=10)) is None
    history.append((T0 + timedelta(seconds=40), False))
    assert rule.breach(history, failing_since=T0 + timedelta(seconds=10)) is not None
    history.append((T0 + timedelta(seconds=45), True))
    assert rule.breach(history, failing_since=None) is None


def test_the_ratio_waits_for_a_full_window_and_needs_more_than_its_share() -> None:
    rule = observing.AbortRule(text="ratio", ratio_above=0.5, window_s=60.0)

    young = _history((0, False), (30, False))
    assert rule.breach(young, failing_since=T0) is None  # observed 30 s of a 60 s window
    half = _history((0, True), (20, False), (40, True), (60, False))
    assert rule.breach(half, failing_since=None) is None  # 2 of 4: not above 50%
    most = _history((0, True), (20, False), (40, False), (60, False))
    assert rule.breach(most, failing_since=None) == (
        "3 of 4 samples failed in the last 60s (abortWhen: failingRatio above 50%)"
    )


def test_abort_conditions_take_one_duration_and_only_on_a_probe() -> None:
    with pytest.raises(pydantic.ValidationError, match="at most one of"):
        models.AbortCondition.model_validate(
            {"probe": "web", "failingFor": "30s", "failingRatio": {"above": "50%", "window": "1m"}}
        )
    with pytest.raises(pydantic.ValidationError, match="apply to a 'probe' condition only"):
        models.AbortCondition.model_validate({"alarm": "errors", "failingFor": "30s"})
    with pytest.raises(pydantic.ValidationError, match="under 100%"):
        models.AbortCondition.model_validate(
            {"probe": "web", "failingRatio": {"above": "100%", "window": "1m"}}
        )


def test_duration_rules_are_scaled_like_machine_waits() -> None:
    condition = models.AbortCondition.model_validate({"probe": "web", "failingFor": "30s"})

    [rule] = observing.abort_rules(condition, time_scale=0.02)

    assert rule.failing_for_s == pytest.approx(0.6)
    assert rule.text == "probe web failing for 30s"
    bare = models.AbortCondition.model_validate({"probe": "web"})
    assert observing.abort_rules(bare, time_scale=0.02) == ()


def _degraded_checkout(document: dict[str, Any]) -> None:
    """A during-only probe that never passes (checkout answers 200, not 503), aborting only
    through `failingFor` (its tolerance is far beyond the drill)."""
    spec = document["spec"]
    spec["steadyState"].append(
        {
            "name": "checkout-degraded",
            "type": "http",
            "with": {"url": "{{ checkoutHealthUrl }}", "expectStatus": 503},
            "interval": "5s",
            "tolerance": 1000,
            "when": ["during"],
        }
    )
    spec["guardrails"]["abortWhen"] = [{"probe": "checkout-degraded", "failingFor": "30s"}]


def test_a_sandbox_drill_whose_probe_fails_for_longer_than_failing_for_aborts_and_rolls_back(
    tmp_path: Path,
) -> None:
    with (
        stack.Sandbox(tmp_path / "sandbox") as world,
        journal.open_store(f"sqlite:///{tmp_path / 'stormdrill.db'}") as store,
    ):
        support.settle(world)
        before = support.snapshot(world)
        path = support.scenario_variant(
            "az-failure-kubernetes", tmp_path / "failing-for.yaml", _degraded_checkout
        )
        drill = support.bind(world, str(path), sets=("soak=1h",))  # 72 s: only an abort ends it
        db_url = f"sqlite:///{tmp_path / 'plan.db'}"
        env = ["--env", str(world.info.environment)]
        shown = testing.CliRunner().invoke(
            cli.app, ["plan", str(path), *env], env=support.cli_env(db_url)
        )
        as_json = testing.CliRunner().invoke(
            cli.app, ["plan", str(path), *env, "--format", "json"], env=support.cli_env(db_url)
        )

        outcome = support.make_engine(store, drill).run(drill)

        timeline = [
            f"{e.kind} {e.message}"
            for e in store.events(outcome.run.id)
            if e.kind in ("state", "abort", "guardrail", "error", "deviation")
        ][-8:]
        assert outcome.run.state is states.RunState.ABORTED, timeline
        assert outcome.exit_code == engine.ExitCode.ABORTED
        assert "probe checkout-degraded failing for" in (outcome.run.abort_reason or ""), timeline
        assert "abortWhen: failingFor 0.6s" in (outcome.run.abort_reason or "")
        entries = store.entries(outcome.run.id)
        assert entries and all(
            e.state in (mutations.EntryState.REVERTED, mutations.EntryState.SKIPPED)
            for e in entries
        )
        samples = [
            e
            for e in store.events(outcome.run.id, kind="probe")
            if e.data["probe"] == "checkout-degraded"
        ]
        assert samples and not any(e.data["ok"] for e in samples)
        support.assert_same_world(before, support.snapshot(world))

    assert shown.exit_code == 0, shown.output
    assert "Abort when (any of):" in shown.stdout
    assert "probe checkout-degraded failing for 30s (0.6 s at time scale 0.02)" in shown.stdout
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.stdout)["abort_when"] == [
        {
            "condition": "probe checkout-degraded failing for 30s",
            "probe": "checkout-degraded",
            "alarm": None,
            "scaled": "0.6 s at time scale 0.02",
        }
    ]
