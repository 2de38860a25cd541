"""Parameters: the types a scenario parameter may have and how supplied values are coerced.

Invariants: a coerced value always has the Python type its declaration names (an
`integer` is an `int`, never a `bool` or a `str`; a `duration` is a `quantities.Duration`);
strings from the command line (`--set maxNodes=2`) are parsed, everything else must already
have the right YAML type. Coercion raises `ValueError` with a message a person can act on.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Sequence
from typing import TypeAlias

from scenarios import quantities

ParamScalar: TypeAlias = str | int | float | bool | quantities.Duration | quantities.Percent
ParamValue: TypeAlias = ParamScalar | tuple[ParamScalar, ...]
"""A parameter value after coercion."""

ParamInput: TypeAlias = (
    str | int | float | bool | quantities.Duration | quantities.Percent | Sequence[ParamScalar]
)
"""A parameter value as supplied: typed, or a string to be parsed (e.g. from `--set`)."""

NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})


class ParamType(enum.StrEnum):
    """The declared type of a scenario parameter."""

    STRING = "string"
    INTEGER = "integer"
    NUMBER = "number"
    BOOLEAN = "boolean"
    DURATION = "duration"
    PERCENT = "percent"
    LIST = "list"


def is_name(text: str) -> bool:
    """Whether `text` can name a parameter (a letter or `_`, then letters, digits, `_`)."""
    return re.fullmatch(NAME_PATTERN, text) is not None


def coerce(value: object, *, type_: ParamType, items: ParamType = ParamType.STRING) -> ParamValue:
    """`value` as `type_` (list items as `items`); raise ValueError when it cannot be."""
    if type_ is ParamType.LIST:
        if isinstance(value, str):
            parts = [part.strip() for part in value.split(",")] if value.strip() else []
            return tuple(_coerce_scalar(part, items) for part in parts)
        if isinstance(value, list | tuple):
            return tuple(_coerce_scalar(item, items) for item in value)
        raise ValueError(
            f"expected a list (or comma-separated text), got {quantities.describe(value)}"
        )
    return _coerce_scalar(value, type_)


def _coerce_scalar(value: object, type_: ParamType) -> ParamScalar:
    if type_ is ParamType.LIST:
        raise ValueError("lists of lists are not supported")
    if type_ is ParamType.STRING:
        if isinstance(value, str):
            return value
    elif type_ is ParamType.INTEGER:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and re.fullmatch(r"\s*[-+]?\d+\s*", value):
            return int(value)
    elif type_ is ParamType.NUMBER:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                pass
            else:
                if math.isfinite(number):
                    return number
    elif type_ is ParamType.BOOLEAN:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
    elif type_ is ParamType.DURATION:
        if isinstance(value, quantities.Duration):
            return value
        if isinstance(value, str):
            return quantities.Duration.parse(value)
    elif type_ is ParamType.PERCENT:
        if isinstance(value, quantities.Percent):
            return value
        if isinstance(value, str):
            return quantities.Percent.parse(value)
    raise ValueError(f"expected {_article(type_)}, got {quantities.describe(value)}")


def _article(type_: ParamType) -> str:
    return {
        ParamType.STRING: "a string",
        ParamType.INTEGER: "an integer",
        ParamType.NUMBER: "a number",
        ParamType.BOOLEAN: "a boolean (true or false)",
        ParamType.DURATION: "a duration such as '30s' or '5m'",
        ParamType.PERCENT: "a percentage such as '50%'",
        ParamType.LIST: "a list",
    }[type_]


def as_yaml(value: ParamScalar) -> str | int | float | bool:
    """The YAML value a parameter stands for when it is a whole scalar (`"{{ x }}"`)."""
    if isinstance(value, quantities.Duration | quantities.Percent):
        return str(value)
    return value


def as_text(value: ParamScalar) -> str:
    """How a parameter reads when embedded in a longer string (`"zone {{ zone }}"`)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def placeholder(name: str, *, type_: ParamType, items: ParamType) -> ParamValue:
    """A stand-in of the right type, used to check a scenario before real values are bound.

    A string stand-in is the parameter's name in lowercase, which passes the name and
    reference checks a real value would face.
    """
    samples: dict[ParamType, ParamScalar] = {
        ParamType.STRING: name.lower(),
        ParamType.INTEGER: 1,
        ParamType.NUMBER: 1.0,
        ParamType.BOOLEAN: False,
        ParamType.DURATION: quantities.Duration(1.0),
        ParamType.PERCENT: quantities.Percent(100.0),
    }
    if type_ is ParamType.LIST:
        return (samples.get(items, name.lower()),)
    return samples[type_]
