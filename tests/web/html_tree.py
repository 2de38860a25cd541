"""A small HTML tree for the page tests (`html.parser`): find elements by tag, class and
attributes, read their text, and a form's fields as a browser would send them."""

from __future__ import annotations

import dataclasses
import html.parser
from collections.abc import Iterator

_VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}
)


@dataclasses.dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    children: list[Node | str] = dataclasses.field(default_factory=list)

    def text(self) -> str:
        parts = [c if isinstance(c, str) else c.text() for c in self.children]
        return " ".join(" ".join(parts).split())

    def raw_text(self) -> str:
        return "".join(c if isinstance(c, str) else c.raw_text() for c in self.children)

    def walk(self) -> Iterator[Node]:
        for child in self.children:
            if isinstance(child, Node):
                yield child
                yield from child.walk()

    def all(self, tag: str, *, cls: str | None = None, **attrs: str) -> list[Node]:
        return [
            n
            for n in self.walk()
            if n.tag == tag
            and (cls is None or cls in n.attrs.get("class", "").split())
            and all(n.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items())
        ]

    def one(self, tag: str, *, cls: str | None = None, **attrs: str) -> Node:
        found = self.all(tag, cls=cls, **attrs)
        assert len(found) == 1, f"{len(found)} <{tag}> with {cls=} {attrs}"
        return found[0]

    def fields(self) -> dict[str, str]:
        """A form's named inputs and selects with their values (as a browser sends them)."""
        values: dict[str, str] = {}
        for node in self.walk():
            name = node.attrs.get("name")
            if not name:
                continue
            if node.tag == "input":
                values[name] = node.attrs.get("value", "")
            elif node.tag == "select":
                chosen = [o for o in node.all("option") if "selected" in o.attrs]
                values[name] = (chosen or node.all("option"))[0].attrs.get("value", "")
        return values


class _Builder(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in _VOID:
            self.stack.append(node)

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self.stack) - 1, 0, -1):
            if self.stack[depth].tag == tag:
                del self.stack[depth:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def parse(text: str) -> Node:
    builder = _Builder()
    builder.feed(text)
    builder.close()
    return builder.root
