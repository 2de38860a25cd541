"""The observer: samples journalled, tolerance counted, aborts signalled once, stability measured.

Probe behaviour is scripted (a fake probe type whose results come from a queue); waits are
on events with generous timeouts, and assertions are about order and counts, never durations.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pydantic
import pytest

from orchestrator import errors, journal, observing, registry, states
from scenarios import models
from tests.engine_probes import factories as f

WAIT = 20.0
"""Generous upper bound for anything the tests wait for (never asserted)."""


@pytest.fixture
def store(sqlite_url: str) -> Iterator[journal.Journal]:
    with journal.open_store(sqlite_url) as opened:
        yield opened


def _create_run(store: journal.Journal, run_id: str = "run-1") -> states.RunId:
    run = states.new_run(
        id=states.RunId(run_id),
        scenario="observed",
        environment="sandbox",
        environment_source="sandbox.yaml",
        owner=states.Owner(host="h", pid=1, token="t"),
        at=datetime.now(UTC),
    )
    store.create_run(run)
    return run.id


class Harness:
    """An observer over scripted probes, with every abort callback recorded."""

    def __init__(
        self,
        store: journal.Journal,
        scenario: models.Scenario,
        reg: registry.Registry,
        *,
        started_at: datetime | None = None,
        files: Sequence[Path] = (),
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.store = store
        self.run_id = _create_run(store)
        self.aborts: list[str] = []
        self.observer = observing.Observer(
            ctx=f.run_context(run_id=self.run_id),
            reg=reg,
            store=store,
            scenario=scenario,
            on_abort=self.aborts.append,
            started_at=started_at or datetime.now(UTC),
            killswitch_files=files,
            clock=clock or (lambda: datetime.now(UTC)),
            control_interval_s=0.05,
        )

    def probe_events(self, probe: str | None = None) -> list[journal.Event]:
        events = self.store.events(self.run_id, kind="probe")
        return [e for e in events if probe is None or e.data["probe"] == probe]


def _registry(*classes: type[registry.Probe[Any]]) -> registry.Registry:
    reg = registry.Registry()
    reg.register(*classes)
    return reg


def test_abort_fires_once_after_tolerance_plus_one_consecutive_failures(
    store: journal.Journal,
) -> None:
    script = f.Script([True, False, False, False])
    scenario = f.scenario(
        [f.probe("checkout", "test.scripted", tolerance=2)],
        abort_when=[{"probe": "checkout"}],
    )
    h = Harness(store, scenario, _registry(f.scripted_probe("test.scripted", script)))
    h.observer.start()
    assert h.observer.abort_event.wait(WAIT)
    h.observer.stop()

    assert h.aborts == ["probe checkout failed 3 times in a row: test.scripted call 4: down"]
    assert h.observer.abort_reason == h.aborts[0]
    samples = h.probe_events("checkout")
    assert [e.data["ok"] for e in samples] == [True, False, False, False]
    assert [e.data["streak"] for e in samples] == [0, 1, 2, 3]
    [abort] = store.events(h.run_id, kind="guardrail")
    assert abort.seq > samples[-1].seq
    assert abort.data["rule"] == "abort-when"


def test_a_flapping_probe_resets_its_count_and_never_aborts(store: journal.Journal) -> None:
    flaps = [False, False, True] * 3
    script = f.Script(flaps)
    scenario = f.scenario(
        [f.probe("checkout", "test.scripted", tolerance=2)],
        abort_when=[{"probe": "checkout"}],
    )
    h = Harness(store, scenario, _registry(f.scripted_probe("test.scripted", script)))
    h.observer.start()
    assert script.wait_calls(len(flaps) + 2, WAIT)
    h.observer.stop()

    assert not h.observer.abort_event.is_set()
    assert h.aborts == []
    assert h.observer.deviations() == []
    recorded = [e.data["ok"] for e in h.probe_events("checkout")]
    assert recorded[: len(flaps)] == flaps
    [summary] = h.observer.summaries()
    assert summary.longest_streak == 2
    assert summary.failures == 6


def test_a_probe_outside_abort_when_only_marks_the_hypothesis_deviated(
    store: journal.Journal,
) -> None:
    script = f.Script([True, False, False, False, True])
    scenario = f.scenario([f.probe("latency", "test.scripted", tolerance=1)])
    h = Harness(store, scenario, _registry(f.scripted_probe("test.scripted", script)))
    h.observer.start()
    assert script.wait_calls(7, WAIT)
    h.observer.stop()

    assert h.aborts == []
    [deviation] = h.observer.deviations()
    assert deviation.probe == "latency"
    assert deviation.failures == 2
    assert not deviation.aborts
    assert "call 3: down" in deviation.message


def test_every_sample_is_journalled_with_probe_ok_value_message_and_phase(
    journal: journal.Journal,
) -> None:
    script = f.Script([True, False, True])
    scenario = f.scenario([f.probe("checkout", "test.scripted", tolerance=5)])
    h = Harness(journal, scenario, _registry(f.scripted_probe("test.scripted", script)))
    h.observer.start()
    assert script.wait_calls(4, WAIT)
    h.observer.stop()

    events = h.probe_events()
    assert len(events) == len(h.observer.samples()) >= 3
    first, second = events[0], events[1]
    assert first.data["probe"] == "checkout"
    assert first.data["type"] == "test.scripted"
    assert first.data["phase"] == "during"
    assert first.data["ok"] is True and second.data["ok"] is False
    assert first.data["value"] == {"call": 1}
    assert first.data["message"] == "test.scripted call 1: up"
    assert second.message.startswith("checkout FAILED (1/6)")


def test_probes_without_during_are_not_observed(store: journal.Journal) -> None:
    during, before = f.Script([]), f.Script([])
    scenario = f.scenario(
        [
            f.probe("checkout", "test.during"),
            f.probe("payments", "test.before", when=["before", "after"]),
        ]
    )
    reg = _registry(
        f.scripted_probe("test.during", during), f.scripted_probe("test.before", before)
    )
    h = Harness(store, scenario, reg)
    assert [w.name for w in h.observer.watched] == ["checkout"]
    h.observer.start()
    assert during.wait_calls(3, WAIT)
    h.observer.stop()
    assert before.calls == 0


def test_an_engaged_kill_switch_aborts_mid_run(store: journal.Journal) -> None:
    script = f.Script([])
    scenario = f.scenario([f.probe("checkout", "test.scripted")])
    h = Harness(store, scenario, _registry(f.scripted_probe("test.scripted", script)))
    h.observer.start()
    assert script.wait_calls(3, WAIT)
    assert not h.observer.abort_event.is_set()
    store.set_killswitch(engaged=True, by="alice", reason="incident in progress")
    assert h.observer.abort_event.wait(WAIT)
    h.observer.stop()
    [reason] = h.aborts
    assert "kill switch is engaged by alice: incident in progress" in reason


def test_a_kill_switch_file_appearing_mid_run_aborts(
    store: journal.Journal, tmp_path: Path
) -> None:
    stop_file = tmp_path / "STOP"
    script = f.Script([])
    scenario = f.scenario([f.probe("checkout", "test.scripted")])
    reg = _registry(f.scripted_probe("test.scripted", script))
    h = Harness(store, scenario, reg, files=[stop_file])
    h.observer.start()
    assert script.wait_calls(3, WAIT)
    stop_file.touch()
    assert h.observer.abort_event.wait(WAIT)
    h.observer.stop()
    assert h.aborts == [f"the kill-switch file {stop_file} exists (remove it once it is safe)"]


def test_exceeding_max_duration_aborts(store: journal.Journal) -> None:
    started = datetime.now(UTC)
    offset = [timedelta(0)]
    script = f.Script([])
    scenario = f.scenario([f.probe("checkout", "test.scripted")], max_duration="30m")
    h = Harness(
        store,
        scenario,
        _registry(f.scripted_probe("test.scripted", script)),
        started_at=started,
        clock=lambda: datetime.now(UTC) + offset[0],
    )
    assert h.observer.deadline == started + timedelta(seconds=36)  # 30m at time scale 0.02
    h.observer.start()
    assert script.wait_calls(3, WAIT)
    assert not h.observer.abort_event.is_set()
    offset[0] = timedelta(minutes=5)
    assert h.observer.abort_event.wait(WAIT)
    h.observer.stop()
    [reason] = h.aborts
    assert "exceeded maxDuration 30m" in reason


def test_on_abort_is_called_once_even_when_several_guardrails_break(
    store: journal.Journal,
) -> None:
    script = f.Script([False])
    scenario = f.scenario(
        [f.probe("checkout", "test.scripted")], abort_when=[{"probe": "checkout"}]
    )
    store.set_killswitch(engaged=True, by="bob", reason="stop everything")
    h = Harness(
        store,
        scenario,
        _registry(f.scripted_probe("test.scripted", script)),
        started_at=datetime.now(UTC) - timedelta(hours=2),
    )
    h.observer.start()
    assert h.observer.abort_event.wait(WAIT)
    h.observer.stop()
    assert len(h.aborts) == 1
    assert len(store.events(h.run_id, kind="guardrail")) == 1


def test_a_hung_check_counts_as_failures_until_it_returns(store: journal.Journal) -> None:
    script = f.Script([None])
    scenario = f.scenario(
        [f.probe("checkout", "test.scripted", tolerance=1)],
        abort_when=[{"probe": "checkout"}],
    )
    h = Harness(store, scenario, _registry(f.scripted_probe("test.scripted", script)))
    try:
        h.observer.start()
        assert h.observer.abort_event.wait(WAIT)
        h.observer.stop()
    finally:
        script.release.set()
    messages = [str(e.data["message"]) for e in h.probe_events()]
    assert "gave no answer within" in messages[0]
    assert "still hung" in messages[1]
    assert script.calls == 1
    assert h.aborts[0].startswith("probe checkout failed 2 times in a row")


def test_a_probe_that_cannot_run_is_a_failing_sample(store: journal.Journal) -> None:
    class Broken(registry.Probe[f.ScriptParams]):
        name: ClassVar[str] = "test.broken"
        params_model: ClassVar[type[pydantic.BaseModel]] = f.ScriptParams
        description: ClassVar[str] = "always raises"

        def check(
            self, ctx: registry.ProviderContext, *, params: f.ScriptParams
        ) -> registry.ProbeResult:
            raise errors.ProviderPermanent("the API said 403 Forbidden")

    scenario = f.scenario([f.probe("rbac", "test.broken")], abort_when=[{"probe": "rbac"}])
    h = Harness(store, scenario, _registry(Broken))
    h.observer.start()
    assert h.observer.abort_event.wait(WAIT)
    h.observer.stop()
    assert "could not run: the API said 403 Forbidden" in h.aborts[0]


# ---- alarms ----------------------------------------------------------------------------------


class AlarmParams(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)
    alarmNames: list[str]


def test_an_alarm_condition_needs_the_cloudwatch_alarm_probe(store: journal.Journal) -> None:
    scenario = f.scenario([], abort_when=[{"alarm": "checkout-5xx-high"}])
    with pytest.raises(errors.RegistryError, match="checkout-5xx-high") as caught:
        Harness(store, scenario, registry.Registry())
    assert "aws.cloudwatch-alarm" in str(caught.value)


def test_a_firing_alarm_aborts_through_its_synthetic_probe(store: journal.Journal) -> None:
    asked: list[list[str]] = []

    class Alarm(registry.Probe[AlarmParams]):
        name: ClassVar[str] = "aws.cloudwatch-alarm"
        params_model: ClassVar[type[pydantic.BaseModel]] = AlarmParams
        description: ClassVar[str] = "fake alarm"

        def check(
            self, ctx: registry.ProviderContext, *, params: AlarmParams
        ) -> registry.ProbeResult:
            asked.append(params.alarmNames)
            return registry.ProbeResult(
                ok=False, value="ALARM", message="alarm is ALARM", at=datetime.now(UTC)
            )

    scenario = f.scenario([], abort_when=[{"alarm": "checkout-5xx-high"}])
    h = Harness(store, scenario, _registry(Alarm))
    [watched] = h.observer.watched
    assert watched.name == "alarm:checkout-5xx-high"
    h.observer.start()
    assert h.observer.abort_event.wait(WAIT)
    h.observer.stop()
    assert asked[0] == ["checkout-5xx-high"]
    assert h.aborts == ["probe alarm:checkout-5xx-high failed 1 times in a row: alarm is ALARM"]


# ---- construction errors ---------------------------------------------------------------------


def test_an_unknown_probe_type_fails_at_construction(store: journal.Journal) -> None:
    scenario = f.scenario([f.probe("checkout", "test.nope")])
    with pytest.raises(errors.UnknownProbe, match=r"test\.nope"):
        Harness(store, scenario, registry.Registry())


def test_bad_probe_params_fail_at_construction_naming_the_probe(store: journal.Journal) -> None:
    entry = {**f.probe("checkout", "test.scripted"), "with": {"colour": "red"}}
    scenario = f.scenario([entry])
    reg = _registry(f.scripted_probe("test.scripted", f.Script([])))
    with pytest.raises(errors.InvalidParams, match=r"spec.steadyState\[0\] probe 'checkout'"):
        Harness(store, scenario, reg)


# ---- synchronous checks ----------------------------------------------------------------------


def test_check_once_returns_and_journals_one_sample_per_probe(store: journal.Journal) -> None:
    up, down = f.Script([True]), f.Script([False])
    scenario = f.scenario([])
    reg = _registry(f.scripted_probe("test.up", up), f.scripted_probe("test.down", down))
    h = Harness(store, scenario, reg)
    probes = [
        models.Probe.model_validate(f.probe("web", "test.up")),
        models.Probe.model_validate(f.probe("db", "test.down")),
    ]
    samples = h.observer.check_once(probes, models.Phase.BEFORE)
    assert [(s.probe, s.ok) for s in samples] == [("web", True), ("db", False)]
    assert [(e.data["probe"], e.data["phase"]) for e in h.probe_events()] == [
        ("web", "before"),
        ("db", "before"),
    ]


def test_the_stability_window_resets_on_a_flap(store: journal.Journal) -> None:
    script = f.Script([True, False, True])
    h = Harness(store, f.scenario([]), _registry(f.scripted_probe("test.scripted", script)))
    probe = models.Probe.model_validate(f.probe("checkout", "test.scripted"))
    result = h.observer.wait_until_stable([probe], window_s=0.2, timeout_s=WAIT)
    assert result.stable
    assert [s.ok for s in result.samples[:3]] == [True, False, True]
    assert all(s.ok for s in result.samples[2:])
    assert result.first_pass_at is not None and result.stable_since is not None
    assert result.first_pass_at < result.stable_since
    assert result.samples[2].result.at <= result.stable_since
    assert {e.data["phase"] for e in h.probe_events()} == {"after"}


def test_stability_never_reached_gives_up_after_the_timeout(store: journal.Journal) -> None:
    script = f.Script([False])
    h = Harness(store, f.scenario([]), _registry(f.scripted_probe("test.scripted", script)))
    probe = models.Probe.model_validate(f.probe("checkout", "test.scripted"))
    result = h.observer.wait_until_stable([probe], window_s=0.1, timeout_s=0.3)
    assert not result.stable
    assert result.first_pass_at is None and result.stable_since is None
    assert result.samples and not any(s.ok for s in result.samples)


def test_stability_waiting_can_be_cancelled(store: journal.Journal) -> None:
    script = f.Script([False])
    h = Harness(store, f.scenario([]), _registry(f.scripted_probe("test.scripted", script)))
    probe = models.Probe.model_validate(f.probe("checkout", "test.scripted"))
    cancel = threading.Event()
    cancel.set()
    result = h.observer.wait_until_stable([probe], window_s=1, timeout_s=WAIT, cancel=cancel)
    assert not result.stable
    assert len(result.samples) == 1


def test_check_once_defaults_to_the_scenario_probes_of_the_phase(store: journal.Journal) -> None:
    before, after = f.Script([True]), f.Script([False])
    scenario = f.scenario(
        [
            f.probe("web", "test.before", when=["before"]),
            f.probe("db", "test.after", when=["after"]),
        ]
    )
    reg = _registry(f.scripted_probe("test.before", before), f.scripted_probe("test.after", after))
    h = Harness(store, scenario, reg)
    assert [s.probe for s in h.observer.check_once(phase=models.Phase.BEFORE)] == ["web"]
    checked = h.observer.check_probe(scenario.spec.steady_state[1], phase=models.Phase.DURING)
    assert not checked.ok
    assert checked.message == "test.after call 1: down"
    assert after.calls == 1


def test_a_deadline_and_a_settings_kill_switch_file_may_be_given_directly(
    store: journal.Journal, tmp_path: Path
) -> None:
    stop_file = tmp_path / "GLOBAL-STOP"
    stop_file.touch()
    run_id = _create_run(store)
    aborts: list[str] = []
    deadline = datetime.now(UTC) + timedelta(hours=1)
    observer = observing.Observer(
        ctx=f.run_context(run_id=run_id),
        reg=registry.Registry(),
        store=store,
        scenario=f.scenario([]),
        on_abort=aborts.append,
        deadline=deadline,
        killswitch_file=stop_file,
    )
    assert observer.deadline == deadline
    observer.start()
    assert observer.abort_event.wait(WAIT)
    observer.pause()
    assert aborts == [f"the kill-switch file {stop_file} exists (remove it once it is safe)"]
