"""Rollback pools: limits per API server, and a throttling server pausing its whole pool.

Start times are read from a fake clock that only moves when slept on (as in test_rollback);
where a test needs a pause to still be in force while other reverts are scheduled, the
throttled worker's sleep is held until the test lets it go.
"""

from __future__ import annotations

import collections
import dataclasses
import threading
from collections.abc import Sequence

import pytest

from orchestrator import errors, mutations, retrying, rollback, states
from orchestrator import journal as journaling
from scenarios import models
from tests.engine_core import factories

E = mutations.EntryState
RUN = states.RunId("run-1")
RETRY = retrying.RetryPolicy(max_attempts=4, base_delay=0.5, max_delay=8.0, jitter=0.0)


def kube(name: str) -> mutations.TargetRef:
    return factories.target(name)


def aws(name: str, region: str = "us-east-1") -> mutations.TargetRef:
    return mutations.TargetRef(provider="aws", kind="subnet", name=name, region=region)


class HeldTime:
    """A clock that moves only when slept on; a sleep of `hold_s` or more waits for `release`."""

    def __init__(self, *, hold_s: float | None = None) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []
        self.hold_s = hold_s
        self.sleeping = threading.Event()
        self.release = threading.Event()
        self._lock = threading.Lock()

    def clock(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        if self.hold_s is not None and seconds >= self.hold_s and not self.sleeping.is_set():
            self.sleeping.set()
            assert self.release.wait(timeout=30), "the held sleep was never released"
        with self._lock:
            self.sleeps.append(seconds)
            self.now += seconds


def _journalled(
    journal: journaling.Journal, world: factories.World, targets: Sequence[mutations.TargetRef]
) -> list[mutations.JournalEntry]:
    """Journal and apply one change per target, oldest first (the last is the newest)."""
    journal.create_run(factories.make_run(run_id=RUN, state=states.RunState.INJECTING))
    entries = []
    for target in targets:
        planned = dataclasses.replace(
            factories.set_value(name=target.name, previous=1, value=0), target=target
        )
        world.apply(planned)
        entry = journal.record_intent(RUN, planned)
        entries.append(journal.mark_applied(entry.seq))
    return entries


def _run(
    journal: journaling.Journal,
    entries: Sequence[mutations.JournalEntry],
    revert: rollback.Revert,
    *,
    time: HeldTime,
    concurrency: int,
    per_provider: dict[str, int] | None = None,
    retry: retrying.RetryPolicy = RETRY,
) -> rollback.RollbackOutcome:
    return rollback.rollback(
        entries=entries,
        revert=revert,
        journal=journal,
        retry=retry,
        concurrency=concurrency,
        per_provider=per_provider,
        clock=time.clock,
        sleep=time.sleep,
        rand=lambda: 0.5,
    )


Call = tuple[str, float]  # (target name, fake time the call started)


def test_a_429_with_retry_after_pauses_every_revert_on_that_server_while_others_go_on(
    journal: journaling.Journal,
) -> None:
    world = factories.World(dict.fromkeys(["d", "c", "b", "a"], 1))
    # Newest first: a, b, c (Kubernetes), then d (AWS).
    entries = _journalled(journal, world, [aws("d"), kube("c"), kube("b"), kube("a")])
    time = HeldTime(hold_s=5.0)
    calls: list[Call] = []
    lock = threading.Lock()
    b_in_flight = threading.Event()  # a is throttled only once b's call is under way

    def revert(entry: mutations.JournalEntry) -> None:
        name = entry.target.name
        with lock:
            calls.append((name, time.clock()))
            first_a = name == "a" and [n for n, _ in calls].count("a") == 1
        if first_a:
            assert b_in_flight.wait(timeout=30)
            raise errors.ProviderRetryable("429 Too Many Requests", delay=5.0, retry_after_s=5.0)
        if name == "b":  # in flight when a is throttled: ends after the pause is in force
            b_in_flight.set()
            assert time.sleeping.wait(timeout=30)
        if name == "d":  # started during the pause (another server): a may retry now
            time.release.set()
        world.revert(entry)

    outcome = _run(journal, entries, revert, time=time, concurrency=2)

    assert outcome.ok, outcome.failed
    assert world.values == dict.fromkeys(["a", "b", "c", "d"], 1)
    started = collections.defaultdict(list)
    for name, at in calls:
        started[name].append(at)
    assert started["a"][0] == 0.0 and started["a"][1] >= 5.0  # its own retry waited
    assert started["d"] == [0.0]  # AWS went on during the Kubernetes pause
    assert started["c"][0] >= 5.0  # no new Kubernetes revert started before the pause ended
    assert [n for n, _ in calls].index("d") < [n for n, _ in calls].index("c")
    assert 5.0 in time.sleeps


def test_a_retry_on_a_paused_server_waits_for_the_pause_not_just_its_own_backoff(
    journal: journaling.Journal,
) -> None:
    world = factories.World(dict.fromkeys(["b", "a"], 1))
    entries = _journalled(journal, world, [kube("b"), kube("a")])
    time = HeldTime(hold_s=6.0)
    calls: list[Call] = []
    lock = threading.Lock()
    b_in_flight = threading.Event()  # a is throttled only once b's call is under way

    def revert(entry: mutations.JournalEntry) -> None:
        name = entry.target.name
        with lock:
            calls.append((name, time.clock()))
            attempt = [n for n, _ in calls].count(name)
        if name == "a" and attempt == 1:
            assert b_in_flight.wait(timeout=30)
            raise errors.ProviderRetryable("429", delay=6.0, retry_after_s=6.0)
        if name == "b" and attempt == 1:
            b_in_flight.set()
            assert time.sleeping.wait(timeout=30)  # the pause is in force
            time.release.set()
            raise errors.ProviderRetryable("503 Service Unavailable")  # backoff alone: 0.5 s
        world.revert(entry)

    outcome = _run(journal, entries, revert, time=time, concurrency=2)

    assert outcome.ok, outcome.failed
    retried_b = [at for name, at in calls if name == "b"][1]
    assert retried_b >= 6.0
    assert {e.seq: e.attempts for e in journal.entries(RUN)} == {e.seq: 2 for e in entries}


def _throttled_newest(
    journal: journaling.Journal, *, concurrency: int, per_provider: dict[str, int]
) -> tuple[rollback.RollbackOutcome, list[Call], factories.World]:
    """a, b (Kubernetes) and c (AWS), newest first; a's 429 leaves Kubernetes paused 3 s."""
    world = factories.World(dict.fromkeys(["c", "b", "a"], 1))
    entries = _journalled(journal, world, [aws("c"), kube("b"), kube("a")])
    time = HeldTime()
    calls: list[Call] = []
    lock = threading.Lock()

    def revert(entry: mutations.JournalEntry) -> None:
        with lock:
            calls.append((entry.target.name, time.clock()))
        if entry.target.name == "a":
            raise errors.ProviderRetryable("429", retry_after_s=3.0)
        world.revert(entry)

    outcome = _run(
        journal,
        entries,
        revert,
        time=time,
        concurrency=concurrency,
        per_provider=per_provider,
        retry=retrying.RetryPolicy(max_attempts=1),
    )
    assert [e.target.name for e, _ in outcome.failed] == ["a"]
    assert "gave up after 1 attempt(s)" in outcome.failed[0][1]
    assert world.values == {"a": 0, "b": 1, "c": 1}
    return outcome, calls, world


def test_with_one_slot_in_all_a_paused_server_holds_the_whole_rollback_back(
    journal: journaling.Journal,
) -> None:
    _, calls, _ = _throttled_newest(journal, concurrency=1, per_provider={})

    assert [name for name, _ in calls] == ["a", "b", "c"]
    assert dict(calls)["b"] >= 3.0


def test_with_slots_to_spare_other_servers_go_on_while_one_is_paused(
    journal: journaling.Journal,
) -> None:
    _, calls, _ = _throttled_newest(journal, concurrency=2, per_provider={"kubernetes": 1})

    assert dict(calls)["c"] == 0.0
    assert dict(calls)["b"] >= 3.0


def test_no_api_server_gets_more_reverts_at_once_than_its_provider_allows(
    journal: journaling.Journal,
) -> None:
    targets = (
        [kube(f"k{i}") for i in range(8)]
        + [aws(f"e{i}") for i in range(6)]
        + [aws(f"w{i}", region="eu-west-1") for i in range(6)]
    )
    world = factories.World({t.name: 1 for t in targets})
    entries = _journalled(journal, world, targets)
    limits = {"kubernetes": 3, "aws": 2}
    first_wave = threading.Barrier(3 + 2 + 2)  # every server at its limit at once
    lock = threading.Lock()
    active: collections.Counter[str] = collections.Counter()
    peak: collections.Counter[str] = collections.Counter()
    started = 0

    def revert(entry: mutations.JournalEntry) -> None:
        nonlocal started
        server = rollback.api_server(entry.target)
        with lock:
            active[server] += 1
            peak[server] = max(peak[server], active[server])
            started += 1
            waits = started <= first_wave.parties
        if waits:
            first_wave.wait(timeout=30)
        world.revert(entry)
        with lock:
            active[server] -= 1

    outcome = _run(journal, entries, revert, time=HeldTime(), concurrency=16, per_provider=limits)

    assert outcome.ok, outcome.failed
    assert dict(peak) == {"kubernetes": 3, "aws/us-east-1": 2, "aws/eu-west-1": 2}
    assert world.values == {t.name: 1 for t in targets}


def test_limits_come_from_the_environment_or_the_default() -> None:
    environment = _environment({"concurrency": 12, "perProvider": {"aws": 4}})
    assert rollback.Limits.of_environment(environment) == rollback.Limits(
        total=12, per_provider={"aws": 4}
    )
    limits = rollback.Limits.of_environment(_environment(None), default=5)
    assert limits == rollback.Limits(total=5)
    assert (limits.of("kubernetes"), limits.of("aws")) == (5, 5)
    assert rollback.Limits(total=4, per_provider={"aws": 9}).of("aws") == 4


@pytest.mark.parametrize(
    ("concurrency", "per_provider", "named"),
    [(0, {}, "rollback concurrency must be at least 1"), (4, {"aws": 0}, "for aws")],
)
def test_a_limit_below_one_is_refused(
    journal: journaling.Journal, concurrency: int, per_provider: dict[str, int], named: str
) -> None:
    with pytest.raises(ValueError, match=named):
        _run(
            journal,
            [],
            factories.World().revert,
            time=HeldTime(),
            concurrency=concurrency,
            per_provider=per_provider,
        )


def _environment(rollback_spec: object) -> models.Environment:
    spec: dict[str, object] = {} if rollback_spec is None else {"rollback": rollback_spec}
    return models.Environment.model_validate(
        {
            "apiVersion": "stormdrill.dev/v1",
            "kind": "Environment",
            "metadata": {"name": "staging"},
            "spec": spec,
        }
    )
