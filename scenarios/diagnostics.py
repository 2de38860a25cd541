"""Diagnostics: pydantic validation errors turned into `Problem`s a person can act on.

Invariants: every problem names the file, line and column where the offending value (or,
for an unknown or missing field, its key or parent) was written, and a field path using
the names the user wrote (`spec.steps[2].action`); messages say what was expected and
what was found, with a did-you-mean hint where a close match exists.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Mapping, Sequence

import pydantic
import pydantic_core

from scenarios import errors, models, quantities, reading


def from_validation(
    exc: pydantic.ValidationError,
    *,
    tree: reading.MarkedTree,
    model: type[pydantic.BaseModel],
    base: reading.TreePath = (),
) -> list[errors.Problem]:
    """One problem per validation error of `model` validated against `tree` at `base`."""
    problems: list[errors.Problem] = []
    seen: set[tuple[reading.TreePath, str]] = set()
    located = [
        (error, _tree_path(tuple(error["loc"]), tree=tree, base=base))
        for error in exc.errors(include_url=False)
    ]
    failed = {path for _, path in located}
    for error, path in located:
        if error["type"] == "too_short" and any(
            other[: len(path)] == path and len(other) > len(path) for other in failed
        ):
            continue  # pydantic counts only the valid items; the item errors say it all
        message, hint = _explain(error, model=model, relative=path[len(base) :])
        if (path, message) in seen:
            continue
        seen.add((path, message))
        last = error["type"] in ("extra_forbidden", "missing")
        mark = tree.key_mark(path) if last else tree.mark_for(path)
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
    return problems


def error_paths(
    exc: pydantic.ValidationError, *, tree: reading.MarkedTree
) -> list[tuple[str, reading.TreePath]]:
    """(error type, path as written in `tree`) of every validation error, for salvaging."""
    return [
        (error["type"], _tree_path(tuple(error["loc"]), tree=tree, base=()))
        for error in exc.errors(include_url=False)
    ]


def _tree_path(
    loc: tuple[str | int, ...], *, tree: reading.MarkedTree, base: reading.TreePath
) -> reading.TreePath:
    """The loc as a path into the written tree, skipping pydantic's synthetic items."""
    path: list[str | int] = list(base)
    _, node = tree.get(base)
    for position, item in enumerate(loc):
        is_last = position == len(loc) - 1
        found, value = reading.child(node, item)
        if found:
            path.append(item)
            node = value
        elif is_last and isinstance(node, dict) and isinstance(item, str):
            path.append(item)  # a missing field
        # else: a union tag, '[key]' or similar; not part of what the user wrote
    return tuple(path)


def _explain(
    error: pydantic_core.ErrorDetails,
    *,
    model: type[pydantic.BaseModel],
    relative: reading.TreePath,
) -> tuple[str, str]:
    kind = error["type"]
    value = error.get("input")
    context = error.get("ctx") or {}
    if kind == "extra_forbidden":
        name = str(relative[-1]) if relative else "?"
        allowed = _fields_at(model, relative[:-1])
        hint = models.did_you_mean(name, allowed) if allowed else ""
        if not hint and allowed:
            hint = f"allowed fields: {', '.join(allowed)}"
        return f"unknown field '{name}'", hint
    if kind == "missing":
        name = str(relative[-1]) if relative else "?"
        return f"missing required field '{name}'", ""
    if kind in ("literal_error", "enum"):
        expected = str(context.get("expected", ""))
        choices = re.findall(r"'([^']*)'", expected)
        hint = models.did_you_mean(str(value), choices) if isinstance(value, str) else ""
        return f"{quantities.describe(value)} is not one of {expected}", hint
    if kind in ("value_error", "assertion_error"):
        raw = str(context.get("error", error["msg"]))
        return raw, ""
    wanted = _EXPECTED.get(kind)
    if wanted is not None:
        return f"expected {wanted}, got {quantities.describe(value)}", ""
    if kind in ("too_short", "too_long"):
        return _length_message(error), ""
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        return f"{error['msg'].replace('Input should be', 'must be')}, got {value}", ""
    return error["msg"], ""


_EXPECTED: dict[str, str] = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "a boolean (true or false)",
    "bool_parsing": "a boolean (true or false)",
    "list_type": "a list",
    "tuple_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "time_type": "a time of day such as '09:00'",
    "time_parsing": "a time of day such as '09:00'",
    "datetime_type": "a date and time such as '2026-03-01T10:00:00Z'",
    "datetime_parsing": "a date and time such as '2026-03-01T10:00:00Z'",
    "datetime_from_date_parsing": "a date and time such as '2026-03-01T10:00:00Z'",
    "path_type": "a file path",
}


def _length_message(error: pydantic_core.ErrorDetails) -> str:
    context = error.get("ctx") or {}
    if error["type"] == "too_short":
        return f"needs at least {context.get('min_length', 1)} item(s)"
    return f"allows at most {context.get('max_length')} item(s)"


def _fields_at(model: type[pydantic.BaseModel], path: reading.TreePath) -> list[str]:
    """The field names (as written in YAML) accepted at `path` inside `model`."""
    current: object = model
    for item in path:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, pydantic.BaseModel):
            field = _field_by_alias(current).get(str(item))
            if field is None:
                return []
            current = field.annotation
            continue
        origin = typing.get_origin(current)
        args = typing.get_args(current)
        if origin in (list, tuple, Sequence) and args:
            current = args[0]
        elif origin in (dict, Mapping) and len(args) == 2:
            current = args[1]
        else:
            return []
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, pydantic.BaseModel):
        return sorted(_field_by_alias(current))
    return []


def _field_by_alias(model: type[pydantic.BaseModel]) -> dict[str, pydantic.fields.FieldInfo]:
    return {(info.alias or name): info for name, info in model.model_fields.items()}


def _unwrap(annotation: object) -> object:
    """Strip Annotated and `X | None` down to the single underlying type."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
            continue
        if origin in (typing.Union, types.UnionType):
            members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
            if len(members) == 1:
                annotation = members[0]
                continue
        return annotation
