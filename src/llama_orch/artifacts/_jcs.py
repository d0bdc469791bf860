"""RFC 8785 (JCS) canonical JSON: the bytes of the ``rfc8785`` package, several times faster.

Artifact ids are a SHA-256 over the canonical JSON of what was stored, and every task's record (with
its whole SSE transcript, ~150 KB for 2,000 tokens) is one. The package escapes strings with a regex
callback per escaped character in Python; its string rules are exactly those of CPython's JSON
encoder without ``ensure_ascii`` (``"``, ``\\``, ``\\b \\f \\n \\r \\t`` and the other controls below
U+0020 as lowercase ``\\u00xx``; everything else as it is), so strings go through the encoder's C
function here. Numbers other than integers, which ECMAScript formats its own way, are the package's
own (one call each: rare in what is stored). Object keys are sorted by their UTF-16 code units and
what the package refuses is refused alike, with its exceptions (the tests hold the two together).
"""

from __future__ import annotations

from collections.abc import Callable
from json.encoder import encode_basestring

import rfc8785

CanonicalizationError = rfc8785.CanonicalizationError

_INT_MAX = 2**53 - 1


def dumps(value: object) -> bytes:
    """The canonical JSON of ``value``; raises as ``rfc8785.dumps`` does."""
    parts: list[str] = []
    _emit(value, parts.append)
    return "".join(parts).encode("utf-8")


def _string(text: str) -> str:
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:  # a lone surrogate: refused where it is, as the package does
            raise CanonicalizationError("input contains non-UTF-8 codepoints") from exc
    return encode_basestring(text)


def _utf16(item: tuple[str, object]) -> bytes:
    return item[0].encode("utf-16be")


def _emit(value: object, out: Callable[[str], object]) -> None:
    if value is None:
        out("null")
    elif isinstance(value, bool):
        out("true" if value else "false")
    elif isinstance(value, str):
        out(_string(value))
    elif isinstance(value, int):
        number = int(value)
        if not -_INT_MAX <= number <= _INT_MAX:
            raise rfc8785.IntegerDomainError(number)
        out(str(number))
    elif isinstance(value, float):
        out(rfc8785.dumps(float(value)).decode("ascii"))
    elif isinstance(value, list | tuple):
        out("[")
        for n, item in enumerate(value):
            if n:
                out(",")
            _emit(item, out)
        out("]")
    elif isinstance(value, dict):
        try:
            items = sorted(value.items(), key=_utf16)
        except AttributeError:  # a key that is not a string
            raise CanonicalizationError("object keys must be strings") from None
        out("{")
        for n, (key, item) in enumerate(items):
            if n:
                out(",")
            out(_string(key))
            out(":")
            _emit(item, out)
        out("}")
    else:
        raise CanonicalizationError(f"unsupported type: {type(value)}")


__all__ = ["CanonicalizationError", "dumps"]
