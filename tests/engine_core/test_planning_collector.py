"""A planning pass pauses the cyclic garbage collector, and always lets it run again after."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from typing import Any, ClassVar, cast

import pytest

from orchestrator import context, errors, mutations, planning, registry, targets
from scenarios import models
from tests.engine_guardrails import factories


@pytest.fixture(autouse=True)
def _collector_running() -> Iterator[None]:
    was = gc.isenabled()
    gc.enable()
    yield
    if was:
        gc.enable()
    else:
        gc.disable()


class _Recording(registry.TargetResolver):
    """Records whether the collector ran while it resolved; optionally fails."""

    provider: ClassVar[str] = "kubernetes"
    kinds: ClassVar[frozenset[str]] = frozenset({"node", "pod"})

    def __init__(self, *, fail: bool = False) -> None:
        self.fail = fail
        self.collector_running: list[bool] = []

    def resolve(
        self, ctx: registry.ProviderContext, *, name: str, target: models.Target
    ) -> targets.Selection:
        del ctx
        self.collector_running.append(gc.isenabled())
        if self.fail:
            raise errors.ProviderRetryable(f"target {name}: the API server is unreachable")
        ref = mutations.TargetRef(provider="kubernetes", kind=target.kind, name=f"{name}-1")
        return targets.Selection(
            name=name, provider="kubernetes", kind=target.kind, refs=(ref,), population=1
        )


def _resolve(resolver: _Recording) -> dict[str, targets.Selection]:
    reg = registry.default_registry()
    reg.register_resolver(resolver)
    ctx = cast(context.RunContext, cast(Any, object()))  # the resolver never reads it
    return planning.resolve_targets(factories.scenario(), reg=reg, ctx=ctx)


def test_targets_resolve_with_the_collector_paused_and_it_runs_again_after() -> None:
    resolver = _Recording()

    resolved = _resolve(resolver)

    assert sorted(resolved) == ["checkout-pods", "zone-nodes"]
    assert resolver.collector_running == [False, False]
    assert gc.isenabled()


def test_the_collector_runs_again_when_resolving_fails() -> None:
    resolver = _Recording(fail=True)

    with pytest.raises(errors.ProviderRetryable, match="unreachable"):
        _resolve(resolver)

    assert resolver.collector_running == [False]
    assert gc.isenabled()


def test_a_caller_that_disabled_the_collector_keeps_it_disabled() -> None:
    gc.disable()

    with planning.collector_paused():
        assert not gc.isenabled()

    assert not gc.isenabled()


def test_nested_pauses_let_the_collector_run_only_when_the_outer_one_ends() -> None:
    with planning.collector_paused():
        with planning.collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()

    assert gc.isenabled()


def test_concurrent_passes_let_the_collector_run_when_the_last_one_ends() -> None:
    first_in, second_done = threading.Event(), threading.Event()
    seen: list[bool] = []

    def first() -> None:
        with planning.collector_paused():
            first_in.set()
            second_done.wait(timeout=10)
            seen.append(gc.isenabled())

    worker = threading.Thread(target=first)
    worker.start()
    first_in.wait(timeout=10)
    with planning.collector_paused():
        pass
    seen.append(gc.isenabled())  # the first pass is still running
    second_done.set()
    worker.join(timeout=10)

    assert seen == [False, False]
    assert gc.isenabled()
