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
      - {name: ops-mail, type: email, smtp: "smtp.example.com:587", from: stormdrill@example.com,
         to: [ops@example.com], username: stormdrill, passwordEnv: SMTP_PASSWORD}
    routes:
      - match: {kinds: [rollback-failed]}
        sinks: [paging]
      - match: {teams: [payments], minSeverity: warning}
        sinks: [team-hook]

A sink's URL is `url` or, for URLs that carry a token (Slack's), the variable `urlEnv`;
`secretEnv` names the variable holding a webhook's HMAC secret. Secrets are read when the
file is loaded (`load(path, env)`), kept as `pydantic.SecretStr`, and never logged.

An email sink names its server as `smtp: host:port`, `smtp://host:port` (default port 587)
or `smtps://host:port` (TLS from the first byte; default port 465), and `from` and `to`.
`starttls` defaults to true, except for smtps:// and a loopback host (a local relay); a
required STARTTLS the server does not offer fails the delivery. `username` and
`passwordEnv` (both or neither) log in; the password is only ever read from that variable:
a literal `password:` (or one in the address's userinfo) is refused at its line, and so is
a password that would cross the network unencrypted (`starttls: false` to a host that is
not loopback). The resolved `Sink` keeps the server as `url` (`smtp://host:port`, not a
secret), the password as `secret`, and the rest as `email` (`Mailer`).

A route matches a notice when every condition it sets holds: `kinds` (any of), `minSeverity`
(at least), `teams` / `services` (any of the notice's CMDB owners / services; a name
matches the canonical ref `group:default/payments` or its short form `payments`),
`environments` (any of). A notice goes to the union of the sinks of every matching route,
each sink once. A notice with no team (a schedule whose scenario names no CMDB
service) never matches a route that names teams.
"""

from __future__ import annotations

import dataclasses
import email.utils
import enum
import ipaddress
import os
import re
import urllib.parse
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

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
    EMAIL = "email"


_EMAIL_FIELDS = ("smtp", "starttls", "from", "to", "username", "passwordEnv", "password")
_HTTP_FIELDS = ("url", "urlEnv", "secretEnv")


class SinkSpec(models.Model):
    name: str = pydantic.Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][\w.-]*$")
    type: SinkType
    url: str | None = None
    url_env: str | None = None
    secret_env: str | None = None
    smtp: str | None = None
    """email: `host:port`, `smtp://host:port` or `smtps://host:port`."""
    starttls: bool | None = None
    from_: str | None = pydantic.Field(default=None, alias="from")
    to: tuple[str, ...] = ()
    username: str | None = None
    password_env: str | None = None
    password: Any = pydantic.Field(default=None, repr=False, exclude=True)
    """Only so a literal password is refused at its line (never validated, shown or kept)."""

    @pydantic.model_validator(mode="after")
    def _one_url(self) -> SinkSpec:
        if self.type is SinkType.EMAIL:
            return self  # checked by `_email`, each mistake placed at its field
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


class Tls(enum.StrEnum):
    """How an email sink protects its SMTP session."""

    IMPLICIT = "implicit"
    """smtps://: TLS from the first byte."""
    STARTTLS = "starttls"
    """Plain connect, then STARTTLS (required: a server not offering it fails the send)."""
    NONE = "none"
    """No TLS (loopback relays by default, or `starttls: false`)."""


@dataclasses.dataclass(frozen=True)
class Mailer:
    """An email sink's server, TLS, login name and addresses (the password is `Sink.secret`)."""

    host: str
    port: int
    tls: Tls
    sender: str
    """The From header (`Name <addr>` or `addr`); its address is the envelope sender."""
    recipients: tuple[str, ...]
    username: str | None = None


@dataclasses.dataclass(frozen=True)
class Sink:
    """A sink with its URL and secret resolved (never printed: `repr` hides them).

    webhook and slack: `url` is the endpoint, `secret` the HMAC key (webhook). email: `url`
    is the server (`smtp://host:port` or `smtps://host:port`), `secret` the SMTP password,
    `email` the rest.
    """

    name: notices.SinkName
    type: SinkType
    url: pydantic.SecretStr
    secret: pydantic.SecretStr | None = None
    email: Mailer | None = None


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
            if sink.type is SinkType.EMAIL:  # the server's address is not a secret
                if sink.secret is not None:
                    found.append(sink.secret.get_secret_value())
                continue
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


class _Problem(Protocol):
    def __call__(self, path: reading.TreePath, message: str, hint: str = "") -> None: ...


_ADDRESS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")
_LITERAL_PASSWORD = "a password is never written in the notifications file"
_LITERAL_PASSWORD_FIX = "export it in an environment variable and name that with passwordEnv:"
DEFAULT_SMTP_PORT = 587
DEFAULT_SMTPS_PORT = 465


def _given(spec: SinkSpec, field: str) -> bool:
    """Whether the file set `field` (as written in YAML) on this sink."""
    attribute = {"from": "from_"}.get(field, re.sub(r"(?<!^)([A-Z])", r"_\1", field).lower())
    value = getattr(spec, attribute)
    return value not in (None, ())


def is_loopback(host: str) -> bool:
    """Whether `host` is this machine (`localhost`, 127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def mailbox(text: str) -> tuple[str, str] | None:
    """`Name <addr>` or `addr` as (header form, address); None when it is not one address."""
    if any(c in text for c in "\r\n,;"):
        return None
    display, address = email.utils.parseaddr(text)
    if not _ADDRESS.fullmatch(address):
        return None
    return email.utils.formataddr((display, address)), address


def _endpoint(raw: str) -> tuple[bool, str, int]:
    """(implicit TLS, host, port) of an smtp: value; ValueError saying what is wrong."""
    text = raw.strip()
    parts = urllib.parse.urlsplit(text if "://" in text else f"smtp://{text}")
    if parts.scheme not in ("smtp", "smtps"):
        raise ValueError(f"{parts.scheme}:// is not an SMTP address")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError("an SMTP address has no path or query")
    try:
        port = parts.port
    except ValueError:
        raise ValueError("the port is not a number from 1 to 65535") from None
    if not parts.hostname:
        raise ValueError("no host")
    implicit = parts.scheme == "smtps"
    default = DEFAULT_SMTPS_PORT if implicit else DEFAULT_SMTP_PORT
    return implicit, parts.hostname, default if port is None else port


def _email(spec: SinkSpec, *, index: int, env: Mapping[str, str], problem: _Problem) -> Sink | None:
    """The resolved email sink, or None after placing every mistake of it with `problem`."""
    ok = True

    def bad(field: str | reading.TreePath, message: str, hint: str = "") -> None:
        nonlocal ok
        ok = False
        tail = (field,) if isinstance(field, str) else field
        problem(("sinks", index, *(part for part in tail if part != "")), message, hint)

    if spec.password is not None:
        bad("password", _LITERAL_PASSWORD, _LITERAL_PASSWORD_FIX)
    for field in _HTTP_FIELDS:
        if _given(spec, field):
            bad(field, f"an email sink has no {field}", "it sends through smtp: host:port")
    endpoint = None
    if spec.smtp is None:
        bad("", f"sink {spec.name!r}: an email sink needs smtp: host:port")
    else:
        parts = urllib.parse.urlsplit(spec.smtp if "://" in spec.smtp else f"smtp://{spec.smtp}")
        if "@" in parts.netloc:
            bad(
                "smtp",
                "credentials do not belong in the SMTP address",
                "use username: and passwordEnv: (the variable holding the password)",
            )
        else:
            try:
                endpoint = _endpoint(spec.smtp)
            except ValueError as exc:
                bad("smtp", f"{exc}", "write host:port, smtp://host:port or smtps://host:port")
    sender = None
    if spec.from_ is None:
        bad("", f"sink {spec.name!r}: an email sink needs from: (the sender's address)")
    else:
        sender = mailbox(spec.from_)
        if sender is None:
            bad("from", f"{spec.from_!r} is not one email address")
    if not spec.to:
        bad("", f"sink {spec.name!r}: an email sink needs to: [address, ...]")
    recipients: list[str] = []
    for position, text in enumerate(spec.to):
        found = mailbox(text)
        if found is None:
            bad(("to", position), f"{text!r} is not one email address")
        else:
            recipients.append(found[0])
    if (spec.username is None) != (spec.password_env is None):
        missing = "passwordEnv" if spec.password_env is None else "username"
        bad(
            "username" if spec.username is not None else "passwordEnv",
            f"username and passwordEnv go together: {missing} is missing",
        )
    password = None
    if spec.password_env is not None:
        value = env.get(spec.password_env)
        if not value:
            bad(
                "passwordEnv",
                f"the variable {spec.password_env} is not set",
                "export it with the SMTP password",
            )
        else:
            password = pydantic.SecretStr(value)
    tls = Tls.NONE
    if endpoint is not None:
        implicit, host, _port = endpoint
        if implicit:
            tls = Tls.IMPLICIT
            if spec.starttls:
                bad(
                    "starttls",
                    "smtps:// is TLS from the first byte: starttls does not apply",
                    "remove starttls, or use smtp:// with starttls: true",
                )
        elif spec.starttls is True or (spec.starttls is None and not is_loopback(host)):
            tls = Tls.STARTTLS
        if tls is Tls.NONE and spec.username is not None and not is_loopback(host):
            bad(
                "starttls",
                f"the password would cross the network to {host} unencrypted",
                "use starttls: true or smtps://",
            )
    if not ok or endpoint is None or sender is None:
        return None
    implicit, host, port = endpoint
    netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return Sink(
        name=notices.SinkName(spec.name),
        type=SinkType.EMAIL,
        url=pydantic.SecretStr(f"{'smtps' if implicit else 'smtp'}://{netloc}"),
        secret=password,
        email=Mailer(
            host=host,
            port=port,
            tls=tls,
            sender=sender[0],
            recipients=tuple(recipients),
            username=spec.username,
        ),
    )


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
        if spec.type is SinkType.EMAIL:
            mailed = _email(spec, index=index, env=env, problem=problem)
            if mailed is not None:
                sinks[name] = mailed
            continue
        stray = [field for field in _EMAIL_FIELDS if _given(spec, field)]
        for field in stray:
            if field == "password":
                problem(("sinks", index, field), _LITERAL_PASSWORD, _LITERAL_PASSWORD_FIX)
                continue
            problem(
                ("sinks", index, field),
                f"{field} is a field of email sinks, not of {spec.type.value} sinks",
                "remove it, or set type: email",
            )
        if stray:
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
