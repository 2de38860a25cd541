"""Reading: YAML bytes into marked trees, refusing anything unsafe or ambiguous.

A `MarkedTree` is one YAML document as plain data (dicts with string keys, lists, scalars)
plus the 1-based line and column where every value, and every mapping key, was written, and
the text of every scalar as written. `read_file` / `read_bytes` are the one bounded YAML
entry point of Stormdrill: scenarios, environments, drills and the CMDB all read through it.
Invariants: reading never executes or constructs arbitrary objects (only the YAML 1.2 core
schema: null, bool, int, float, str); duplicate keys are errors, never last-wins; alias
expansion is bounded by a value budget and nesting by `MAX_DEPTH` (checked while composing,
so no input can exhaust the stack); files over `MAX_FILE_BYTES`, non-UTF-8 bytes, control
characters, tabs used for indentation and empty files are reported as `Problem`s placed at
their real line and column, never raised.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Final, TypeAlias

import yaml
import yaml.composer
import yaml.error
import yaml.events
import yaml.nodes
import yaml.parser
import yaml.reader
import yaml.resolver
import yaml.scanner
import yaml.tokens

from scenarios import errors

MAX_FILE_BYTES: Final = 1024 * 1024
MAX_VALUES: Final = 100_000
MAX_DEPTH: Final = 64
_MAX_TAB_REPORTS: Final = 20

Data: TypeAlias = "bool | int | float | str | list[Data] | dict[str, Data] | None"
TreePath: TypeAlias = tuple[str | int, ...]

_TAG = "tag:yaml.org,2002:"
_NULL = re.compile(r"~|null|Null|NULL|")
_BOOL = re.compile(r"true|True|TRUE|false|False|FALSE")
_INT = re.compile(r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+")
_FLOAT = re.compile(
    r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)"
)
_LINE_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")
_TOO_DEEP_TAG = "tag:stormdrill.dev,2025:too-deep"
"""The tag of the placeholder the composer leaves where a too-deep node was skipped."""


@dataclasses.dataclass(frozen=True, order=True)
class Mark:
    """A 1-based line and column in a file."""

    line: int
    column: int


@dataclasses.dataclass(frozen=True)
class MarkedTree:
    """One YAML document as plain data, with where each value and key was written."""

    file: str
    data: Data
    start: Mark
    values: Mapping[TreePath, Mark]
    keys: Mapping[TreePath, Mark]
    texts: Mapping[TreePath, str] = dataclasses.field(default_factory=dict)
    """The text of every scalar as written (`1` for `tier: 1`), for readers that want it."""

    def get(self, path: TreePath) -> tuple[bool, Data]:
        """(found, value) at `path`."""
        node: Data = self.data
        for item in path:
            found, node = child(node, item)
            if not found:
                return False, None
        return True, node

    def mark_for(self, path: TreePath) -> Mark:
        """Where the value at `path` (or its nearest written ancestor) starts.

        A mapping-valued entry is placed at its key (the line that names it); a scalar or
        a missing entry's parent at the value itself.
        """
        for end in range(len(path), -1, -1):
            prefix = path[:end]
            found, value = self.get(prefix)
            if found and isinstance(value, dict | list) and prefix in self.keys:
                return self.keys[prefix]
            if prefix in self.values:
                return self.values[prefix]
            if prefix in self.keys:
                return self.keys[prefix]
        return self.start

    def key_mark(self, path: TreePath) -> Mark:
        """Where the key naming `path` was written (for unknown or duplicate fields)."""
        return self.keys.get(path) or self.mark_for(path)

    def replace_data(self, data: Data, *, values: Mapping[TreePath, Mark]) -> MarkedTree:
        """A copy with new data (e.g. after substitution), keeping known marks."""
        return dataclasses.replace(self, data=data, values=values)


def child(node: Data, item: str | int) -> tuple[bool, Data]:
    """(found, value) of one step into a mapping (by key) or a list (by index)."""
    if isinstance(node, dict) and isinstance(item, str) and item in node:
        return True, node[item]
    if isinstance(node, list) and isinstance(item, int) and 0 <= item < len(node):
        return True, node[item]
    return False, None


@dataclasses.dataclass(frozen=True)
class ReadResult:
    """The documents of one file (in order) and everything wrong with it."""

    trees: tuple[MarkedTree, ...]
    problems: tuple[errors.Problem, ...]


def read_file(path: Path, *, allow_empty: bool = False) -> ReadResult:
    """Read a YAML file into marked trees; problems are returned, never raised.

    `allow_empty` accepts a file holding no document (a catalog may be empty; a
    scenario file may not).
    """
    file = str(path)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            return _failed(
                file,
                1,
                1,
                f"file is {size} bytes, over the {MAX_FILE_BYTES}-byte limit",
                hint=_SPLIT_HINT,
            )
        with path.open("rb") as stream:
            raw = stream.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        return _failed(file, 1, 1, f"cannot read file: {exc.strerror or exc}")
    return read_bytes(raw, file=file, allow_empty=allow_empty)


_SPLIT_HINT = "split it into smaller files; a document is a few KiB"
_FLATTEN_HINT = "flatten the document; real documents nest a few levels"


def read_bytes(raw: bytes, *, file: str, allow_empty: bool = False) -> ReadResult:
    """Parse YAML bytes into marked trees; problems are returned, never raised."""
    if len(raw) > MAX_FILE_BYTES:
        return _failed(
            file,
            1,
            1,
            f"file is over the {MAX_FILE_BYTES}-byte limit",
            hint=_SPLIT_HINT,
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = raw[: exc.start]
        line = before.count(b"\n") + 1
        column = exc.start - (before.rfind(b"\n") + 1) + 1
        return _failed(
            file,
            line,
            column,
            f"file is not valid UTF-8 (byte 0x{raw[exc.start]:02x} at line {line},"
            f" column {column})",
            hint="save the file as UTF-8",
        )
    text = text.removeprefix("\ufeff")
    if not text.strip():
        if allow_empty:
            return ReadResult((), ())
        return _failed(file, 1, 1, "file is empty", hint="a document needs apiVersion and kind")
    return _parse(text, file=file, allow_empty=allow_empty)


def _parse(text: str, *, file: str, allow_empty: bool) -> ReadResult:
    roots: list[yaml.nodes.Node] = []
    loader: _Loader | None = None
    try:
        loader = _Loader(text)  # the reader checks for control characters here
        while loader.check_node():
            node = loader.get_node()
            if node is not None:
                roots.append(node)
    except _TooDeep as exc:
        mark = exc.problem_mark
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        return _failed(file, line, column, str(exc.problem), hint=_FLATTEN_HINT)
    except yaml.error.MarkedYAMLError as exc:
        return ReadResult((), tuple(_syntax_problems(exc, text=text, file=file)))
    except yaml.reader.ReaderError as exc:
        return _unprintable(exc, text=text, file=file)
    finally:
        if loader is not None:
            loader.dispose()

    trees: list[MarkedTree] = []
    problems: list[errors.Problem] = []
    for root in roots:
        if _is_null(root):
            continue  # an empty document, e.g. after a trailing `---`
        builder = _Builder(file)
        try:
            data = builder.build(root, (), depth=0)
        except _Refused as refused:
            problems.append(refused.problem)
            continue
        problems.extend(builder.problems)
        if not builder.problems:
            trees.append(
                MarkedTree(
                    file=file,
                    data=data,
                    start=_mark(root.start_mark),
                    values=builder.values,
                    keys=builder.keys,
                    texts=builder.texts,
                )
            )
    if not trees and not problems and not allow_empty:
        return _failed(file, 1, 1, "file is empty", hint="a document needs apiVersion and kind")
    return ReadResult(tuple(trees), tuple(problems))


def position_mark(text: str, position: int) -> Mark:
    """The 1-based line and column of character `position` of `text`.

    Every YAML line break counts (`\\r\\n`, `\\n`, `\\r`, NEL, LS, PS), as PyYAML counts them.
    """
    line, start = 1, 0
    for match in _LINE_BREAK.finditer(text, 0, position):
        line += 1
        start = match.end()
    return Mark(line=line, column=position - start + 1)


def _unprintable(exc: yaml.reader.ReaderError, *, text: str, file: str) -> ReadResult:
    mark = position_mark(text, int(exc.position))
    code = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1] or " ")
    return _failed(
        file,
        mark.line,
        mark.column,
        f"control character \\x{code:02x} at line {mark.line}, column {mark.column}"
        " is not allowed in YAML",
        hint='remove it (or write it as an escape inside a double-quoted string, e.g. "\\x11")',
    )


class _CoreResolver(yaml.resolver.BaseResolver):
    """YAML 1.2 core schema: `yes`, `on`, `NO` and `17:00` stay strings."""

    def resolve(self, kind: type[yaml.nodes.Node], value: str, implicit: tuple[bool, bool]) -> str:
        if kind is yaml.nodes.ScalarNode:
            return _TAG + _core_type(value) if implicit[0] else self.DEFAULT_SCALAR_TAG
        if kind is yaml.nodes.SequenceNode:
            return self.DEFAULT_SEQUENCE_TAG
        return self.DEFAULT_MAPPING_TAG


def _core_type(value: str) -> str:
    if value == "<<":
        return "merge"
    if _NULL.fullmatch(value):
        return "null"
    if _BOOL.fullmatch(value):
        return "bool"
    if _INT.fullmatch(value):
        return "int"
    if _FLOAT.fullmatch(value):
        return "float"
    return "str"


class _Loader(
    yaml.reader.Reader,
    yaml.scanner.Scanner,
    yaml.parser.Parser,
    yaml.composer.Composer,
    _CoreResolver,
):
    """PyYAML's reader, scanner, parser and composer; no constructor (we build data).

    The composer is the only recursive part of PyYAML: past `MAX_DEPTH` levels a node's
    events are skipped (iteratively) and a placeholder tagged `_TOO_DEEP_TAG` is left at
    its place, which the builder refuses with its line and field. Other documents of the
    file are still read. The scanner's work grows with the square of the flow nesting
    (`[[[…`), so a flow collection opened past `MAX_DEPTH` stops the read at its mark.
    """

    def __init__(self, stream: str) -> None:
        yaml.reader.Reader.__init__(self, stream)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)
        yaml.composer.Composer.__init__(self)
        _CoreResolver.__init__(self)
        self._depth = 0

    def fetch_flow_collection_start(self, TokenClass: type[yaml.tokens.Token]) -> None:
        if self.flow_level >= MAX_DEPTH:
            raise _TooDeep(self.get_mark())
        super().fetch_flow_collection_start(TokenClass)

    def compose_node(self, parent: yaml.nodes.Node | None, index: int) -> yaml.nodes.Node | None:
        if self._depth > MAX_DEPTH:
            return self._skip_node()
        self._depth += 1
        try:
            node: yaml.nodes.Node | None = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        return node

    def _skip_node(self) -> yaml.nodes.Node:
        first: yaml.events.Event = self.get_event()  # type: ignore[no-untyped-call]
        level = 0 if isinstance(first, yaml.events.ScalarEvent | yaml.events.AliasEvent) else 1
        while level:
            event = self.get_event()  # type: ignore[no-untyped-call]
            if isinstance(event, yaml.events.CollectionStartEvent):
                level += 1
            elif isinstance(event, yaml.events.CollectionEndEvent):
                level -= 1
        mark = typing.cast(yaml.error.Mark, first.start_mark)  # this reader's marks
        return yaml.nodes.ScalarNode(_TOO_DEEP_TAG, "", start_mark=mark, end_mark=mark)


class _TooDeep(yaml.error.MarkedYAMLError):
    """Flow collections nest deeper than `MAX_DEPTH`; reading stops at `problem_mark`."""

    def __init__(self, mark: yaml.error.Mark) -> None:
        super().__init__(problem=f"nesting is deeper than {MAX_DEPTH} levels", problem_mark=mark)


class _Refused(Exception):
    """Building a document stopped; the document is refused as a whole."""

    def __init__(self, problem: errors.Problem) -> None:
        super().__init__(str(problem))
        self.problem = problem


class _Builder:
    """Builds plain data from composed nodes, recording marks and counting values."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.count = 0
        self.values: dict[TreePath, Mark] = {}
        self.keys: dict[TreePath, Mark] = {}
        self.texts: dict[TreePath, str] = {}
        self.problems: list[errors.Problem] = []
        self._active: set[int] = set()

    def build(self, node: yaml.nodes.Node, path: TreePath, *, depth: int) -> Data:
        self.count += 1
        if self.count > MAX_VALUES:
            raise _Refused(
                self._problem(
                    node,
                    path,
                    f"document expands to more than {MAX_VALUES} values",
                    hint="YAML aliases (*name) nest too deeply — an alias bomb? Use fewer aliases",
                )
            )
        if depth > MAX_DEPTH or node.tag == _TOO_DEEP_TAG:
            raise _Refused(
                self._problem(
                    node,
                    path,
                    f"nesting is deeper than {MAX_DEPTH} levels",
                    hint=_FLATTEN_HINT,
                )
            )
        if id(node) in self._active:
            raise _Refused(self._problem(node, path, "a YAML alias refers to itself (recursive)"))
        self.values[path] = _mark(node.start_mark)
        if isinstance(node, yaml.nodes.ScalarNode):
            self.texts[path] = str(node.value)
            return self._scalar(node, path)
        self._active.add(id(node))
        try:
            if isinstance(node, yaml.nodes.SequenceNode):
                self._check_tag(node, path, "seq")
                return [
                    self.build(item, (*path, index), depth=depth + 1)
                    for index, item in enumerate(node.value)
                ]
            if isinstance(node, yaml.nodes.MappingNode):
                self._check_tag(node, path, "map")
                return self._mapping(node, path, depth=depth)
        finally:
            self._active.discard(id(node))
        raise _Refused(self._problem(node, path, "unsupported YAML node"))

    def _mapping(self, node: yaml.nodes.MappingNode, path: TreePath, *, depth: int) -> Data:
        result: dict[str, Data] = {}
        written: dict[str, Mark] = {}
        merged: list[yaml.nodes.Node] = []
        for key_node, value_node in node.value:
            if key_node.tag == _TAG + "merge":
                merged.append(value_node)
                continue
            if not isinstance(key_node, yaml.nodes.ScalarNode):
                self.problems.append(
                    self._problem(key_node, path, "mapping keys must be plain strings")
                )
                continue
            key = str(key_node.value)
            key_mark = _mark(key_node.start_mark)
            if key in written:
                first = written[key]
                self.problems.append(
                    errors.Problem(
                        file=self.file,
                        line=key_mark.line,
                        column=key_mark.column,
                        field=render_path((*path, key)),
                        message=(
                            f"duplicate key '{key}' (first on line {first.line},"
                            f" again on line {key_mark.line})"
                        ),
                        hint="remove one of them; YAML keeps only the last, silently",
                    )
                )
                continue
            written[key] = key_mark
            self.keys[(*path, key)] = key_mark
            result[key] = self.build(value_node, (*path, key), depth=depth + 1)
        for source in merged:
            for piece in self._merge_sources(source, path):
                built = self.build(piece, path, depth=depth + 1)
                if isinstance(built, dict):
                    for key, value in built.items():
                        result.setdefault(key, value)
        self.values[path] = _mark(node.start_mark)
        return result

    def _merge_sources(self, node: yaml.nodes.Node, path: TreePath) -> list[yaml.nodes.Node]:
        if isinstance(node, yaml.nodes.MappingNode):
            return [node]
        if isinstance(node, yaml.nodes.SequenceNode) and all(
            isinstance(item, yaml.nodes.MappingNode) for item in node.value
        ):
            return list(node.value)
        self.problems.append(
            self._problem(node, path, "'<<' (merge) needs a mapping or a list of mappings")
        )
        return []

    def _scalar(self, node: yaml.nodes.ScalarNode, path: TreePath) -> Data:
        tag = str(node.tag)
        value = str(node.value)
        short = tag.removeprefix(_TAG) if tag.startswith(_TAG) else tag
        try:
            if short == "str":
                return value
            if short == "null" and _NULL.fullmatch(value):
                return None
            if short == "bool" and _BOOL.fullmatch(value):
                return value.lower() == "true"
            if short == "int" and _INT.fullmatch(value):
                return int(value, 0) if value[:2] in ("0o", "0x") else int(value)
            if short == "float" and (_FLOAT.fullmatch(value) or _INT.fullmatch(value)):
                return float(value.lower().replace(".inf", "inf").replace(".nan", "nan"))
        except ValueError:
            pass
        if short in ("null", "bool", "int", "float"):
            self.problems.append(self._problem(node, path, f"'{value}' is not a valid !!{short}"))
            return None
        self.problems.append(
            self._problem(
                node,
                path,
                f"unsupported YAML tag '{tag}'",
                hint="only plain YAML values are allowed (strings, numbers, booleans, null)",
            )
        )
        return None

    def _check_tag(self, node: yaml.nodes.Node, path: TreePath, expected: str) -> None:
        if node.tag != _TAG + expected:
            self.problems.append(
                self._problem(
                    node,
                    path,
                    f"unsupported YAML tag '{node.tag}'",
                    hint="only plain YAML lists and mappings are allowed",
                )
            )

    def _problem(
        self, node: yaml.nodes.Node, path: TreePath, message: str, *, hint: str = ""
    ) -> errors.Problem:
        mark = _mark(node.start_mark)
        return errors.Problem(
            file=self.file,
            line=mark.line,
            column=mark.column,
            field=render_path(path),
            message=message,
            hint=hint,
        )


def _syntax_problems(
    exc: yaml.error.MarkedYAMLError, *, text: str, file: str
) -> list[errors.Problem]:
    tabbed = [
        number
        for number, line in enumerate(text.splitlines(), start=1)
        if "\t" in line[: len(line) - len(line.lstrip(" \t"))]
    ]
    if tabbed:
        return [
            errors.Problem(
                file=file,
                line=number,
                column=1,
                field="",
                message=f"tab character used for indentation on line {number}",
                hint="YAML indentation must use spaces; replace the tabs with spaces",
            )
            for number in tabbed[:_MAX_TAB_REPORTS]
        ]
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark else 1
    column = mark.column + 1 if mark else 1
    what = " ".join(part for part in (exc.context, exc.problem) if part)
    return [
        errors.Problem(
            file=file,
            line=line,
            column=column,
            field="",
            message=f"YAML syntax error: {what or 'cannot parse'}",
            hint="check indentation, colons and quotes around this line",
        )
    ]


def render_path(path: TreePath) -> str:
    """`('spec', 'steps', 2, 'action')` → `spec.steps[2].action`."""
    text = ""
    for item in path:
        if isinstance(item, int):
            text += f"[{item}]"
        elif re.fullmatch(r"[A-Za-z0-9_-]+", item):
            text += f".{item}" if text else item
        else:
            text += f'["{item}"]'
    return text


def _is_null(node: yaml.nodes.Node) -> bool:
    return (
        isinstance(node, yaml.nodes.ScalarNode)
        and node.tag == _TAG + "null"
        and not str(node.value).strip()
    )


def _mark(mark: yaml.error.Mark) -> Mark:
    return Mark(line=mark.line + 1, column=mark.column + 1)


def _failed(file: str, line: int, column: int, message: str, *, hint: str = "") -> ReadResult:
    problem = errors.Problem(
        file=file, line=line, column=column, field="", message=message, hint=hint
    )
    return ReadResult((), (problem,))
