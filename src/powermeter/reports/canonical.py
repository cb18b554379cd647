"""RFC 8785 canonical JSON of a report, fast: orjson with sorted keys, every double pre-rendered in its
ECMAScript form (``orjson.Fragment``). It gives exactly :func:`powermeter.methodology.merkle.canonical_json`'s
bytes for documents whose object keys are ASCII (then UTF-8 byte order = UTF-16 code-unit order) and whose
strings orjson accepts (no lone surrogates); anything else takes the reference encoder.
``tests/unit/test_report_canonical.py`` checks the two agree.
"""

from __future__ import annotations

from typing import Any

import orjson

from powermeter.methodology.merkle import canonical_json, json_number

_MAX_SAFE = 2**53


class _Slow(Exception):
    pass


_PASS = frozenset({str, bool, type(None)})


def _prep(v: Any) -> Any:
    t = type(v)
    if t is float:
        # orjson writes a double exactly as ECMAScript does when it is non-integral and its magnitude is
        # in [1e-4, 1e16) (plain notation, shortest round-trip digits); integral doubles in the safe
        # range print as the integer (-0.0 as 0, as ECMAScript does); anything else the reference way
        a = -v if v < 0 else v
        if 1e-4 <= a < 1e16:
            return int(v) if v.is_integer() else v
        if v == 0.0:
            return 0
        return orjson.Fragment(json_number(v))
    if t is dict:
        try:  # every key a str (join raises otherwise) and ASCII (UTF-8 order = UTF-16 order)
            ascii_keys = "".join(v).isascii()
        except TypeError:
            raise _Slow from None
        if not ascii_keys:
            raise _Slow
        return {k: (x if type(x) in _PASS else _prep(x)) for k, x in v.items()}
    if t is list or t is tuple:
        return [x if type(x) in _PASS else _prep(x) for x in v]
    if t is int:
        if -_MAX_SAFE <= v <= _MAX_SAFE:
            return v
        raise _Slow
    if v is None or t is bool or t is str:
        return v
    raise _Slow


def fast_canonical_json(value: Any) -> bytes:
    try:
        return orjson.dumps(_prep(value), option=orjson.OPT_SORT_KEYS)
    except (_Slow, TypeError):
        return canonical_json(value)
