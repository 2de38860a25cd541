"""Probes: the built-in, provider-neutral steady-state checks (`http`, `prometheus.query`).

Invariants:
- A probe only reads. An unhealthy answer, a timeout or a refused connection is a failing
  `ProbeResult`, never an exception; a probe raises (`ProviderPermanent`) only when it cannot
  run at all (no Prometheus URL configured).
- Parameters are checked when parsed: URLs must be http(s), status specs and JSON paths must
  be well formed, a threshold needs both `op` and `value`. Nothing is evaluated as code.
- Timeouts (`timeout`, defaulting to the probe's own, injected by the observer) are scaled by
  the run's time scale, with a floor of `MIN_TIMEOUT_S`.
- Recorded values are JSON (Prometheus sample values are kept as the text the API sent,
  so `NaN` and `+Inf` survive the journal).
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import operator
import re
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Annotated, ClassVar

import httpx
import pydantic
from pydantic import alias_generators

from orchestrator import errors, mutations, registry
from scenarios import quantities

MIN_TIMEOUT_S = 0.1
"""No probe waits less than this for an answer, however small the time scale."""

DEFAULT_TIMEOUT = quantities.Duration(2.0)
"""The timeout when neither the probe's `with:` nor the observer gives one."""

MAX_RECORDED_SAMPLES = 20
"""Prometheus samples kept in a result's value (all are judged)."""


def _now() -> datetime:
    return datetime.now(UTC)


def scaled_timeout(timeout: quantities.Duration | None, time_scale: float) -> float:
    """Seconds to wait for an answer: `timeout` (or the default), at least the floor.

    Not shrunk by the time scale: the time scale compresses the drill's waits and
    intervals, but an endpoint answers no faster because the drill runs faster.
    """
    del time_scale
    return max((timeout or DEFAULT_TIMEOUT).seconds, MIN_TIMEOUT_S)


class _Params(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(
        extra="forbid",
        frozen=True,
        alias_generator=alias_generators.to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
    )


# ---- values: URLs, status specs, JSON paths --------------------------------------------------

_URL = re.compile(r"https?://[^\s/?#]+(?:[/?#]\S*)?", re.IGNORECASE)


def _http_url(value: str) -> str:
    if not _URL.fullmatch(value.strip()):
        scheme = value.split(":", 1)[0] if ":" in value else ""
        why = f"scheme {scheme!r} is not allowed" if scheme and "//" in value else "malformed"
        raise ValueError(
            f"'{value}' is not an http(s) URL ({why}); write e.g. 'http://checkout/healthz'"
        )
    return value.strip()


HttpUrl = Annotated[str, pydantic.AfterValidator(_http_url)]

_STATUS_RANGE = re.compile(r"\s*([1-5]\d\d)\s*(?:-\s*([1-5]\d\d)\s*)?")


@dataclasses.dataclass(frozen=True)
class StatusSpec:
    """Accepted HTTP statuses: `200`, `"200-399"`, or a list of those."""

    ranges: tuple[tuple[int, int], ...]

    def __contains__(self, status: object) -> bool:
        return isinstance(status, int) and any(lo <= status <= hi for lo, hi in self.ranges)

    def __str__(self) -> str:
        return ", ".join(str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in self.ranges)

    @classmethod
    def parse(cls, value: object) -> StatusSpec:
        items = value if isinstance(value, list | tuple) else [value]
        if not items:
            raise ValueError("expectStatus is an empty list; give at least one status")
        return cls(tuple(_status_range(item) for item in items))


def _status_range(item: object) -> tuple[int, int]:
    if isinstance(item, bool):
        raise ValueError(f"expected an HTTP status such as 200 or '200-399', got {item}")
    if isinstance(item, int):
        if not 100 <= item <= 599:
            raise ValueError(f"{item} is not an HTTP status (100-599)")
        return item, item
    if isinstance(item, str):
        match = _STATUS_RANGE.fullmatch(item)
        if match:
            lo = int(match.group(1))
            hi = int(match.group(2) or lo)
            if hi < lo:
                raise ValueError(f"status range '{item}' ends before it starts")
            return lo, hi
    raise ValueError(
        f"expected an HTTP status such as 200, a range such as '200-399' or a list, got "
        f"{quantities.describe(item)}"
    )


StatusSpecValue = Annotated[
    StatusSpec,
    pydantic.PlainValidator(StatusSpec.parse),
    pydantic.PlainSerializer(str),
    pydantic.WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 100, "maximum": 599},
                {"type": "string", "pattern": r"^[1-5]\d\d(-[1-5]\d\d)?$"},
                {
                    "type": "array",
                    "items": {
                        "anyOf": [
                            {"type": "integer"},
                            {"type": "string", "pattern": r"^[1-5]\d\d(-[1-5]\d\d)?$"},
                        ]
                    },
                },
            ],
            "description": "Accepted statuses: 200, '200-399' or a list of those",
        }
    ),
]

_PATH_TOKEN = re.compile(
    r"\.(?P<name>[A-Za-z_][A-Za-z0-9_-]*)"
    r"|\[(?P<index>-?\d+)\]"
    r"|\[(?P<quote>['\"])(?P<key>(?:(?!(?P=quote)).)*)(?P=quote)\]"
)


@dataclasses.dataclass(frozen=True)
class JsonPath:
    """A tiny JSON path: `$.status`, `$.items[0].ready`, `$["odd key"][-1]`. No filters."""

    text: str
    segments: tuple[str | int, ...]

    @classmethod
    def parse(cls, value: object) -> JsonPath:
        if isinstance(value, JsonPath):
            return value
        if not isinstance(value, str) or not value.strip():
            raise ValueError("jsonPath must be text such as '$.status' or '$.items[0].ready'")
        text = value.strip()
        rest = text[1:] if text.startswith("$") else "." + text
        segments: list[str | int] = []
        position = 0
        while position < len(rest):
            match = _PATH_TOKEN.match(rest, position)
            if match is None:
                raise ValueError(
                    f"jsonPath '{text}': cannot read '{rest[position:]}'; use '.name', "
                    "'[0]' or '[\"key\"]' steps, e.g. '$.items[0].ready'"
                )
            if match.group("name") is not None:
                segments.append(match.group("name"))
            elif match.group("index") is not None:
                segments.append(int(match.group("index")))
            else:
                segments.append(match.group("key"))
            position = match.end()
        return cls(text=text, segments=tuple(segments))

    def find(self, document: object) -> tuple[bool, object]:
        """(True, value) when the path exists in `document`, else (False, None)."""
        current = document
        for segment in self.segments:
            if isinstance(segment, int):
                if not isinstance(current, list) or not -len(current) <= segment < len(current):
                    return False, None
                current = current[segment]
            else:
                if not isinstance(current, dict) or segment not in current:
                    return False, None
                current = current[segment]
        return True, current

    def __str__(self) -> str:
        return self.text


JsonPathValue = Annotated[
    JsonPath,
    pydantic.PlainValidator(JsonPath.parse),
    pydantic.PlainSerializer(str),
    pydantic.WithJsonSchema(
        {"type": "string", "description": "A JSON path such as $.status or $.items[0].ready"}
    ),
]


def json_equal(left: object, right: object) -> bool:
    """JSON equality that keeps booleans apart from numbers (`true` is not `1`)."""
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left is right
    if isinstance(left, int | float) and isinstance(right, int | float):
        return left == right
    if isinstance(left, list) and isinstance(right, list | tuple):
        return len(left) == len(right) and all(map(json_equal, left, right))
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(json_equal(left[k], right[k]) for k in left)
    return type(left) is type(right) and left == right


def _json(value: object) -> mutations.JsonValue:
    """`value` if it is JSON, else its text (so a result can always be journalled)."""
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return str(value)
    return value  # type: ignore[return-value]


def _short(value: object, limit: int = 80) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---- http ------------------------------------------------------------------------------------


class HttpMethod(enum.StrEnum):
    """Read-only methods a probe may use."""

    GET = "GET"
    HEAD = "HEAD"
    OPTIONS = "OPTIONS"


class HttpParams(_Params):
    """`with:` of an `http` probe."""

    url: HttpUrl
    method: HttpMethod = HttpMethod.GET
    expect_status: StatusSpecValue = StatusSpec(((200, 200),))
    body_contains: str | None = None
    json_path: JsonPathValue | None = None
    expect_value: pydantic.JsonValue = None
    """With `jsonPath`: the value it must hold (without it, the path must merely exist)."""
    headers: dict[str, str] = pydantic.Field(default_factory=dict)
    verify_tls: bool = True
    timeout: quantities.Duration | None = None

    @pydantic.field_validator("method", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @pydantic.model_validator(mode="after")
    def _check_expect_value(self) -> HttpParams:
        if "expect_value" in self.model_fields_set and self.json_path is None:
            raise ValueError("'expectValue' needs 'jsonPath' (which value should it be?)")
        return self


class HttpProbe(registry.Probe[HttpParams]):
    """An HTTP request whose status (and optionally body or a JSON value) must match."""

    name: ClassVar[str] = "http"
    params_model: ClassVar[type[pydantic.BaseModel]] = HttpParams
    description: ClassVar[str] = (
        "HTTP request: status in expectStatus (200, '200-399', a list), optional bodyContains, "
        "jsonPath with expectValue"
    )

    def check(self, ctx: registry.ProviderContext, *, params: HttpParams) -> registry.ProbeResult:
        timeout = scaled_timeout(params.timeout, ctx.time_scale)
        what = f"{params.method.value} {params.url}"
        started = time.monotonic()
        try:
            with httpx.Client(verify=params.verify_tls, timeout=timeout) as client:
                response = client.request(params.method.value, params.url, headers=params.headers)
        except httpx.TimeoutException:
            return _result(False, None, f"{what}: no answer within {timeout:.2f}s")
        except httpx.HTTPError as exc:
            return _result(False, None, f"{what}: {type(exc).__name__}: {exc}")
        elapsed_ms = round((time.monotonic() - started) * 1000, 1)
        value: dict[str, mutations.JsonValue] = {
            "status": response.status_code,
            "elapsedMs": elapsed_ms,
        }
        if response.status_code not in params.expect_status:
            return _result(
                False,
                value,
                f"{what}: status {response.status_code}, expected {params.expect_status}",
            )
        if params.body_contains is not None and params.body_contains not in response.text:
            return _result(
                False, value, f"{what}: the body does not contain {params.body_contains!r}"
            )
        if params.json_path is not None:
            return _check_json(what, response, params, value)
        return _result(True, value, f"{what}: status {response.status_code}")


def _check_json(
    what: str,
    response: httpx.Response,
    params: HttpParams,
    value: dict[str, mutations.JsonValue],
) -> registry.ProbeResult:
    path = params.json_path
    assert path is not None
    try:
        document = response.json()
    except ValueError:
        return _result(False, value, f"{what}: the body is not JSON, so {path} cannot be read")
    found, got = path.find(document)
    if not found:
        return _result(False, value, f"{what}: {path} is not in the body")
    value = {**value, "json": _json(got)}
    if "expect_value" in params.model_fields_set and not json_equal(got, params.expect_value):
        return _result(
            False,
            value,
            f"{what}: {path} is {_short(got)}, expected {_short(params.expect_value)}",
        )
    return _result(True, value, f"{what}: status {response.status_code}, {path} = {_short(got)}")


def _result(ok: bool, value: mutations.JsonValue, message: str) -> registry.ProbeResult:
    return registry.ProbeResult(ok=ok, value=value, message=message, at=_now())


# ---- prometheus.query ------------------------------------------------------------------------


class Comparison(enum.StrEnum):
    """How each sample is compared with `value`."""

    LT = "<"
    LE = "<="
    GT = ">"
    GE = ">="
    EQ = "=="
    NE = "!="

    @property
    def test(self) -> Callable[[float, float], bool]:
        return _OPERATORS[self]


_OPERATORS: Mapping[Comparison, Callable[[float, float], bool]] = {
    Comparison.LT: operator.lt,
    Comparison.LE: operator.le,
    Comparison.GT: operator.gt,
    Comparison.GE: operator.ge,
    Comparison.EQ: operator.eq,
    Comparison.NE: operator.ne,
}


class PrometheusParams(_Params):
    """`with:` of a `prometheus.query` probe."""

    query: Annotated[str, pydantic.StringConstraints(min_length=1)]
    url: HttpUrl | None = None
    """Prometheus base URL; default: the environment's `spec.prometheus.url`."""
    op: Comparison | None = None
    value: float | None = None
    empty_ok: bool = False
    timeout: quantities.Duration | None = None

    @pydantic.model_validator(mode="after")
    def _threshold(self) -> PrometheusParams:
        if (self.op is None) != (self.value is None):
            raise ValueError("give both 'op' and 'value' (e.g. op: '<', value: 0.05), or neither")
        return self


@dataclasses.dataclass(frozen=True)
class _Sample:
    labels: Mapping[str, str]
    raw: str

    @property
    def number(self) -> float:
        try:
            return float(self.raw)
        except ValueError:
            return math.nan

    def __str__(self) -> str:
        shown = ",".join(f'{k}="{v}"' for k, v in sorted(self.labels.items()))
        return f"{{{shown}}} = {self.raw}"


def query_endpoint(base: str) -> str:
    """The instant-query endpoint under a Prometheus base URL."""
    trimmed = base.rstrip("/")
    return trimmed if trimmed.endswith("/api/v1/query") else f"{trimmed}/api/v1/query"


class PrometheusQueryProbe(registry.Probe[PrometheusParams]):
    """An instant PromQL query; every sample must pass `op value` (no samples: a failure)."""

    name: ClassVar[str] = "prometheus.query"
    params_model: ClassVar[type[pydantic.BaseModel]] = PrometheusParams
    description: ClassVar[str] = (
        "Prometheus instant query; every sample must satisfy 'op value' "
        "(empty result fails unless emptyOk)"
    )

    def check(
        self, ctx: registry.ProviderContext, *, params: PrometheusParams
    ) -> registry.ProbeResult:
        base = params.url
        if base is None:
            access = ctx.environment.spec.prometheus
            if access is None:
                raise errors.ProviderPermanent(
                    f"probe prometheus.query: environment {ctx.environment.metadata.name} has no "
                    "spec.prometheus.url; set it, or give 'url' in the probe's with:"
                )
            base = access.url
        endpoint = query_endpoint(base)
        timeout = scaled_timeout(params.timeout, ctx.time_scale)
        what = f"query `{params.query}`"
        try:
            with httpx.Client(timeout=timeout) as client:
                response = client.get(endpoint, params={"query": params.query})
        except httpx.TimeoutException:
            return _result(False, None, f"{what}: Prometheus gave no answer within {timeout:.2f}s")
        except httpx.HTTPError as exc:
            return _result(False, None, f"{what}: cannot reach Prometheus at {endpoint}: {exc}")
        parsed = _parse_answer(response)
        if isinstance(parsed, str):
            return _result(False, None, f"{what}: {parsed}")
        return _judge(what, parsed, params)


def _parse_answer(response: httpx.Response) -> list[_Sample] | str:
    """The samples of an instant-query answer, or why it cannot be read."""
    try:
        body = response.json()
    except ValueError:
        return f"Prometheus answered {response.status_code} with a body that is not JSON"
    if not isinstance(body, dict):
        return f"Prometheus answered {response.status_code} with an unexpected body"
    if body.get("status") != "success":
        error = body.get("error") or "no reason given"
        error_type = body.get("errorType") or "error"
        return f"Prometheus refused the query ({response.status_code} {error_type}): {error}"
    data = body.get("data")
    if not isinstance(data, dict):
        return "Prometheus answered without 'data'"
    kind, result = data.get("resultType"), data.get("result")
    if kind == "scalar" and isinstance(result, list) and len(result) == 2:
        return [_Sample(labels={}, raw=str(result[1]))]
    if kind != "vector" or not isinstance(result, list):
        return f"the query returned a {kind or 'missing'} result; use a query returning a vector"
    samples: list[_Sample] = []
    for item in result:
        if not isinstance(item, dict):
            return "Prometheus sent a malformed sample"
        metric, value = item.get("metric") or {}, item.get("value")
        if not isinstance(value, list) or len(value) != 2 or not isinstance(metric, dict):
            return "Prometheus sent a malformed sample"
        samples.append(
            _Sample(labels={str(k): str(v) for k, v in metric.items()}, raw=str(value[1]))
        )
    return samples


def _judge(what: str, samples: Sequence[_Sample], params: PrometheusParams) -> registry.ProbeResult:
    value: list[mutations.JsonValue] = [
        {"metric": dict(s.labels), "value": s.raw} for s in samples[:MAX_RECORDED_SAMPLES]
    ]
    if not samples:
        if params.empty_ok:
            return _result(True, value, f"{what}: no samples (allowed by emptyOk)")
        return _result(
            False,
            value,
            f"{what}: returned no samples (is the metric scraped? set emptyOk: true if an "
            "empty result is healthy)",
        )
    if params.op is None or params.value is None:
        return _result(True, value, f"{what}: {len(samples)} sample(s)")
    op, limit = params.op, params.value
    failing = [s for s in samples if not op.test(s.number, limit)]
    if failing:
        worst = failing[0]
        more = f" (and {len(failing) - 1} more)" if len(failing) > 1 else ""
        return _result(
            False,
            value,
            f"{what}: sample {worst} is not {op.value} {limit:g}{more}",
        )
    return _result(True, value, f"{what}: all {len(samples)} sample(s) are {op.value} {limit:g}")


def register(reg: registry.Registry) -> None:
    """Register the built-in probes (`http`, `prometheus.query`) in `reg`."""
    reg.register(HttpProbe, PrometheusQueryProbe)


__all__: Sequence[str] = (
    "Comparison",
    "HttpParams",
    "HttpProbe",
    "JsonPath",
    "PrometheusParams",
    "PrometheusQueryProbe",
    "StatusSpec",
    "register",
)
