"""PHP's ``serialize()`` format for the values that map safely, both ways: the ``php`` codec.

Drupal keeps each queue item's data as ``serialize($data)`` and reads it back
with ``unserialize()``. This codec writes and reads that format for the
values that mean the same thing in PHP and in Python, and refuses the rest:

=====================  =============================  ==========================
Python                 PHP                            serialized
=====================  =============================  ==========================
``None``               ``NULL``                       ``N;``
``bool``               ``bool``                       ``b:1;``
``int`` (64-bit)       ``int``                        ``i:42;``
``float`` (not NaN)    ``float``                      ``d:0.5;`` ``d:INF;``
``str``                string (its UTF-8 bytes)       ``s:2:"hé";`` (3 bytes)
``bytes`` (not UTF-8)  string (those bytes)           ``s:1:"\\xff";``
``list``               array keyed 0..n-1 in order    ``a:1:{i:0;...}``
``dict`` (int, str     array with other keys          ``a:1:{s:1:"k";...}``
keys)
=====================  =============================  ==========================

Every value accepted comes back equal, and of the same type, after a round
trip through bridge or through PHP (``unserialize`` then ``serialize``).
That is why some values are refused although PHP could hold them:

* Strings are bytes in PHP. A PHP string that is valid UTF-8 decodes to
  ``str``; one that is not decodes to ``bytes``. So ``bytes`` that are
  valid UTF-8 are refused (they would come back as ``str``: pass ``str``),
  and so is a ``str`` with an unpaired surrogate (it has no UTF-8 bytes).
* PHP has one array type. An array keyed ``0..n-1`` in order decodes to a
  ``list``; any other to a ``dict``. So a dict keyed ``0..n-1`` in order,
  and the empty dict, are refused (they would come back as lists).
* PHP turns a string key that reads as a decimal integer (``"5"``, not
  ``"05"``) into an int key; such a ``str`` key is refused.
* Ints beyond 64 bits (PHP would make them floats), NaN (never equal to
  itself, as the json codec refuses it), tuples, sets, subclasses of the
  types above and anything else are refused.

Objects (``O:``, ``C:``, enums ``E:``) and references (``r:``, ``R:``) are
refused on decode with :class:`~bridge.errors.PayloadError` naming the class
or the tag, and never instantiated: unserializing objects is how PHP object
injection works, and there is no Python class they could safely become.
Decoding never evaluates anything; it is a parser of the grammar above.
"""

from __future__ import annotations

import math
import re
from typing import Any

from bridge.errors import PayloadError

MAX_DEPTH = 200
"""Arrays nested deeper than this are refused both ways (PHP's own limit is 4096):
each level is two Python frames, and the interpreter's default limit is 1000."""
_INT64 = (-(2**63), 2**63 - 1)
_INT_KEY = re.compile(rb"^(?:0|-?[1-9][0-9]*)$")
"""A string key PHP turns into an int key (when it also fits in 64 bits)."""
_INT = re.compile(rb"[+-]?[0-9]+")
_FLOAT = re.compile(rb"[+-]?(?:INF|NAN|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)")
_HINT = (
    "the php codec stores None, bool, int (64-bit), float (not NaN), str, bytes that are "
    "not UTF-8, lists, and dicts with int or str keys"
)


class PhpCodec:
    """PHP ``serialize()`` for the values that map safely (see the module docstring)."""

    name = "php"

    def encode(self, data: Any) -> bytes:
        out: list[bytes] = []
        try:
            _encode(data, out, "data", 0)
        except RecursionError:  # called deep in a stack already
            raise _refuse("arrays nested too deeply for this stack", "data") from None
        return b"".join(out)

    def decode(self, payload: bytes) -> Any:
        reader = _Reader(bytes(payload))
        try:
            value = reader.value("data", 0)
        except RecursionError:
            raise PayloadError("stored payload nests arrays too deeply for this stack") from None
        if reader.pos != len(reader.data):
            raise reader.error("trailing bytes after the value")
        return value


def dumps(data: Any) -> bytes:
    """``serialize($data)`` as PHP writes it, for the values the codec accepts."""
    return PhpCodec().encode(data)


def loads(payload: bytes) -> Any:
    """``unserialize($payload)`` for the values the codec accepts; PayloadError otherwise."""
    return PhpCodec().decode(payload)


def _refuse(what: str, where: str) -> PayloadError:
    return PayloadError(f"the php codec cannot store {what} at {where}; {_HINT}")


def _encode(value: Any, out: list[bytes], where: str, depth: int) -> None:
    kind = type(value)
    if value is None:
        out.append(b"N;")
    elif kind is bool:
        out.append(b"b:1;" if value else b"b:0;")
    elif kind is int:
        if not _INT64[0] <= value <= _INT64[1]:
            raise _refuse("an int beyond 64 bits (PHP would make it a float)", where)
        out.append(b"i:%d;" % value)
    elif kind is float:
        out.append(b"d:" + _float_text(value, where) + b";")
    elif kind is str or kind is bytes:
        raw = _string_bytes(value, where)
        out.append(b's:%d:"' % len(raw) + raw + b'";')
    elif kind is list:
        _encode_array(enumerate(value), len(value), out, where, depth)
    elif kind is dict:
        _check_dict(value, where)
        _encode_array(value.items(), len(value), out, where, depth)
    else:
        raise _refuse(f"a value of type {kind.__name__}", where)


def _encode_array(pairs: Any, size: int, out: list[bytes], where: str, depth: int) -> None:
    if depth >= MAX_DEPTH:
        raise _refuse(f"arrays nested more than {MAX_DEPTH} deep", where)
    out.append(b"a:%d:{" % size)
    for key, item in pairs:
        if type(key) is int:
            out.append(b"i:%d;" % key)
        else:
            raw = _string_bytes(key, f"a key of {where}")
            out.append(b's:%d:"' % len(raw) + raw + b'";')
        _encode(item, out, f"{where}[{key!r}]", depth + 1)
    out.append(b"}")


def _check_dict(value: dict[Any, Any], where: str) -> None:
    """Refuse a dict PHP would give back changed: as a list, or with other keys."""
    if not value:
        raise _refuse("an empty dict (an empty PHP array comes back as []; pass [])", where)
    for key in value:
        if type(key) is int:
            if not _INT64[0] <= key <= _INT64[1]:
                raise _refuse(f"dict key {key} beyond 64 bits", where)
        elif type(key) is str or type(key) is bytes:
            raw = _string_bytes(key, f"a key of {where}")
            if _is_int_key(raw):
                raise _refuse(f"dict key {key!r} (PHP makes it the int key {int(raw)})", where)
        else:
            raise _refuse(f"dict key {key!r} of type {type(key).__name__}", where)
    if list(value) == list(range(len(value))):
        raise _refuse("a dict keyed 0..n-1 in order (it comes back as a list; pass one)", where)


def _string_bytes(value: str | bytes, where: str) -> bytes:
    if isinstance(value, str):
        try:
            return value.encode("utf-8")
        except UnicodeEncodeError:
            raise _refuse(
                "a str with an unpaired surrogate (it has no UTF-8 form)", where
            ) from None
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return value
    raise _refuse("bytes that are valid UTF-8 (they come back as str; pass str)", where)


def _float_text(value: float, where: str) -> bytes:
    if math.isnan(value):
        raise _refuse("float NaN (never equal to itself)", where)
    if math.isinf(value):
        return b"INF" if value > 0 else b"-INF"
    # repr is the shortest text that reads back as the same double, as PHP's
    # own serialize (serialize_precision -1) writes; PHP reads "1e+25" too.
    return repr(value).encode("ascii")


def _is_int_key(raw: bytes) -> bool:
    return bool(_INT_KEY.match(raw)) and _INT64[0] <= int(raw) <= _INT64[1]


class _Reader:
    """A cursor over serialized bytes; each method reads one construct or raises."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def error(self, problem: str) -> PayloadError:
        shown = self.data[self.pos : self.pos + 40]
        return PayloadError(
            f"stored payload is not PHP-serialized data the php codec reads: {problem} "
            f"at byte {self.pos} ({shown!r})"
        )

    def value(self, where: str, depth: int) -> Any:
        tag = self.data[self.pos : self.pos + 2]
        if tag == b"N;":
            self.pos += 2
            return None
        if tag == b"b:":
            self.pos += 2
            flag = self.until(b";")
            if flag not in (b"0", b"1"):
                raise self.error("a bool that is not 0 or 1")
            return flag == b"1"
        if tag == b"i:":
            self.pos += 2
            return self.integer(self.until(b";"))
        if tag == b"d:":
            self.pos += 2
            text = self.until(b";")
            if not _FLOAT.fullmatch(text):
                raise self.error("a malformed float")
            return float(text)
        if tag == b"s:":
            return _text(self.string())
        if tag == b"a:":
            return self.array(where, depth)
        raise self.refused(tag, where)

    def refused(self, tag: bytes, where: str) -> PayloadError:
        if tag in (b"O:", b"C:"):
            self.pos += 2
            length = self.integer(self.until(b":"))
            name = self.data[self.pos + 1 : self.pos + 1 + length].decode("utf-8", "replace")
            return PayloadError(
                f"stored payload holds a PHP object of class {name!r} at {where}; the php "
                "codec never instantiates objects (store arrays instead)"
            )
        if tag == b"E:":
            return PayloadError(f"stored payload holds a PHP enum at {where}; refused")
        if tag in (b"r:", b"R:"):
            return PayloadError(
                f"stored payload holds a PHP reference ({tag.decode()}) at {where}; the php "
                "codec refuses references"
            )
        return self.error(f"an unknown or unsupported tag {tag!r}")

    def until(self, end: bytes) -> bytes:
        stop = self.data.find(end, self.pos)
        if stop < 0:
            raise self.error(f"no {end.decode()!r} to end the value")
        text = self.data[self.pos : stop]
        self.pos = stop + 1
        return text

    def integer(self, text: bytes) -> int:
        if not _INT.fullmatch(text):
            raise self.error("a malformed integer")
        number = int(text)
        if not _INT64[0] <= number <= _INT64[1]:
            raise self.error("an integer beyond 64 bits")
        return number

    def string(self) -> bytes:
        self.pos += 2
        length = self.integer(self.until(b":"))
        start = self.pos + 1
        end = start + length
        if length < 0 or self.data[self.pos : start] != b'"' or self.data[end : end + 2] != b'";':
            raise self.error("a string whose length does not match its quotes")
        self.pos = end + 2
        return self.data[start:end]

    def array(self, where: str, depth: int) -> Any:
        if depth >= MAX_DEPTH:
            raise PayloadError(f"stored payload nests arrays more than {MAX_DEPTH} deep")
        self.pos += 2
        size = self.integer(self.until(b":"))
        if size < 0 or self.data[self.pos : self.pos + 1] != b"{":
            raise self.error("a malformed array header")
        self.pos += 1
        result: dict[Any, Any] = {}
        for _ in range(size):
            key = self.key()
            if key in result:
                raise self.error(f"a duplicate array key {key!r}")
            result[key] = self.value(f"{where}[{key!r}]", depth + 1)
        if self.data[self.pos : self.pos + 1] != b"}":
            raise self.error("an array longer than its count")
        self.pos += 1
        if list(result) == list(range(len(result))):
            return list(result.values())
        return result

    def key(self) -> int | str | bytes:
        tag = self.data[self.pos : self.pos + 2]
        if tag == b"i:":
            self.pos += 2
            return self.integer(self.until(b";"))
        if tag == b"s:":
            raw = self.string()
            # As PHP reads it: a decimal-integer string key is an int key.
            return int(raw) if _is_int_key(raw) else _text(raw)
        raise self.error("an array key that is neither int nor string")


def _text(raw: bytes) -> str | bytes:
    """A PHP string: str when its bytes are UTF-8, else the bytes themselves."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw
