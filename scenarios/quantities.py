"""Quantities: typed durations (`30s`, `1h30m`), percentages (`50%`) and limits (`2 | "34%"`).

Invariants: a `Duration` is always strictly positive and finite; a `Percent` is always in
(0, 100]; a `Quantity` is a positive integer count or a `Percent`. Each type parses from the
text users write in YAML and prints back in the same canonical form, so values survive a
round-trip through documents, journals and reports unchanged.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import re
from typing import Annotated, Any

import pydantic
from pydantic_core import core_schema

_UNITS: tuple[tuple[str, float], ...] = (
    ("d", 86400.0),
    ("h", 3600.0),
    ("m", 60.0),
    ("s", 1.0),
    ("ms", 0.001),
)
_UNIT_SECONDS = dict(_UNITS)
_UNIT_RANK = {unit: rank for rank, (unit, _) in enumerate(_UNITS)}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|d|h|m|s)")
_DURATION_TEXT = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|d|h|m|s))+")
_PERCENT_TEXT = re.compile(r"(\d+(?:\.\d+)?)\s*%")
_TEMPLATE_TEXT = r"\{\{\s*[A-Za-z_][A-Za-z0-9_]*\s*\}\}"

DURATION_PATTERN = rf"^(?:(?:\d+(?:\.\d+)?(?:ms|d|h|m|s))+|{_TEMPLATE_TEXT})$"
PERCENT_PATTERN = rf"^(?:\d+(?:\.\d+)?%|{_TEMPLATE_TEXT})$"


@dataclasses.dataclass(frozen=True, order=True)
class Duration:
    """A strictly positive span of time, written `500ms`, `30s`, `5m`, `1h30m` or `2d`."""

    seconds: float

    def __post_init__(self) -> None:
        if not math.isfinite(self.seconds) or self.seconds <= 0:
            raise ValueError(f"a duration must be positive, got {self.seconds!r} seconds")

    @classmethod
    def parse(cls, text: str) -> Duration:
        """Parse `1h30m`-style text; raise ValueError with a message a person can act on."""
        raw = text.strip()
        if raw.startswith("-"):
            raise ValueError(f"durations must be positive, got '{text}'")
        if not raw:
            raise ValueError("expected a duration such as '30s', '5m' or '1h30m', got ''")
        if re.fullmatch(r"\d+(?:\.\d+)?", raw):
            raise ValueError(
                f"'{raw}' has no unit; write a duration such as '{raw}s' or '{raw}m'"
                " (units: ms, s, m, h, d)"
            )
        if not _DURATION_TEXT.fullmatch(raw):
            raise ValueError(
                f"'{text}' is not a duration; write e.g. '500ms', '30s', '5m', '1h30m' or '2d'"
            )
        total = 0.0
        last_rank = -1
        for number, unit in _DURATION_PART.findall(raw):
            rank = _UNIT_RANK[unit]
            if rank <= last_rank:
                raise ValueError(
                    f"'{text}': units must appear once each, largest first (e.g. '1h30m')"
                )
            last_rank = rank
            total += float(number) * _UNIT_SECONDS[unit]
        if total <= 0:
            raise ValueError(f"durations must be positive, got '{text}'")
        return cls(round(total, 6))

    @classmethod
    def of(cls, delta: datetime.timedelta) -> Duration:
        """The duration of a positive timedelta."""
        return cls(delta.total_seconds())

    @property
    def timedelta(self) -> datetime.timedelta:
        return datetime.timedelta(seconds=self.seconds)

    def scaled(self, factor: float) -> Duration:
        """This duration multiplied by a positive factor (an environment's `timeScale`)."""
        return Duration(self.seconds * factor)

    def __str__(self) -> str:
        millis = round(self.seconds * 1000)
        if not math.isclose(millis / 1000, self.seconds, rel_tol=0, abs_tol=1e-9) or millis == 0:
            return f"{self.seconds:g}s"
        parts: list[str] = []
        for unit, seconds in _UNITS:
            size = round(seconds * 1000)
            count, millis = divmod(millis, size)
            if count:
                parts.append(f"{count}{unit}")
        return "".join(parts)

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: type[Any], handler: pydantic.GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            _validate_duration,
            serialization=core_schema.plain_serializer_function_ser_schema(str),
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: pydantic.GetJsonSchemaHandler
    ) -> dict[str, Any]:
        return {
            "type": "string",
            "pattern": DURATION_PATTERN,
            "description": "A positive duration: 500ms, 30s, 5m, 1h30m, 2d",
            "examples": ["30s", "5m", "1h30m"],
        }


def _validate_duration(value: object) -> Duration:
    if isinstance(value, Duration):
        return value
    if isinstance(value, datetime.timedelta):
        return Duration.of(value)
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"expected a duration such as '30s' or '5m', got {_describe(value)}")
    if isinstance(value, int | float):
        if value <= 0:
            raise ValueError(f"durations must be positive, got {value}")
        raise ValueError(
            f"{value} has no unit; write a duration such as '{value}s' or '{value}m'"
            " (units: ms, s, m, h, d)"
        )
    return Duration.parse(value)


@dataclasses.dataclass(frozen=True, order=True)
class Percent:
    """A share of a whole, written `50%`; always in (0, 100]."""

    value: float

    def __post_init__(self) -> None:
        if not math.isfinite(self.value) or not 0 < self.value <= 100:
            raise ValueError(f"a percentage must be above 0% and at most 100%, got {self.value}%")

    @classmethod
    def parse(cls, text: str) -> Percent:
        match = _PERCENT_TEXT.fullmatch(text.strip())
        if match is None:
            if text.strip().startswith("-"):
                raise ValueError(f"percentages must be above 0%, got '{text}'")
            raise ValueError(f"'{text}' is not a percentage; write e.g. '50%'")
        value = float(match.group(1))
        if value <= 0:
            raise ValueError(f"percentages must be above 0%, got '{text}'")
        if value > 100:
            raise ValueError(f"percentages cannot exceed 100%, got '{text}'")
        return cls(value)

    @property
    def fraction(self) -> float:
        return self.value / 100

    def of(self, total: int) -> int:
        """The whole number of items this share allows out of `total` (rounded down)."""
        return math.floor(total * self.value / 100 + 1e-9)

    def __str__(self) -> str:
        return f"{self.value:g}%"

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: type[Any], handler: pydantic.GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            _validate_percent,
            serialization=core_schema.plain_serializer_function_ser_schema(str),
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: pydantic.GetJsonSchemaHandler
    ) -> dict[str, Any]:
        return {
            "type": "string",
            "pattern": PERCENT_PATTERN,
            "description": "A percentage above 0% and at most 100%, e.g. 50%",
        }


def _validate_percent(value: object) -> Percent:
    if isinstance(value, Percent):
        return value
    if isinstance(value, str):
        return Percent.parse(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError(f"write percentages with a '%' sign, e.g. '{value}%'")
    raise ValueError(f"expected a percentage such as '50%', got {_describe(value)}")


def _validate_quantity(value: object) -> int | Percent:
    if isinstance(value, Percent):
        return value
    if isinstance(value, bool):
        raise ValueError(f"expected a count such as 2 or a percentage such as '34%', got {value}")
    if isinstance(value, int):
        if value < 1:
            raise ValueError(f"a count must be at least 1, got {value}")
        return value
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"-?\d+", text):
            return _validate_quantity(int(text))
        return Percent.parse(text)
    raise ValueError(
        f"expected a count such as 2 or a percentage such as '34%', got {_describe(value)}"
    )


def _serialize_quantity(value: int | Percent) -> int | str:
    return value if isinstance(value, int) else str(value)


Quantity = Annotated[
    int | Percent,
    pydantic.PlainValidator(_validate_quantity),
    pydantic.PlainSerializer(_serialize_quantity),
    pydantic.WithJsonSchema(
        {
            "oneOf": [
                {"type": "integer", "minimum": 1},
                {"type": "string", "pattern": PERCENT_PATTERN},
            ],
            "description": "A positive count (2) or a share of the candidates ('34%')",
        }
    ),
]
"""A limit: a positive count or a `Percent` of the candidates."""


def _describe(value: object) -> str:
    """How a value reads in an error message: its YAML kind, and the value when short."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int):
        return f"an integer ({value})"
    if isinstance(value, float):
        return f"a number ({value:g})"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"a string ('{shown}')"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def describe(value: object) -> str:
    """Public form of the value description used in error messages."""
    return _describe(value)
