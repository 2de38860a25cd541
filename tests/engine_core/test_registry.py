"""The provider registry: actions and probes by name, checked when registered."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import pydantic
import pytest

from orchestrator import errors, mutations, registry, states
from orchestrator import journal as journaling
from scenarios import models as scenario_models
from tests.engine_core import factories


class ScaleParams(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    replicas: int = pydantic.Field(ge=0)


class ScaleDeployment(registry.Action[ScaleParams]):
    """A fake action over an in-memory world of replica counts."""

    name = "test.deployments.scale"
    params_model = ScaleParams
    target_kinds = frozenset({"deployment"})
    description = "Scale a deployment to a number of replicas."

    def __init__(self) -> None:
        self.replicas: dict[str, int] = {"web": 3}

    def plan(
        self,
        ctx: registry.ProviderContext,
        *,
        targets: Sequence[mutations.TargetRef],
        params: ScaleParams,
    ) -> list[mutations.PlannedMutation]:
        return [
            mutations.PlannedMutation(
                step="scale",
                target=target,
                action=self.name,
                params=params.model_dump(),
                pre_state={"replicas": self.replicas[target.name]},
                undo=mutations.UndoToken(
                    action=self.name,
                    data={"name": target.name, "replicas": self.replicas[target.name]},
                ),
            )
            for target in targets
        ]

    def apply(
        self, ctx: registry.ProviderContext, *, mutation: mutations.PlannedMutation
    ) -> mutations.UndoToken | None:
        replicas = mutation.params["replicas"]
        assert isinstance(replicas, int)
        self.replicas[mutation.target.name] = replicas
        return None

    def revert(self, ctx: registry.ProviderContext, *, undo: mutations.UndoToken) -> None:
        name, replicas = undo.data["name"], undo.data["replicas"]
        assert isinstance(name, str)
        assert isinstance(replicas, int)
        self.replicas[name] = replicas


class HttpParams(pydantic.BaseModel):
    url: str


class HttpProbe(registry.Probe[HttpParams]):
    name = "http"
    params_model = HttpParams
    description = "GET a URL and expect 2xx."

    def check(self, ctx: registry.ProviderContext, *, params: HttpParams) -> registry.ProbeResult:
        return registry.ProbeResult(
            ok=True, value=200, message=f"{params.url} answered 200", at=datetime.now(UTC)
        )


class Ctx:
    """A provider context with nothing behind it (these actions touch no provider)."""

    def __init__(self) -> None:
        self.run_id = states.RunId("run-1")
        self.dry_run = False
        self.expires_at = datetime.now(UTC)
        self.time_scale = 1.0

    @property
    def environment(self) -> scenario_models.Environment:
        raise AssertionError("not used by these actions")

    def connection(self, provider: str) -> object:
        raise AssertionError(f"no {provider} connection in this test")


def _registry() -> registry.Registry:
    reg = registry.default_registry()
    reg.register(ScaleDeployment, HttpProbe)
    return reg


def test_registered_actions_and_probes_are_found_by_name() -> None:
    reg = _registry()
    assert reg.get_action("test.deployments.scale") is ScaleDeployment
    assert reg.get_probe("http") is HttpProbe
    assert reg.actions() == [ScaleDeployment]
    assert reg.probes() == [HttpProbe]


def test_a_mistyped_action_name_suggests_the_right_one() -> None:
    with pytest.raises(errors.UnknownAction, match=r"did you mean 'test\.deployments\.scale'"):
        _registry().get_action("test.deployment.scael")


def test_an_unknown_probe_with_nothing_close_points_at_the_listing() -> None:
    with pytest.raises(errors.UnknownProbe, match="stormdrill actions"):
        _registry().get_probe("prometheus.query")


def test_each_default_registry_is_a_fresh_one() -> None:
    first = registry.default_registry()
    first.register(HttpProbe)
    assert registry.default_registry().probes() == []


def test_a_name_cannot_be_registered_twice() -> None:
    reg = _registry()
    with pytest.raises(errors.RegistryError, match="already registered"):
        reg.register(HttpProbe)


def test_a_badly_named_action_is_refused() -> None:
    class Shouty(ScaleDeployment):
        name = "Test.Scale"

    with pytest.raises(errors.RegistryError, match="dotted lower-case"):
        registry.Registry().register(Shouty)


def test_an_unfinished_action_is_refused() -> None:
    class Unfinished(registry.Action[ScaleParams]):
        name = "test.unfinished"
        params_model = ScaleParams
        target_kinds = frozenset({"node"})
        description = "Has no methods."

    with pytest.raises(errors.RegistryError, match="abstract"):
        registry.Registry().register(Unfinished)


def test_a_revertible_action_must_be_mutating() -> None:
    class ReadOnly(ScaleDeployment):
        name = "test.read-only"
        mutating = False

    with pytest.raises(errors.RegistryError, match="mutating"):
        registry.Registry().register(ReadOnly)


def test_bad_params_name_the_action_and_the_field() -> None:
    with pytest.raises(errors.InvalidParams, match=r"test.deployments.scale params: replicas"):
        ScaleDeployment().parse_params({"replicas": -1})


def test_descriptions_carry_the_params_schema() -> None:
    (action,) = _registry().describe_actions()
    assert action.name == "test.deployments.scale"
    assert action.revertible is True
    assert "replicas" in action.params_schema["properties"]
    (probe,) = _registry().describe_probes()
    assert probe.name == "http"


def test_an_action_plans_journals_applies_and_reverts_through_its_undo_token(
    journal: journaling.Journal,
) -> None:
    action = ScaleDeployment()
    ctx = Ctx()
    run = journal.create_run(factories.make_run(state=states.RunState.INJECTING))
    (planned,) = action.plan(
        ctx, targets=[factories.target("web")], params=action.parse_params({"replicas": 0})
    )
    entry = journal.record_intent(run.id, planned)
    action.apply(ctx, mutation=planned)
    journal.mark_applied(entry.seq)
    assert action.replicas == {"web": 0}

    (to_undo,) = journal.undo_plan(run.id)
    action.revert(ctx, undo=to_undo.undo)
    action.revert(ctx, undo=to_undo.undo)  # idempotent
    journal.mark_reverted(to_undo.seq)

    assert action.replicas == {"web": 3}
    assert journal.undo_plan(run.id) == []


def test_the_catalog_tells_the_scenario_linter_about_every_action_and_probe() -> None:
    catalog = _registry().catalog()
    action = catalog.actions["test.deployments.scale"]
    assert (action.mutating, action.revertible, action.destructive) == (True, True, False)
    assert action.params is ScaleParams
    assert action.target_kinds == frozenset({"deployment"})
    assert catalog.probes["http"].params is HttpParams
