"""The php codec: PHP's serialize() for the values that map safely, and nothing else.

Property tests: every value built from what the codec accepts comes back
equal and of the same types, through the codec and through real PHP's
unserialize() and serialize(); every value it refuses is refused with
PayloadError; decoding refuses objects and references without building
anything. PHP and bridge sharing a table is tests/test_drupal.py's.
"""

from __future__ import annotations

import base64
import contextlib
import math
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.codecs import get_codec
from bridge.errors import PayloadError
from bridge.php_serialize import MAX_DEPTH, PhpCodec, dumps, loads

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
TEXT = st.text()  # surrogates excluded by default: they have no UTF-8 form
NOT_UTF8 = st.binary(min_size=1).filter(lambda raw: not _is_utf8(raw))


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _int_key(text: str) -> bool:
    try:
        return str(int(text)) == text and -(2**63) <= int(text) < 2**63
    except ValueError:
        return False


KEYS = st.one_of(INT64, TEXT.filter(lambda key: not _int_key(key)), NOT_UTF8)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    INT64,
    st.floats(allow_nan=False),
    TEXT,
    NOT_UTF8,
)


def _mapping(values: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[Any, Any]]:
    # A dict keyed 0..n-1 in order is a list in PHP: the codec refuses it.
    return st.dictionaries(KEYS, values, min_size=1, max_size=5).filter(
        lambda found: list(found) != list(range(len(found)))
    )


VALUES = st.recursive(
    SCALARS, lambda children: st.one_of(st.lists(children, max_size=5), _mapping(children))
)


def same(left: Any, right: Any) -> bool:
    """Equal, and of the same type all the way down (1 is not 1.0 or True)."""
    if type(left) is not type(right):
        return False
    if isinstance(left, list):
        return len(left) == len(right) and all(map(same, left, right))
    if isinstance(left, dict):
        return list(left) == list(right) and all(same(left[k], right[k]) for k in left)
    if isinstance(left, float) and left == 0:
        return math.copysign(1, left) == math.copysign(1, right)
    return bool(left == right)


@settings(max_examples=400)
@given(VALUES)
def test_every_accepted_value_comes_back_the_same(value: Any) -> None:
    assert same(loads(dumps(value)), value)


@given(VALUES)
def test_decoding_what_was_decoded_changes_nothing(value: Any) -> None:
    payload = dumps(value)
    assert dumps(loads(payload)) == payload


def test_the_codec_is_registered_as_php() -> None:
    codec = get_codec("php")
    assert codec.name == "php"
    assert codec.decode(codec.encode({"a": [1]})) == {"a": [1]}


@pytest.mark.parametrize(
    ("value", "serialized"),
    [
        (None, b"N;"),
        (True, b"b:1;"),
        (False, b"b:0;"),
        (-7, b"i:-7;"),
        (0.5, b"d:0.5;"),
        (float("inf"), b"d:INF;"),
        (float("-inf"), b"d:-INF;"),
        ("h\xe9", b's:3:"h\xc3\xa9";'),
        (b"\xff", b's:1:"\xff";'),
        ([], b"a:0:{}"),
        (["a", None], b'a:2:{i:0;s:1:"a";i:1;N;}'),
        ({"k": 1, 5: [True]}, b'a:2:{s:1:"k";i:1;i:5;a:1:{i:0;b:1;}}'),
    ],
)
def test_the_bytes_are_phps(value: Any, serialized: bytes) -> None:
    assert dumps(value) == serialized
    assert same(loads(serialized), value)


@pytest.mark.parametrize(
    ("serialized", "value"),
    [
        (b"d:1.0E+25;", 1e25),  # PHP's own spelling of large floats
        (b"d:-0;", -0.0),
        (b"d:NAN;", math.nan),
        (b'a:1:{s:1:"5";s:4:"five";}', {5: "five"}),  # PHP makes "5" an int key
        (b'a:2:{i:1;s:1:"b";i:0;s:1:"a";}', {1: "b", 0: "a"}),  # not in order: a dict
    ],
)
def test_php_spellings_decode_as_php_reads_them(serialized: bytes, value: Any) -> None:
    decoded = loads(serialized)
    if isinstance(value, float) and math.isnan(value):
        assert math.isnan(decoded)
    else:
        assert same(decoded, value)


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ((1, 2), "tuple"),
        ({1, 2}, "set"),
        (object(), "object"),
        (2**63, "beyond 64 bits"),
        (math.nan, "NaN"),
        ("\ud800", "unpaired surrogate"),
        (b"utf-8 bytes", "valid UTF-8"),
        ({}, "empty dict"),
        ({0: "a", 1: "b"}, "keyed 0..n-1"),
        ({"7": "x"}, "int key 7"),
        ({1.5: "x"}, "of type float"),
        ({True: "x"}, "of type bool"),
        ({"ok": [1, {"deep": (1,)}]}, "data['ok'][1]['deep']"),
    ],
)
def test_what_would_come_back_changed_is_refused(value: Any, named: str) -> None:
    with pytest.raises(PayloadError, match="php codec cannot store") as refused:
        dumps(value)
    assert named in str(refused.value)


@given(st.one_of(st.tuples(SCALARS), st.sets(st.integers(), min_size=1), st.complex_numbers()))
def test_other_types_are_refused(value: Any) -> None:
    with pytest.raises(PayloadError):
        dumps(value)


def test_subclasses_are_refused() -> None:
    class Name(str):
        pass

    with pytest.raises(PayloadError, match="type Name"):
        dumps([Name("x")])


@pytest.mark.parametrize(
    ("serialized", "said"),
    [
        (b'O:8:"stdClass":1:{s:3:"nid";i:1;}', "object of class 'stdClass'"),
        (b'a:1:{i:0;O:4:"Evil":0:{}}', "object of class 'Evil' at data[0]"),
        (b'C:11:"ArrayObject":21:{x:i:0;a:0:{};m:a:0:{}}', "object of class 'ArrayObject'"),
        (b"a:2:{i:0;a:0:{}i:1;R:2;}", "reference (R:)"),
        (b"a:2:{i:0;i:1;i:1;r:2;}", "reference (r:)"),
        (b'E:11:"Suit:Hearts";', "enum"),
    ],
)
def test_objects_and_references_are_refused_never_built(serialized: bytes, said: str) -> None:
    with pytest.raises(PayloadError, match=r"php codec|enum") as refused:
        loads(serialized)
    assert said in str(refused.value)


@pytest.mark.parametrize(
    "serialized",
    [
        b"",
        b"i:1",
        b"i:1;trailing",
        b"i:x;",
        b"i:9223372036854775808;",
        b"b:2;",
        b"d:1e;",
        b'd:"1";',
        b's:5:"abc";',
        b's:-1:"";',
        b"a:2:{i:0;i:1;}",
        b"a:1:{i:0;i:1;i:1;i:2;}",
        b"a:2:{i:0;i:1;i:0;i:2;}",
        b"a:1:{d:0.5;i:1;}",
        b'S:1:"a";',
        b'{"json": true}',
        b"null",
    ],
)
def test_malformed_payloads_are_refused(serialized: bytes) -> None:
    with pytest.raises(PayloadError):
        loads(serialized)


@given(st.binary(max_size=64))
def test_arbitrary_bytes_decode_or_are_refused(raw: bytes) -> None:
    with contextlib.suppress(PayloadError):
        loads(raw)


def test_nesting_is_bounded_both_ways() -> None:
    deep: Any = "bottom"
    for _ in range(MAX_DEPTH + 1):
        deep = [deep]
    with pytest.raises(PayloadError, match="nested more than"):
        dumps(deep)
    payload = b"a:1:{i:0;" * (MAX_DEPTH + 1) + b"N;" + b"}" * (MAX_DEPTH + 1)
    with pytest.raises(PayloadError, match="more than"):
        PhpCodec().decode(payload)


PHP_SCRIPT = Path(__file__).parent / "php" / "system_queue.php"


@settings(max_examples=40, deadline=None)
@given(st.lists(VALUES, min_size=1, max_size=20))
def test_php_reads_what_the_codec_writes_as_the_same_value(values: list[Any]) -> None:
    """Real PHP: unserialize() then serialize() gives back what the codec wrote."""
    if shutil.which("php") is None:
        pytest.fail("php is not installed (apt-get install php-cli php-sqlite3)")
    encoded = [base64.b64encode(dumps(value)).decode() for value in values]
    done = subprocess.run(
        ["php", str(PHP_SCRIPT), "reserialize", "-", *encoded],
        env={**os.environ, "BRIDGE_PHP_DSN": "sqlite::memory:"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    back = [loads(base64.b64decode(line)) for line in done.stdout.split()]
    assert len(back) == len(values)
    assert all(same(php, value) for php, value in zip(back, values, strict=True))
