"""Substituting: binding parameter values and expanding `{{ name }}` in a scenario.

Invariants: substitution never evaluates anything. The only template form is
`{{ identifier }}`; anything else (`{{ a.b }}`, `{{ a|f }}`, `{{ 1+1 }}`, `{% … %}`, `{# … #}`,
an unclosed `{{`) is an error naming the line. Templates are expanded only in string values
under `spec` (never in keys, `metadata` or `spec.parameters`). A value that is exactly
`{{ name }}` takes the parameter's type (an integer stays an integer); a template embedded in
longer text is formatted as text. Substitution works on the marked tree and validation runs
afterwards, so every problem still names its file and line.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from pathlib import Path

import pydantic

from scenarios import diagnostics, documents, errors, models, parameters, reading

_BRACES = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_WHOLE = re.compile(r"\s*\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}\s*")
_NAME = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*")
_PARAMETERS_PATH: reading.TreePath = ("spec", "parameters")

Declared = Mapping[str, models.Parameter]
Bindings = Mapping[str, parameters.ParamValue]


@dataclasses.dataclass(frozen=True)
class Expanded:
    """A tree after substitution, its problems, and the paths filled by placeholders."""

    tree: reading.MarkedTree
    problems: tuple[errors.Problem, ...]
    placeholder_paths: frozenset[reading.TreePath]


def declared_parameters(
    tree: reading.MarkedTree,
) -> tuple[dict[str, models.Parameter], list[errors.Problem]]:
    """The `spec.parameters` declarations of a scenario tree, validated on their own."""
    found, raw = tree.get(_PARAMETERS_PATH)
    if not found or raw is None:
        return {}, []
    adapter = pydantic.TypeAdapter(dict[models.ParamName, models.Parameter])
    try:
        declared = adapter.validate_python(raw, by_alias=True, by_name=False)
    except pydantic.ValidationError as exc:
        problems = diagnostics.from_validation(
            exc, tree=tree, model=_ParameterTable, base=_PARAMETERS_PATH
        )
        return {}, problems
    return dict(declared), []


class _ParameterTable(pydantic.RootModel[dict[str, models.Parameter]]):
    """Lets diagnostics look up the fields a parameter declaration accepts."""


def placeholders(declared: Declared) -> tuple[dict[str, parameters.ParamValue], frozenset[str]]:
    """Defaults where declared, typed stand-ins otherwise; and the names that got stand-ins."""
    values: dict[str, parameters.ParamValue] = {}
    stand_ins: set[str] = set()
    for name, declaration in declared.items():
        default = declaration.typed_default()
        if default is not None:
            values[name] = default
            continue
        allowed = declaration.typed_enum()
        if allowed:
            first = allowed[0]
            is_list = declaration.type is parameters.ParamType.LIST
            values[name] = (first,) if is_list else first
        else:
            values[name] = parameters.placeholder(
                name, type_=declaration.type, items=declaration.items
            )
            stand_ins.add(name)
    return values, frozenset(stand_ins)


def bind(
    scenario: documents.Loaded[models.Scenario],
    values: Mapping[str, parameters.ParamInput],
    *,
    environment: Mapping[str, parameters.ParamInput] | None = None,
) -> dict[str, parameters.ParamValue]:
    """Every declared parameter's value: `values`, else `environment`, else the default.

    Names in `values` must be declared (a typo is an error); names in `environment` that
    the scenario does not declare are ignored (an environment serves many scenarios).
    Raises `ScenarioInvalid` naming the declaration's line for every problem.
    """
    tree = scenario.tree
    declared, problems = declared_parameters(tree)
    if problems:
        raise errors.ScenarioInvalid(problems)
    for name in values:
        if name not in declared:
            mark = tree.key_mark(_PARAMETERS_PATH)
            hint = models.did_you_mean(name, tuple(declared))
            known = ", ".join(sorted(declared)) or "none"
            problems.append(
                errors.Problem(
                    file=tree.file,
                    line=mark.line,
                    column=mark.column,
                    field=reading.render_path((*_PARAMETERS_PATH, name)),
                    message=(
                        f"a value was given for '{name}', but scenario '{scenario.name}'"
                        f" declares no such parameter (declared: {known})"
                    ),
                    hint=hint,
                )
            )
    bound: dict[str, parameters.ParamValue] = {}
    environment = environment or {}
    for name, declaration in declared.items():
        path = (*_PARAMETERS_PATH, name)
        mark = tree.key_mark(path)
        if name in values:
            raw: object = values[name]
            origin = "the value given"
        elif name in environment:
            raw = environment[name]
            origin = "the environment's value"
        elif declaration.default is not None:
            bound[name] = _required(declaration.typed_default())
            continue
        else:
            problems.append(
                errors.Problem(
                    file=tree.file,
                    line=mark.line,
                    column=mark.column,
                    field=reading.render_path(path),
                    message=f"parameter '{name}' has no default and no value was supplied",
                    hint=(
                        f"set it in the drill's spec.parameters, the environment's"
                        f" spec.parameters, or with --set {name}=…"
                    ),
                )
            )
            continue
        try:
            value = parameters.coerce(raw, type_=declaration.type, items=declaration.items)
            allowed = declaration.typed_enum()
            if allowed is not None:
                models.check_enum(value, allowed)
        except ValueError as exc:
            problems.append(
                errors.Problem(
                    file=tree.file,
                    line=mark.line,
                    column=mark.column,
                    field=reading.render_path(path),
                    message=f"{origin} for parameter '{name}' is invalid: {exc}",
                )
            )
            continue
        bound[name] = value
    if problems:
        raise errors.ScenarioInvalid(problems)
    return bound


def render(
    scenario: documents.Loaded[models.Scenario],
    values: Mapping[str, parameters.ParamInput],
    *,
    environment: Mapping[str, parameters.ParamInput] | None = None,
) -> models.Scenario:
    """The scenario with parameters bound and `{{ name }}` expanded, validated.

    Raises `ScenarioInvalid` whose problems name file:line and field.
    """
    return render_bound(scenario, bind(scenario, values, environment=environment))


def render_bound(scenario: documents.Loaded[models.Scenario], bound: Bindings) -> models.Scenario:
    """The scenario with `{{ name }}` expanded from values `bind` returned, validated.

    For callers that need the bound values too (binding them once). Raises
    `ScenarioInvalid` whose problems name file:line and field.
    """
    declared, _ = declared_parameters(scenario.tree)
    expanded = expand(scenario.tree, bindings=bound, declared=declared)
    if expanded.problems:
        raise errors.ScenarioInvalid(list(expanded.problems))
    model, problems = validate_scenario(expanded.tree, base_dir=scenario.folder)
    if model is None:
        raise errors.ScenarioInvalid(problems)
    return model


def validate_scenario(
    tree: reading.MarkedTree, *, base_dir: Path | None
) -> tuple[models.Scenario | None, list[errors.Problem]]:
    """Validate an (expanded) scenario tree as a `models.Scenario`."""
    context = {"base_dir": base_dir} if base_dir is not None else None
    try:
        model = models.Scenario.model_validate(
            tree.data, by_alias=True, by_name=False, context=context
        )
    except pydantic.ValidationError as exc:
        return None, diagnostics.from_validation(exc, tree=tree, model=models.Scenario)
    return model, []


def expand(tree: reading.MarkedTree, *, bindings: Bindings, declared: Declared) -> Expanded:
    """Expand every `{{ name }}` under `spec` (except `spec.parameters`) with `bindings`."""
    expander = _Expander(tree=tree, bindings=bindings, declared=declared)
    data = expander.walk(tree.data, ())
    return Expanded(
        tree=tree.replace_data(data, values=tree.values),
        problems=tuple(expander.problems),
        placeholder_paths=frozenset(expander.filled),
    )


def expand_with_placeholders(tree: reading.MarkedTree, *, declared: Declared) -> Expanded:
    """Expand with defaults and typed stand-ins, marking where stand-ins went."""
    values, stand_ins = placeholders(declared)
    expander = _Expander(tree=tree, bindings=values, declared=declared, stand_ins=stand_ins)
    data = expander.walk(tree.data, ())
    return Expanded(
        tree=tree.replace_data(data, values=tree.values),
        problems=tuple(expander.problems),
        placeholder_paths=frozenset(expander.filled),
    )


class _Expander:
    def __init__(
        self,
        *,
        tree: reading.MarkedTree,
        bindings: Bindings,
        declared: Declared,
        stand_ins: frozenset[str] = frozenset(),
    ) -> None:
        self.tree = tree
        self.bindings = bindings
        self.declared = declared
        self.stand_ins = stand_ins
        self.problems: list[errors.Problem] = []
        self.filled: set[reading.TreePath] = set()

    def walk(self, node: reading.Data, path: reading.TreePath) -> reading.Data:
        if path == _PARAMETERS_PATH:
            return node
        if isinstance(node, dict):
            return {key: self.walk(value, (*path, key)) for key, value in node.items()}
        if isinstance(node, list):
            return [self.walk(value, (*path, index)) for index, value in enumerate(node)]
        if isinstance(node, str) and _has_template_syntax(node):
            if not path or path[0] != "spec":
                self._problem(
                    path,
                    "templates are expanded only inside 'spec'",
                    hint="write the value literally here",
                )
                return node
            return self._expand(node, path)
        return node

    def _expand(self, text: str, path: reading.TreePath) -> reading.Data:
        names = self._names(text, path)
        if names is None:
            return text
        if any(name in self.stand_ins for name in names):
            self.filled.add(path)
        whole = _WHOLE.fullmatch(text)
        if whole is not None:
            value = self.bindings[whole.group(1)]
            if isinstance(value, tuple):
                return [parameters.as_yaml(item) for item in value]
            return parameters.as_yaml(value)
        for name in names:
            if isinstance(self.bindings[name], tuple):
                self._problem(
                    path,
                    f"list parameter '{name}' can only be used as a whole value",
                    hint=f"write the value as exactly '{{{{ {name} }}}}'",
                )
                return text
        return _BRACES.sub(lambda match: _text(self.bindings[match.group(1).strip()]), text)

    def _names(self, text: str, path: reading.TreePath) -> list[str] | None:
        """The parameter names used in `text`, or None after reporting a problem."""
        for forbidden, what in (("{%", "'{% … %}' blocks"), ("{#", "'{# … #}' comments")):
            if forbidden in text:
                self._problem(
                    path,
                    f"{what} are not allowed; templates are limited to '{{{{ name }}}}'",
                    hint="substitution never evaluates code; use a parameter instead",
                )
                return None
        names: list[str] = []
        for match in _BRACES.finditer(text):
            inner = match.group(1)
            identifier = _NAME.fullmatch(inner)
            if identifier is None:
                self._problem(
                    path,
                    f"'{match.group(0)}' is not allowed; templates are limited to"
                    " '{{ name }}' with a plain parameter name",
                    hint="substitution never evaluates expressions, filters or attributes;"
                    " declare a parameter holding the value you need",
                )
                return None
            names.append(identifier.group(1))
        rest = _BRACES.sub("", text)
        if "{{" in rest or "}}" in rest:
            self._problem(
                path,
                "unbalanced '{{' or '}}'; templates are written '{{ name }}'",
            )
            return None
        for name in names:
            if name not in self.declared:
                hint = models.did_you_mean(name, tuple(self.declared))
                declared = ", ".join(sorted(self.declared)) or "none"
                self._problem(
                    path,
                    f"unknown parameter '{name}' in '{{{{ {name} }}}}' (declared: {declared})",
                    hint=hint or "declare it under spec.parameters",
                )
                return None
            if name not in self.bindings:
                return None  # reported by `bind`
        return names

    def _problem(self, path: reading.TreePath, message: str, *, hint: str = "") -> None:
        mark = self.tree.mark_for(path)
        self.problems.append(
            errors.Problem(
                file=self.tree.file,
                line=mark.line,
                column=mark.column,
                field=reading.render_path(path),
                message=message,
                hint=hint,
            )
        )


def _has_template_syntax(text: str) -> bool:
    return "{{" in text or "}}" in text or "{%" in text or "{#" in text


def _text(value: parameters.ParamValue) -> str:
    assert not isinstance(value, tuple)
    return parameters.as_text(value)


def _required(value: parameters.ParamValue | None) -> parameters.ParamValue:
    assert value is not None
    return value
