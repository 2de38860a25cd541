"""Routing: the notifications file (sinks, routes, delivery policy) and which sinks get a notice.

The file is YAML, named by `STORMDRILL_NOTIFICATIONS` (`NotifySettings`); every field is
camelCase and unknown fields are errors placed at file:line:column with the field path, as
every Stormdrill document's are (`NotificationsInvalid`):

    links: {baseUrl: https://stormdrill.example.com}   # report links in `finished` etc.
    upcoming: {lead: 15m}                                # T-15 min notices of schedules
    delivery: {maxAttempts: 8, backoff: 2s, maxBackoff: 10m, timeout: 10s}
    sinks:
      - {name: team-hook, type: webhook, url: https://hooks.example.com/x, secretEnv: HOOK_SECRET}
      - {name: paging, type: slack, urlEnv: SLACK_PAGING_URL}
    routes:
      - match: {kinds: [rollback-failed]}
        sinks: [paging]
      - match: {teams: [payments], minSeverity: warning}
        sinks: [team-hook]

A sink's URL is `url` or, for URLs that carry a token (Slack's), the variable `urlEnv`;
`secretEnv` names the variable holding a webhook's HMAC secret. Secrets are read when the
file is loaded (`load(path, env)`), kept as `pydantic.SecretStr`, and never logged.

A route matches a notice when every condition it sets holds: `kinds` (any of), `minSeverity`
(at least), `teams` / `services` (any of the notice's CMDB owners / services; a name
matches the canonical ref `group:default/payments` or its short form `payments`),
`environments` (any of). A notice goes to the union of the sinks of every matching route,
each sink once. A notice with no team (a skipped fire has no plan) never matches a route
that names teams.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import urllib.parse
from collections.abc import Mapping, Sequence
from pathlib import Path

import pydantic
import pydantic_settings

from drills import settings_sources
from drills.service.notify import notices
from scenarios import diagnostics, errors, models, quantities, reading

ENV_VAR = "STORMDRILL_NOTIFICATIONS"


class NotificationsInvalid(errors.StormdrillError):
    """The notifications file cannot be used; `problems` place each mistake."""

    def __init__(self, problems: Sequence[errors.Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class NotifySettings(settings_sources.PassedIn):
    """`STORMDRILL_NOTIFICATIONS`: the routing file (unset: no notifications are sent).

    `STORMDRILL_NOTIFICATIONS_INTERVAL_S` (default 5): how often the lease holder collects
    and dispatches. Built by `NotifySettings.from_env(os.environ)`; nothing reads the
    environment at import time.
    """

    model_config = pydantic_settings.SettingsConfigDict(
        env_prefix="STORMDRILL_", extra="ignore", frozen=True
    )

    notifications: Path | None = None
    notifications_interval_s: float = pydantic.Field(default=5.0, gt=0)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> NotifySettings:
        """The settings from `env`'s `STORMDRILL_NOTIFICATIONS*` variables."""
        values = {
            name: env[f"STORMDRILL_{name.upper()}"]
            for name in cls.model_fields
            if f"STORMDRILL_{name.upper()}" in env
        }
        return cls.model_validate(values)


# ---- the file's models ------------------------------------------------------------------


class SinkType(enum.StrEnum):
    WEBHOOK = "webhook"
    SLACK = "slack"


class SinkSpec(models.Model):
    name: str = pydantic.Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][\w.-]*$")
    type: SinkType
    url: str | None = None
    url_env: str | None = None
    secret_env: str | None = None

    @pydantic.model_validator(mode="after")
    def _one_url(self) -> SinkSpec:
        if (self.url is None) == (self.url_env is None):
            raise ValueError(f"sink {self.name!r}: set exactly one of url or urlEnv")
        if self.url is not None and not self.url.startswith(("http://", "https://")):
            raise ValueError(f"sink {self.name!r}: url must start with http:// or https://")
        return self


class Match(models.Model):
    kinds: tuple[notices.Kind, ...] = ()
    min_severity: notices.Severity | None = None
    teams: tuple[str, ...] = ()
    services: tuple[str, ...] = ()
    environments: tuple[str, ...] = ()


class RouteSpec(models.Model):
    match: Match = Match()
    sinks: tuple[str, ...] = pydantic.Field(min_length=1)


class Links(models.Model):
    base_url: str | None = None
    """Where `serve` answers (`https://stormdrill.example.com`): report links are built on it."""


class Upcoming(models.Model):
    lead: quantities.Duration = quantities.Duration(900.0)


class Delivery(models.Model):
    max_attempts: int = pydantic.Field(default=8, ge=1, le=100)
    backoff: quantities.Duration = quantities.Duration(2.0)
    """The delay before the first retry; each later one doubles it (with jitter)."""
    max_backoff: quantities.Duration = quantities.Duration(600.0)
    timeout: quantities.Duration = quantities.Duration(10.0)
    batch: int = pydantic.Field(default=50, ge=1, le=1000)
    """How many due deliveries one dispatch pass claims."""


class NotificationsFile(models.Model):
    links: Links = Links()
    upcoming: Upcoming = Upcoming()
    delivery: Delivery = Delivery()
    sinks: tuple[SinkSpec, ...] = ()
    routes: tuple[RouteSpec, ...] = ()


# ---- what the rest of the package uses --------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Sink:
    """A sink with its URL and secret resolved (never printed: `repr` hides them)."""

    name: notices.SinkName
    type: SinkType
    url: pydantic.SecretStr
    secret: pydantic.SecretStr | None = None


@dataclasses.dataclass(frozen=True)
class Route:
    kinds: frozenset[notices.Kind] = frozenset()
    min_severity: notices.Severity | None = None
    teams: frozenset[str] = frozenset()
    services: frozenset[str] = frozenset()
    environments: frozenset[str] = frozenset()
    sinks: tuple[notices.SinkName, ...] = ()

    def matches(self, notice: notices.Notice) -> bool:
        if self.kinds and notice.kind not in self.kinds:
            return False
        if self.min_severity is not None and notice.severity.rank < self.min_severity.rank:
            return False
        if self.teams and not self.teams & _names(notice.teams):
            return False
        if self.services and not self.services & _names(notice.services):
            return False
        return not (self.environments and notice.environment not in self.environments)


@dataclasses.dataclass(frozen=True)
class DeliveryPolicy:
    max_attempts: int = 8
    backoff_s: float = 2.0
    max_backoff_s: float = 600.0
    timeout_s: float = 10.0
    batch: int = 50


@dataclasses.dataclass(frozen=True)
class Config:
    """The loaded notifications file: what collecting and dispatching need."""

    sinks: Mapping[notices.SinkName, Sink] = dataclasses.field(default_factory=dict)
    routes: tuple[Route, ...] = ()
    delivery: DeliveryPolicy = DeliveryPolicy()
    base_url: str | None = None
    upcoming_lead_s: float = 900.0
    source: str = ""
    """The file it was read from (for messages)."""

    def sinks_for(self, notice: notices.Notice) -> tuple[notices.SinkName, ...]:
        """Every sink a matching route names, each once, in the order routes name them."""
        chosen: dict[notices.SinkName, None] = {}
        for route in self.routes:
            if route.matches(notice):
                chosen.update(dict.fromkeys(route.sinks))
        return tuple(chosen)

    def report_url(self, run_id: str) -> str | None:
        if self.base_url is None:
            return None
        return f"{self.base_url.rstrip('/')}/api/v1/runs/{run_id}/report"

    def secrets(self) -> tuple[str, ...]:
        """Every URL and secret of the sinks (what redaction masks in errors and logs)."""
        found: list[str] = []
        for sink in self.sinks.values():
            url = sink.url.get_secret_value()
            parts = urllib.parse.urlsplit(url)
            found.append(url)
            found.extend(part for part in (parts.path, parts.query) if len(part) > 1)
            if sink.secret is not None:
                found.append(sink.secret.get_secret_value())
        return tuple(found)


def _names(refs: Sequence[str]) -> frozenset[str]:
    """Each ref and its short forms: `group:default/payments` -> also `default/payments`,
    `payments`."""
    names: set[str] = set()
    for ref in refs:
        names.add(ref)
        _, _, rest = ref.rpartition(":")
        names.add(rest)
        namespace, _, name = rest.rpartition("/")
        if namespace in ("", "default"):
            names.add(name)
    return frozenset(names)


def load(path: Path, env: Mapping[str, str] | None = None) -> Config:
    """Read and check the notifications file; `NotificationsInvalid` placing every mistake.

    Variables named by `urlEnv` / `secretEnv` are read from `env` (default `os.environ`)
    now: one missing is a mistake of the file's, placed at the line naming it.
    """
    found = reading.read_file(path)
    if found.problems:
        raise NotificationsInvalid(found.problems)
    if len(found.trees) != 1:
        raise NotificationsInvalid(
            [
                errors.Problem(
                    file=str(path), line=1, column=1, field="", message="expected one document"
                )
            ]
        )
    tree = found.trees[0]
    try:
        model = NotificationsFile.model_validate(tree.data)
    except pydantic.ValidationError as exc:
        raise NotificationsInvalid(
            diagnostics.from_validation(exc, tree=tree, model=NotificationsFile)
        ) from None
    return _config(model, tree=tree, env=os.environ if env is None else env)


def from_settings(settings: NotifySettings, env: Mapping[str, str] | None = None) -> Config | None:
    """The config `settings` name, or None when `STORMDRILL_NOTIFICATIONS` is unset."""
    return None if settings.notifications is None else load(settings.notifications, env)


def _config(
    model: NotificationsFile, *, tree: reading.MarkedTree, env: Mapping[str, str]
) -> Config:
    problems: list[errors.Problem] = []

    def problem(path: reading.TreePath, message: str, hint: str = "") -> None:
        mark = tree.mark_for(path)
        problems.append(
            errors.Problem(
                file=tree.file,
                line=mark.line,
                column=mark.column,
                field=reading.render_path(path),
                message=message,
                hint=hint,
            )
        )

    sinks: dict[notices.SinkName, Sink] = {}
    for index, spec in enumerate(model.sinks):
        name = notices.SinkName(spec.name)
        if name in sinks:
            problem(("sinks", index, "name"), f"sink {spec.name!r} is defined twice")
            continue
        url = spec.url
        if spec.url_env is not None:
            url = env.get(spec.url_env)
            if not url:
                problem(
                    ("sinks", index, "urlEnv"),
                    f"the variable {spec.url_env} is not set",
                    "export it with the sink's URL, or write url: instead",
                )
                continue
        secret = None
        if spec.secret_env is not None:
            value = env.get(spec.secret_env)
            if not value:
                problem(
                    ("sinks", index, "secretEnv"),
                    f"the variable {spec.secret_env} is not set",
                    "export it with the webhook's shared secret",
                )
                continue
            secret = pydantic.SecretStr(value)
        assert url is not None
        sinks[name] = Sink(name=name, type=spec.type, url=pydantic.SecretStr(url), secret=secret)
    defined = {spec.name for spec in model.sinks}
    routes: list[Route] = []
    for index, route in enumerate(model.routes):
        for position, sink in enumerate(route.sinks):
            if sink not in defined:
                hint = models.did_you_mean(sink, tuple(sorted(defined))) or (
                    f"defined sinks: {', '.join(sorted(defined)) or 'none'}"
                )
                problem(("routes", index, "sinks", position), f"no sink named {sink!r}", hint)
        routes.append(
            Route(
                kinds=frozenset(route.match.kinds),
                min_severity=route.match.min_severity,
                teams=frozenset(route.match.teams),
                services=frozenset(route.match.services),
                environments=frozenset(route.match.environments),
                sinks=tuple(notices.SinkName(s) for s in route.sinks),
            )
        )
    if problems:
        raise NotificationsInvalid(problems)
    delivery = model.delivery
    return Config(
        sinks=sinks,
        routes=tuple(routes),
        delivery=DeliveryPolicy(
            max_attempts=delivery.max_attempts,
            backoff_s=delivery.backoff.seconds,
            max_backoff_s=delivery.max_backoff.seconds,
            timeout_s=delivery.timeout.seconds,
            batch=delivery.batch,
        ),
        base_url=model.links.base_url,
        upcoming_lead_s=model.upcoming.lead.seconds,
        source=tree.file,
    )
