"""Registry: the interfaces providers implement (actions, probes) and the name -> class map.

Invariants:
- An action plans its mutations (with undo tokens) before touching anything;
  `apply` may refine the undo token with what it learned; `revert` is idempotent
  ("already undone" and "never happened" are success).
- Actions and probes are classes constructed without arguments; clients and the
  run reach them through the `ProviderContext` the engine passes to every call.
- There is no global registry: `default_registry()` builds a fresh, empty one and
  `orchestrator.providers.builtin.registry_with_builtins()` one with every provider we ship
  (this module imports no provider).
- Names are dotted lower-case (`kubernetes.nodes.drain`), unique across actions
  and probes, and checked when registered.
"""

from __future__ import annotations

import abc
import inspect
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Generic, Protocol, TypeVar, cast

import pydantic

from orchestrator import context, errors, mutations, states, targets
from scenarios import catalog as catalogs
from scenarios import models as scenario_models

P = TypeVar("P", bound=pydantic.BaseModel)

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9-]*(\.[a-z][a-z0-9-]*)*$")


class ProviderContext(Protocol):
    """What the engine hands every provider call (`context.RunContext` implements it)."""

    @property
    def run_id(self) -> states.RunId: ...

    @property
    def dry_run(self) -> bool: ...

    @property
    def expires_at(self) -> datetime: ...

    @property
    def time_scale(self) -> float: ...

    @property
    def environment(self) -> scenario_models.Environment: ...

    def connection(self, provider: str) -> object:
        """The provider's open connection (opened lazily by its registered factory)."""
        ...


@dataclass(frozen=True)
class ProbeResult:
    """One probe check: did it pass, the measured value, and a sentence a person reads."""

    ok: bool
    value: mutations.JsonValue
    message: str
    at: datetime


def _parse(owner: str, model: type[pydantic.BaseModel], raw: Mapping[str, Any]) -> Any:
    try:
        return model.model_validate(dict(raw))
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(params)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise errors.InvalidParams(f"{owner} params: {problems}") from exc


class Action(abc.ABC, Generic[P]):
    """A fault (or other change) a drill can inject, and how to undo it."""

    name: ClassVar[str]
    params_model: ClassVar[type[pydantic.BaseModel]]
    target_kinds: ClassVar[frozenset[str]]
    description: ClassVar[str]
    mutating: ClassVar[bool] = True
    revertible: ClassVar[bool] = True
    destructive: ClassVar[bool] = False
    """Removes capacity or access (drain, stop, revoke): its target must have a blast radius."""

    def parse_params(self, raw: Mapping[str, Any]) -> P:
        """Validate raw scenario params into `params_model`; `errors.InvalidParams` if wrong."""
        return cast(P, _parse(f"action {self.name}", self.params_model, raw))

    @abc.abstractmethod
    def plan(
        self, ctx: ProviderContext, *, targets: Sequence[mutations.TargetRef], params: P
    ) -> list[mutations.PlannedMutation]:
        """The mutations this action would make, each with its undo token. Touches nothing."""

    @abc.abstractmethod
    def apply(
        self, ctx: ProviderContext, *, mutation: mutations.PlannedMutation
    ) -> mutations.UndoToken | None:
        """Make the mutation; return a refined undo token, or None to keep the planned one."""

    @abc.abstractmethod
    def revert(self, ctx: ProviderContext, *, undo: mutations.UndoToken) -> None:
        """Undo it. Idempotent: already undone, or never applied, is success."""


class Probe(abc.ABC, Generic[P]):
    """A read-only check of steady state (HTTP, deployment available, a query, an alarm)."""

    name: ClassVar[str]
    params_model: ClassVar[type[pydantic.BaseModel]]
    description: ClassVar[str]

    def parse_params(self, raw: Mapping[str, Any]) -> P:
        """Validate raw scenario params into `params_model`; `errors.InvalidParams` if wrong."""
        return cast(P, _parse(f"probe {self.name}", self.params_model, raw))

    @abc.abstractmethod
    def check(self, ctx: ProviderContext, *, params: P) -> ProbeResult:
        """Measure once. Raise provider errors only when the probe itself cannot run."""


class TargetResolver(abc.ABC):
    """Resolves a scenario target of one provider into concrete, frozen `TargetRef`s."""

    provider: ClassVar[str]
    kinds: ClassVar[frozenset[str]]

    @abc.abstractmethod
    def resolve(
        self, ctx: ProviderContext, *, name: str, target: scenario_models.Target
    ) -> targets.Selection:
        """Read (never change) the world and return what `target` selects, with its population."""


@dataclass(frozen=True)
class SweepFinding:
    """A marker found by a sweep: what carries it, whose run, and whether it was healed."""

    target: mutations.TargetRef
    run_id: str
    expired: bool
    healed: bool
    message: str


class Sweeper(abc.ABC):
    """Finds faults by their markers (labels, annotations, tags) and heals those of dead runs."""

    provider: ClassVar[str]

    @abc.abstractmethod
    def sweep(
        self,
        ctx: ProviderContext,
        *,
        is_orphan: Callable[[str, datetime], bool],
        dry_run: bool,
    ) -> list[SweepFinding]:
        """Heal every marked fault for which `is_orphan(run_id, expires_at)` is true."""


NamespaceOptIn = Callable[[ProviderContext, Sequence[str]], Sequence[str]]
"""Given namespaces, the ones labelled `stormdrill.dev/allow-drills=true`."""

ActionClass = type[Action[Any]]
ProbeClass = type[Probe[Any]]


@dataclass(frozen=True)
class ActionDescription:
    """An action as `stormdrill actions` and the scenario linter see it."""

    name: str
    description: str
    target_kinds: frozenset[str]
    mutating: bool
    revertible: bool
    destructive: bool
    params_schema: Mapping[str, Any]


@dataclass(frozen=True)
class ProbeDescription:
    name: str
    description: str
    params_schema: Mapping[str, Any]


class Registry:
    """Maps names to action and probe classes."""

    def __init__(self) -> None:
        self._actions: dict[str, ActionClass] = {}
        self._probes: dict[str, ProbeClass] = {}
        self._resolvers: dict[tuple[str, str], TargetResolver] = {}
        self._sweepers: list[Sweeper] = []
        self._connectors: dict[str, context.ConnectionFactory] = {}
        self._opt_in: NamespaceOptIn | None = None

    def register_resolver(self, resolver: TargetResolver) -> None:
        """Make `resolver` the one for each (provider, kind) it declares."""
        for kind in resolver.kinds:
            self._resolvers[(resolver.provider, kind)] = resolver

    def resolver(self, *, provider: str, kind: str) -> TargetResolver:
        try:
            return self._resolvers[(provider, kind)]
        except KeyError:
            raise errors.RegistryError(
                f"no resolver for {provider} targets of kind {kind!r} is registered"
            ) from None

    def register_sweeper(self, sweeper: Sweeper) -> None:
        self._sweepers.append(sweeper)

    def sweepers(self) -> list[Sweeper]:
        return list(self._sweepers)

    def register_namespace_opt_in(self, finder: NamespaceOptIn) -> None:
        """How to tell which Kubernetes namespaces opted in to drills (the provider knows)."""
        self._opt_in = finder

    def namespace_opt_in(self) -> NamespaceOptIn | None:
        return self._opt_in

    def register_connector(self, provider: str, factory: context.ConnectionFactory) -> None:
        """How to open `provider`'s connection for an Environment (called lazily per run)."""
        self._connectors[provider] = factory

    def connectors(self) -> Mapping[str, context.ConnectionFactory]:
        return dict(self._connectors)

    def register_action(self, cls: ActionClass) -> ActionClass:
        self._check_common(cls, kind="action")
        if not isinstance(getattr(cls, "target_kinds", None), frozenset):
            raise errors.RegistryError(
                f"action {cls.__qualname__}: target_kinds must be a frozenset"
            )
        if cls.revertible and not cls.mutating:
            raise errors.RegistryError(
                f"action {cls.name}: revertible=True needs mutating=True (nothing to revert)"
            )
        self._actions[cls.name] = cls
        return cls

    def register_probe(self, cls: ProbeClass) -> ProbeClass:
        self._check_common(cls, kind="probe")
        self._probes[cls.name] = cls
        return cls

    def register(self, *classes: ActionClass | ProbeClass) -> None:
        """Register action and probe classes, whichever each is."""
        for cls in classes:
            if issubclass(cls, Action):
                self.register_action(cls)
            elif issubclass(cls, Probe):
                self.register_probe(cls)
            else:
                raise errors.RegistryError(f"{cls!r} is neither an Action nor a Probe subclass")

    def _check_common(self, cls: type[Any], *, kind: str) -> None:
        where = f"{kind} {cls.__qualname__}"
        if inspect.isabstract(cls):
            raise errors.RegistryError(f"{where} is abstract: implement every method first")
        for attribute in ("name", "params_model", "description"):
            if not hasattr(cls, attribute):
                raise errors.RegistryError(f"{where}: missing class attribute {attribute!r}")
        name = cls.name
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
            raise errors.RegistryError(
                f"{where}: name {name!r} must be dotted lower-case, like 'kubernetes.nodes.drain'"
            )
        model = cls.params_model
        if not (isinstance(model, type) and issubclass(model, pydantic.BaseModel)):
            raise errors.RegistryError(f"{where}: params_model must be a pydantic model class")
        if name in self._actions or name in self._probes:
            raise errors.RegistryError(f"{where}: the name {name!r} is already registered")

    def get_action(self, name: str) -> ActionClass:
        try:
            return self._actions[name]
        except KeyError:
            raise errors.UnknownAction(name, known=sorted(self._actions)) from None

    def get_probe(self, name: str) -> ProbeClass:
        try:
            return self._probes[name]
        except KeyError:
            raise errors.UnknownProbe(name, known=sorted(self._probes)) from None

    def actions(self) -> list[ActionClass]:
        return [self._actions[name] for name in sorted(self._actions)]

    def probes(self) -> list[ProbeClass]:
        return [self._probes[name] for name in sorted(self._probes)]

    def describe_actions(self) -> list[ActionDescription]:
        return [
            ActionDescription(
                name=cls.name,
                description=cls.description,
                target_kinds=cls.target_kinds,
                mutating=cls.mutating,
                revertible=cls.revertible,
                destructive=cls.destructive,
                params_schema=cls.params_model.model_json_schema(),
            )
            for cls in self.actions()
        ]

    def describe_probes(self) -> list[ProbeDescription]:
        return [
            ProbeDescription(
                name=cls.name,
                description=cls.description,
                params_schema=cls.params_model.model_json_schema(),
            )
            for cls in self.probes()
        ]

    def catalog(self) -> catalogs.Catalog:
        """What the scenario linter needs to know about every registered action and probe."""
        return catalogs.Catalog.of(
            actions=[
                catalogs.ActionInfo(
                    name=cls.name,
                    mutating=cls.mutating,
                    revertible=cls.revertible,
                    destructive=cls.destructive,
                    params=cls.params_model,
                    target_kinds=cls.target_kinds,
                )
                for cls in self.actions()
            ],
            probes=[
                catalogs.ProbeInfo(name=cls.name, params=cls.params_model) for cls in self.probes()
            ],
        )


def default_registry(extra: Iterable[ActionClass | ProbeClass] = ()) -> Registry:
    """A fresh registry with only `extra` registered: no provider, no probe.

    The built-in providers are wired by `orchestrator.providers.builtin.registry_with_builtins()`
    (core modules never import a provider); tests use this one to register their own fakes.
    """
    registry = Registry()
    registry.register(*extra)
    return registry
