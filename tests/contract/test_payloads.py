"""Item data: what goes in comes out exactly, and what cannot is refused up front."""

from __future__ import annotations

import math
from typing import Any

import pytest

import bridge

ROUND_TRIPS: dict[str, Any] = {
    "nested": {"user": {"id": 7, "roles": ["admin", "editor"], "prefs": {"tz": "UTC"}}},
    "list of mixed": [1, "two", 3.5, None, True, False, [], {}],
    "emoji": "deploy 🚀 done ✅ 👩🏽‍💻",
    "cjk": "漢字かなカナ한국어",
    "rtl": "שלום עולם مرحبا بالعالم",
    "combining and control": "e\u0301 \u200d\t\n\r \x00 \x7f \\ \" '",
    "none": None,
    "true": True,
    "false": False,
    "zero": 0,
    "large int": 2**64 + 1,
    "negative large int": -(10**40),
    "float": 0.1,
    "tiny float": 5e-324,
    "huge float": 1.7976931348623157e308,
    "negative float": -2.5,
    "empty string": "",
    "empty list": [],
    "empty dict": {},
    "unicode keys": {"ключ": "значение", "🔑": ["🚪"], "": "empty key"},
    "deep": {"a": [{"b": [{"c": [[[{"d": None}]]]}]}]},
}


def same(a: Any, b: Any) -> bool:
    """Equal and of the same types all the way down (True is not 1, 1.0 is not 1)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[key], b[key]) for key in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    return bool(a == b)


def test_data_comes_back_exactly(queue: bridge.Queue) -> None:
    names = list(ROUND_TRIPS)
    queue.create_items(ROUND_TRIPS[name] for name in names)
    claimed = queue.claim_items(len(names), lease_time=30)
    assert len(claimed) == len(names)
    for name, item in zip(names, claimed, strict=True):
        assert same(item.data, ROUND_TRIPS[name]), f"{name}: {item.data!r}"


@pytest.mark.parametrize("name", list(ROUND_TRIPS))
def test_each_value_alone_comes_back_exactly(queue: bridge.Queue, name: str) -> None:
    queue.create_item(ROUND_TRIPS[name])
    item = queue.claim_item(lease_time=30)
    assert item is not None
    assert same(item.data, ROUND_TRIPS[name]), repr(item.data)


def test_a_one_megabyte_string_comes_back_exactly(queue: bridge.Queue) -> None:
    big = ("lorem ipsum ✓ 漢 🚀 " * 60_000)[:1_000_000]
    assert len(big.encode("utf-8")) > 1_000_000
    queue.create_item({"body": big, "tail": "end"})
    item = queue.claim_item(lease_time=30)
    assert item is not None
    assert item.data["tail"] == "end"
    assert item.data["body"] == big


def test_changing_the_data_after_create_does_not_change_the_item(queue: bridge.Queue) -> None:
    numbers, mapping = [1, 2], {"k": "v"}
    queue.create_item({"list": numbers, "map": mapping})
    numbers.append(3)
    mapping["k"] = "changed"
    item = queue.claim_item(lease_time=30)
    assert item is not None
    assert item.data == {"list": [1, 2], "map": {"k": "v"}}


def test_a_released_item_keeps_its_data(queue: bridge.Queue) -> None:
    queue.create_item({"keep": ["me", 1]})
    item = queue.claim_item(lease_time=30)
    assert item is not None
    item.data["keep"].append("local change")
    assert queue.release_item(item)
    again = queue.claim_item(lease_time=30)
    assert again is not None
    assert again.data == {"keep": ["me", 1]}


class Opaque:
    pass


REFUSED: dict[str, tuple[Any, str]] = {
    "tuple": ((1, 2), "tuple"),
    "set": ({1, 2}, "set"),
    "frozenset": (frozenset({"a"}), "frozenset"),
    "bytes": (b"raw", "bytes"),
    "object": (object(), "object"),
    "custom class": (Opaque(), "Opaque"),
    "int key": ({1: "one"}, "int"),
    "nested int key": ({"ok": [{"also ok": {2: "two"}}]}, "int"),
    "nan": (float("nan"), "nan"),
    "infinity in a list": ([1.0, float("inf")], "inf"),
    "tuple deep inside": ({"a": [{"b": (1,)}]}, "tuple"),
    "lone surrogate": ("broken \ud800 text", "surrogate"),
}


@pytest.mark.parametrize("name", list(REFUSED))
def test_refused_data_raises_and_writes_nothing(queue: bridge.Queue, name: str) -> None:
    bad, named = REFUSED[name]
    queue.create_item("already there")
    with pytest.raises(bridge.PayloadError, match=f"(?i){named}"):
        queue.create_item(bad)
    with pytest.raises(bridge.PayloadError, match=f"(?i){named}"):
        queue.create_items(["fine", {"also": "fine"}, bad])
    assert queue.number_of_items() == 1
    item = queue.claim_item(lease_time=30)
    assert item is not None
    assert item.data == "already there"
    assert queue.claim_item(lease_time=30) is None


def test_a_refused_delayed_or_prioritised_item_writes_nothing(queue: bridge.Queue) -> None:
    delay = 5 if queue.capabilities.delay else 0
    priority = 3 if queue.capabilities.priority else 0
    with pytest.raises(bridge.PayloadError):
        queue.create_items([{"ok": 1}, (1,)], delay=delay, priority=priority)
    assert queue.number_of_items() == 0


def test_the_refusal_is_a_bridge_error(queue: bridge.Queue) -> None:
    with pytest.raises(bridge.BridgeError):
        queue.create_item({1, 2, 3})
    assert queue.number_of_items() == 0


def test_a_stored_payload_nested_too_deeply_is_a_payload_error() -> None:
    too_deep = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(bridge.PayloadError, match="nested too deeply"):
        bridge.JsonCodec().decode(too_deep)
