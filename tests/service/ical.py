"""A small iCalendar reader for the calendar tests (the `icalendar` package is not installed).

`parse(text)` checks the physical form first (every line ends in CRLF, none is longer than
75 octets of UTF-8, a continuation line starts with one space), unfolds, then builds the
tree of components; `unescape` reads a TEXT value back. Parameters are read without quoting
(the writer under test never quotes one).
"""

from __future__ import annotations

import dataclasses
import datetime as dt

MAX_OCTETS = 75


@dataclasses.dataclass
class Property:
    name: str
    params: dict[str, str]
    value: str


@dataclasses.dataclass
class Component:
    name: str
    properties: list[Property] = dataclasses.field(default_factory=list)
    children: list[Component] = dataclasses.field(default_factory=list)

    def all(self, name: str) -> list[Property]:
        return [p for p in self.properties if p.name == name]

    def one(self, name: str) -> Property:
        found = self.all(name)
        assert len(found) == 1, (self.name, name, found)
        return found[0]

    def value(self, name: str) -> str:
        return self.one(name).value

    def components(self, name: str) -> list[Component]:
        return [c for c in self.children if c.name == name]


def physical_lines(text: str) -> list[str]:
    """The lines as written, checking CRLF endings and the 75-octet limit."""
    assert text.endswith("\r\n"), text[-20:]
    lines = text[:-2].split("\r\n")
    for line in lines:
        assert "\r" not in line and "\n" not in line, repr(line)
        assert len(line.encode("utf-8")) <= MAX_OCTETS, (len(line.encode("utf-8")), line)
    return lines


def unfold(text: str) -> list[str]:
    """The content lines: each continuation (a line starting with a space) joined to the last."""
    logical: list[str] = []
    for line in physical_lines(text):
        if line.startswith(" "):
            assert logical, "a continuation line before any content line"
            logical[-1] += line[1:]
        else:
            logical.append(line)
    return logical


def parse_line(line: str) -> Property:
    head, sep, value = line.partition(":")
    assert sep, f"no ':' in {line!r}"
    name, *raw_params = head.split(";")
    params = dict(param.split("=", 1) for param in raw_params)
    return Property(name=name.upper(), params=params, value=value)


def parse(text: str) -> Component:
    """The VCALENDAR of `text` (exactly one, nothing around it)."""
    stack: list[Component] = []
    root: Component | None = None
    for line in unfold(text):
        prop = parse_line(line)
        if prop.name == "BEGIN":
            child = Component(prop.value)
            if stack:
                stack[-1].children.append(child)
            else:
                assert root is None, "a second top-level component"
                root = child
            stack.append(child)
        elif prop.name == "END":
            assert stack and stack[-1].name == prop.value, (prop.value, stack)
            stack.pop()
        else:
            assert stack, f"a property outside any component: {line!r}"
            stack[-1].properties.append(prop)
    assert not stack and root is not None and root.name == "VCALENDAR"
    return root


def unescape(value: str) -> str:
    """A TEXT value read back (`\\n`, `\\,`, `\\;`, `\\\\`)."""
    out: list[str] = []
    chars = iter(value)
    for char in chars:
        if char != "\\":
            out.append(char)
            continue
        nxt = next(chars)
        out.append("\n" if nxt in "nN" else nxt)
    return "".join(out)


def split_text_list(value: str) -> list[str]:
    """A list of TEXT values (CATEGORIES): split on commas that are not escaped."""
    items: list[str] = []
    current: list[str] = []
    chars = iter(value)
    for char in chars:
        if char == "\\":
            current.append(char + next(chars))
        elif char == ",":
            items.append(unescape("".join(current)))
            current = []
        else:
            current.append(char)
    items.append(unescape("".join(current)))
    return items


def utc_time(value: str) -> dt.datetime:
    """A `YYYYMMDDTHHMMSSZ` value."""
    assert value.endswith("Z"), value
    return dt.datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)


def local_time(value: str) -> dt.datetime:
    """A floating `YYYYMMDDTHHMMSS` value (naive)."""
    return dt.datetime.strptime(value, "%Y%m%dT%H%M%S")
