"""Payload encoding: what ``create_item`` stores and ``claim_item`` gives back.

JSON is the default. It is strict: data must come
back from a claim equal to what was created, so values JSON would silently
change are refused instead of stored. A tuple would come back as a list, a
dict with an int key would come back with a str key, NaN is not JSON: each is
refused at ``create_item`` with a :class:`~bridge.errors.PayloadError` naming
the offending type and where it sits, and nothing is written.

``php`` is PHP's ``serialize()`` format, restricted to the values that map
safely (:mod:`bridge.php_serialize`): Drupal's own ``queue`` table stores
that, and a Drupal site shares it with bridge (``docs/drupal.md``).

Pickle is deliberately not offered: an item that a worker unpickles can run
arbitrary code, and queue tables are often writable by more than one
application.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any, Protocol

from bridge.errors import ConfigurationError, PayloadError


class Codec(Protocol):
    """Turns item data into bytes and back; must round-trip exactly."""

    name: str

    def encode(self, data: Any) -> bytes: ...

    def decode(self, payload: bytes) -> Any: ...


_JSON_SCALARS = (str, int, float, bool, type(None))


def _find_lossy_value(value: Any, where: str) -> str | None:
    """Describe the first value JSON would change or refuse, or None if all is exact."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"dict key {key!r} of type {type(key).__name__} at {where}"
            found = _find_lossy_value(item, f"{where}[{key!r}]")
            if found:
                return found
        return None
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = _find_lossy_value(item, f"{where}[{index}]")
            if found:
                return found
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return f"float {value!r} at {where}"
    if isinstance(value, str) and not _is_utf8(value):
        return f"str with an unpaired surrogate at {where}"
    if isinstance(value, _JSON_SCALARS):
        return None
    return f"value of type {type(value).__name__} at {where}"


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class JsonCodec:
    """UTF-8 JSON that refuses anything it could not give back unchanged."""

    name = "json"

    def encode(self, data: Any) -> bytes:
        try:
            text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError, RecursionError) as exc:
            raise self._refusal(data) from exc
        # json.dumps accepts tuples, non-str keys and subclasses of str/int
        # and changes them on the way; one decode tells us whether it did.
        if json.loads(text) != data:
            raise self._refusal(data)
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise self._refusal(data) from exc

    def decode(self, payload: bytes) -> Any:
        try:
            return json.loads(payload)
        except (UnicodeDecodeError, ValueError) as exc:
            raise PayloadError(f"stored payload is not valid JSON: {exc}") from exc
        except RecursionError as exc:
            # Stored by a process with a deeper stack, or by another program.
            raise PayloadError("stored payload is nested too deeply to decode here") from exc

    @staticmethod
    def _refusal(data: Any) -> PayloadError:
        try:
            where = _find_lossy_value(data, "data")
        except RecursionError:
            where = "data (nested too deeply)"
        return PayloadError(
            f"the json codec cannot store {where or 'this data'} exactly; "
            "use dicts with str keys, lists, str, int, finite float, bool and None"
        )


def _php() -> Codec:
    # Imported on first use: only queues on Drupal's own table need it.
    from bridge.php_serialize import PhpCodec

    return PhpCodec()


_CODECS: dict[str, Callable[[], Codec]] = {"json": JsonCodec, "php": _php}


def get_codec(name: str) -> Codec:
    """The codec registered under ``name``."""
    try:
        return _CODECS[name]()
    except KeyError:
        known = ", ".join(sorted(_CODECS))
        raise ConfigurationError(f"unknown codec {name!r}; known codecs: {known}") from None
