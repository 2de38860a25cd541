"""Selectors: label selectors (string and `LabelSelector` object forms) and field selectors.

Parsing is strict: a malformed selector raises `errors.BadRequest` naming the selector, as the real
API server answers 400. Matching is pure.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from sandbox.kubernetes import errors

_KEY = re.compile(
    r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)
_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


@dataclasses.dataclass(frozen=True)
class Requirement:
    """One label requirement; `operator` is one of = != in notin exists !exists gt lt."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key, "")
        match self.operator:
            case "exists":
                return present
            case "!exists":
                return not present
            case "=" | "in":
                return present and value in self.values
            case "!=" | "notin":
                return not present or value not in self.values
            case "gt" | "lt":
                if not present:
                    return False
                try:
                    number, bound = int(value), int(self.values[0])
                except ValueError:
                    return False
                return number > bound if self.operator == "gt" else number < bound
        return False


@dataclasses.dataclass(frozen=True)
class LabelSelector:
    """A conjunction of requirements; the empty selector matches everything."""

    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(req.matches(labels) for req in self.requirements)


def _split_top_level(text: str) -> list[str]:
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [part.strip() for part in parts if part.strip()]


def _bad(selector: str, why: str) -> errors.BadRequest:
    return errors.BadRequest(
        f"unable to parse requirement: invalid label selector {selector!r}: {why}"
    )


def _check_key(selector: str, key: str) -> str:
    if not _KEY.match(key):
        raise _bad(selector, f"invalid label key {key!r}")
    return key


def _check_value(selector: str, value: str) -> str:
    if len(value) > 63 or not _VALUE.match(value):
        raise _bad(selector, f"invalid label value {value!r}")
    return value


_SET_FORM = re.compile(r"^(?P<key>\S+)\s+(?P<op>in|notin)\s*\((?P<values>[^()]*)\)$")
_EQ_FORM = re.compile(r"^(?P<key>[^=!<>\s]+)\s*(?P<op>==|=|!=|<|>)\s*(?P<value>\S*)$")


def _parse_requirement(selector: str, text: str) -> Requirement:
    set_form = _SET_FORM.match(text)
    if set_form:
        values = tuple(
            _check_value(selector, v.strip()) for v in set_form["values"].split(",") if v.strip()
        )
        if not values:
            raise _bad(selector, f"{text!r} needs at least one value")
        return Requirement(_check_key(selector, set_form["key"]), set_form["op"], values)
    eq_form = _EQ_FORM.match(text)
    if eq_form:
        key = _check_key(selector, eq_form["key"])
        op = {"==": "=", "=": "=", "!=": "!=", "<": "lt", ">": "gt"}[eq_form["op"]]
        value = eq_form["value"]
        if op in ("gt", "lt") and not value.lstrip("-").isdigit():
            raise _bad(selector, f"{text!r} needs an integer")
        return Requirement(key, op, (_check_value(selector, value),))
    if text.startswith("!"):
        return Requirement(_check_key(selector, text[1:].strip()), "!exists")
    return Requirement(_check_key(selector, text), "exists")


def parse_label_selector(selector: str) -> LabelSelector:
    """Parse `a=b,c!=d,e in (f,g),h notin (i),!j,k` (the string form used in `labelSelector=`)."""
    return LabelSelector(
        tuple(_parse_requirement(selector, part) for part in _split_top_level(selector))
    )


def from_selector_object(selector: Mapping[str, Any] | None) -> LabelSelector:
    """Build from a `LabelSelector` object (`matchLabels`, `matchExpressions`)."""
    if not selector:
        return LabelSelector()
    requirements = [
        Requirement(str(key), "=", (str(value),))
        for key, value in (selector.get("matchLabels") or {}).items()
    ]
    operators = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!exists"}
    for expression in selector.get("matchExpressions") or []:
        operator = operators.get(str(expression.get("operator")))
        if operator is None:
            raise errors.Invalid(
                f"invalid label selector operator {expression.get('operator')!r}"
                " (use In, NotIn, Exists or DoesNotExist)"
            )
        values = tuple(str(v) for v in expression.get("values") or ())
        requirements.append(Requirement(str(expression.get("key")), operator, values))
    return LabelSelector(tuple(requirements))


def to_selector_string(selector: Mapping[str, Any] | None) -> str:
    """The string form of a `LabelSelector` object (as in `Scale.status.selector`)."""
    parts: list[str] = []
    for req in from_selector_object(selector).requirements:
        match req.operator:
            case "=":
                parts.append(f"{req.key}={req.values[0]}")
            case "in" | "notin":
                parts.append(f"{req.key} {req.operator} ({','.join(req.values)})")
            case "exists":
                parts.append(req.key)
            case _:
                parts.append(f"!{req.key}")
    return ",".join(parts)


@dataclasses.dataclass(frozen=True)
class FieldRequirement:
    path: tuple[str, ...]
    equal: bool
    value: str


@dataclasses.dataclass(frozen=True)
class FieldSelector:
    """Field equality requirements over dotted paths (`spec.nodeName=node-1`)."""

    requirements: tuple[FieldRequirement, ...] = ()

    def matches(self, obj: Mapping[str, Any]) -> bool:
        for req in self.requirements:
            actual = _field_value(obj, req.path)
            if (actual == req.value) != req.equal:
                return False
        return True


def _field_value(obj: Mapping[str, Any], path: tuple[str, ...]) -> str:
    current: Any = obj
    for part in path:
        if not isinstance(current, Mapping):
            return ""
        current = current.get(part)
    if current is None:
        return ""
    if isinstance(current, bool):
        return "true" if current else "false"
    return str(current)


def parse_field_selector(selector: str) -> FieldSelector:
    """Parse `metadata.name=x,spec.nodeName!=y` (`=`, `==`, `!=`)."""
    requirements: list[FieldRequirement] = []
    for part in (p.strip() for p in selector.split(",")):
        if not part:
            continue
        match = re.match(r"^([A-Za-z0-9_.]+)\s*(==|=|!=)\s*(.*)$", part)
        if match is None:
            raise errors.BadRequest(
                f"invalid field selector {selector!r}: {part!r} is not field=value or field!=value"
            )
        path = tuple(match[1].split("."))
        requirements.append(FieldRequirement(path, match[2] != "!=", match[3].strip()))
    return FieldSelector(tuple(requirements))
