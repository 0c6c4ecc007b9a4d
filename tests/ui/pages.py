"""Reading the UI's pages in tests: elements by ``data-testid``, forms and their tokens."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import quote

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    text: str = ""
    children: list[Element] = field(default_factory=list)

    def find(self, testid: str) -> Element | None:
        found = self.find_all(testid)
        return found[0] if found else None

    def find_all(self, testid: str) -> list[Element]:
        out = []
        for child in self.children:
            if child.attrs.get("data-testid") == testid:
                out.append(child)
            out.extend(child.find_all(testid))
        return out

    def find_prefix(self, prefix: str) -> list[Element]:
        out = []
        for child in self.children:
            if child.attrs.get("data-testid", "").startswith(prefix):
                out.append(child)
            out.extend(child.find_prefix(prefix))
        return out

    def tags(self, tag: str) -> list[Element]:
        out = []
        for child in self.children:
            if child.tag == tag:
                out.append(child)
            out.extend(child.tags(tag))
        return out

    def cell(self, testid: str) -> str:
        found = self.find(testid)
        assert found is not None, f"no {testid!r} in {self.tag} {self.attrs}"
        return found.text.strip()


class _Parser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(element)
        if tag not in VOID:
            self.stack.append(element)

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self.stack) - 1, 0, -1):
            if self.stack[depth].tag == tag:
                del self.stack[depth:]
                return

    def handle_data(self, data: str) -> None:
        for element in self.stack:
            element.text += data


def parse(html: str) -> Element:
    parser = _Parser()
    parser.feed(html)
    parser.close()
    return parser.root


def token(html: str) -> str:
    """The CSRF token of the first form on a page."""
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no form with a CSRF token on the page"
    return found.group(1)


def queue_path(name: str, *parts: str) -> str:
    return "/".join([f"/queues/{quote(name, safe='/')}", *parts])


def flash(html: str) -> str:
    found = parse(html).find("flash")
    return "" if found is None else found.text.strip()


def post(client: Any, page: str, action: str, **data: Any) -> Any:
    """GET ``page`` for its token, then POST ``data`` with it to ``action`` (no redirects)."""
    shown = client.get(page)
    assert shown.status_code == 200, shown.text
    return client.post(
        action, data={"csrf_token": token(shown.text), **data}, follow_redirects=False
    )
