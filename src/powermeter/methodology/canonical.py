"""Canonical JSON, RFC 8785 (JCS): the one encoder every signed or hashed byte string goes through.

Receipts and their Merkle tree heads, the audit chain's entries and checkpoints, signed inference
records, reports and their heads are all serialised here (or by a fragment template checked equal to
:func:`canonical_bytes` in the tests). The bytes are those of the ``rfc8785`` package (the reference
implementation the documentation tells verifiers to use) for every value it accepts; the test suite
checks that byte for byte, on random nested values and on fixed vectors.

What RFC 8785 asks, for the Python values we accept (``dict``/``Mapping`` with ``str`` keys, ``list``,
``tuple``, ``str``, ``int``, ``float``, ``bool``, ``None``):

* object members sorted by the UTF-16 code units of their names; no whitespace;
* strings escaped as ECMAScript ``JSON.stringify`` does: ``\\"``, ``\\\\``, ``\\b \\f \\n \\r \\t``, the
  other controls as ``\\u00xx`` (lower-case hex), everything else as UTF-8;
* numbers as ECMAScript ``Number.prototype.toString`` (shortest round-trip digits, exponent form below
  1e-6 and from 1e21); ``-0`` is ``0``. NaN and the infinities are refused (:class:`CanonicalJSONError`);
  an integer is a double in JSON: one a double holds exactly is written as that double, any other is
  refused (give it as a string).

Beyond RFC 8785: a string with a lone surrogate is not well-formed Unicode (I-JSON forbids it and the
``rfc8785`` package refuses it). By default it is written with ``\\udxxx`` escapes, as ECMAScript's
well-formed ``JSON.stringify`` does, because receipts signed since v0.1 were; ``lone_surrogates="reject"``
refuses it instead (the audit chain does, so that any JCS library re-derives its hashes).

Speed: :func:`canonical_bytes` hands the value to orjson with sorted keys, when that gives the same
bytes. orjson writes a double with its shortest round-trip digits (ECMAScript's too), in plain notation
for magnitudes in [1e-4, 1e16), as ECMAScript does, but keeps ``.0`` on integral values: such doubles go
to orjson as they are (integral ones as ``int``), every other double is pre-rendered by
:func:`json_number` (``orjson.Fragment``). The tests hold the installed orjson to this, byte for byte
against ``rfc8785``. The rest must be provably the same bytes too: object keys whose
characters are all below U+D800 (then UTF-8 byte order, which orjson sorts by, is UTF-16 code-unit
order), plain ``str``/``int``/``float``/``bool``/``None``/``dict``/``list``/``tuple`` values, integers
within ±(2**53 - 1), strings orjson accepts (no lone surrogates). Anything else takes the reference
encoder :func:`reference_bytes`. Pure: nothing of powermeter is imported.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from json.encoder import encode_basestring
from typing import Any, Final, Literal

import orjson

__all__ = [
    "MAX_SAFE_INTEGER",
    "CanonicalJSONError",
    "LoneSurrogates",
    "canonical_bytes",
    "canonical_text",
    "json_number",
    "json_string",
    "number_fragments",
    "number_texts",
    "plain_double",
    "presorted_bytes",
    "reference_bytes",
    "string_bytes",
    "string_fragments",
    "string_literal",
]

MAX_SAFE_INTEGER: Final = 2**53 - 1
"""Largest integer written as is (ECMAScript's ``Number.MAX_SAFE_INTEGER``); beyond it an integer must be
exactly a double, and is written as that double."""

LoneSurrogates = Literal["escape", "reject"]


class CanonicalJSONError(ValueError):
    """A value has no RFC 8785 form: NaN or an infinity, an integer no double holds exactly, or (when
    refused) a string that is not well-formed Unicode."""


string_literal: Final[Callable[[str], str]] = encode_basestring
"""JSON string literal of a *well-formed* string, exactly as RFC 8785 §3.2.2.2 writes it (the stdlib's C
escaper: ``"``, ``\\``, U+0000-U+001F with the short forms, lower-case ``\\u00xx``, nothing else). A lone
surrogate passes through unescaped, so encoding the result as UTF-8 fails: fragment templates built on it
(the audit chain's) rely on that to refuse such strings."""

_SURROGATE = re.compile("[\ud800-\udfff]")
_NOT_BELOW_SURROGATES = re.compile("[\ud800-\U0010ffff]")


# --- scalars ------------------------------------------------------------------------------------


def json_number(x: float) -> str:
    """ECMAScript ``Number::toString(x)`` for a finite double (RFC 8785 §3.2.2.3).

    Raises :class:`CanonicalJSONError` for NaN and the infinities."""
    r = repr(x)
    if "e" not in r and "n" not in r:  # plain notation: repr's shortest digits are ECMAScript's
        if x == 0.0:
            return "0"  # also -0
        return r[:-2] if r.endswith(".0") else r
    return _exponent_number(x)


def _exponent_number(x: float) -> str:
    if x != x or x in (float("inf"), float("-inf")):
        raise CanonicalJSONError(f"{x!r} is not a JSON number: RFC 8785 has no form for NaN or infinities")
    if x == 0.0:
        return "0"
    sign = "-" if x < 0 else ""
    # repr() gives the shortest digit string that round-trips, and of those the closest to x: the
    # digits ECMAScript prescribes. Only where the decimal point goes differs.
    t = Decimal(repr(abs(x))).as_tuple()
    digits = "".join(map(str, t.digits)).rstrip("0")
    exponent = int(t.exponent) + (len(t.digits) - len(digits))  # value = digits × 10^exponent
    k = len(digits)
    n = exponent + k  # value = 0.digits × 10^n
    if k <= n <= 21:
        body = digits + "0" * (n - k)
    elif 0 < n <= 21:
        body = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        body = "0." + "0" * (-n) + digits
    else:
        e = n - 1
        mantissa = digits if k == 1 else digits[0] + "." + digits[1:]
        body = f"{mantissa}e{'+' if e >= 0 else '-'}{abs(e)}"
    return sign + body


def _int_text(value: int) -> str:
    n = int(value)
    if -MAX_SAFE_INTEGER <= n <= MAX_SAFE_INTEGER:
        return str(n)
    try:
        as_double = float(n)
    except OverflowError:
        as_double = float("inf")
    if as_double == n:  # exactly a double: the JSON number it is
        return json_number(as_double)
    raise CanonicalJSONError(f"integer {n} is not exactly an IEEE-754 double (a JSON number); give it as a string")


def _escaped_surrogates(s: str) -> str:
    """A string literal with every lone surrogate as ``\\udxxx`` (ECMAScript's well-formed JSON.stringify)."""
    if _SURROGATE.search(s) is None:
        return encode_basestring(s)
    parts = [f"\\u{ord(ch):04x}" if 0xD800 <= ord(ch) <= 0xDFFF else encode_basestring(ch)[1:-1] for ch in s]
    return '"' + "".join(parts) + '"'


def json_string(s: str, *, lone_surrogates: LoneSurrogates = "escape") -> str:
    """The RFC 8785 string literal of ``s`` (see the module notes for lone surrogates)."""
    if _SURROGATE.search(s) is None:
        return encode_basestring(s)
    if lone_surrogates == "reject":
        raise CanonicalJSONError("string is not well-formed Unicode (lone surrogate)")
    return _escaped_surrogates(s)


def string_bytes(s: str) -> bytes:
    """The RFC 8785 string literal of ``s``, UTF-8 encoded (lone surrogates escaped)."""
    try:
        return orjson.dumps(s)
    except TypeError:  # a lone surrogate: orjson refuses it
        return _escaped_surrogates(s).encode()


def string_fragments(values: Sequence[str]) -> list[bytes]:
    """Every string's RFC 8785 literal without its two quotes (``string_bytes(v)[1:-1]``), from one
    orjson call when no string needs an escape (the receipt hot loops put the quotes in their templates).

    orjson writes a list of strings as ``["a","b"]``; when its output holds no backslash, no string
    was escaped, so none contains a ``"``, and the literals' contents are exactly the pieces between
    ``","``. Any escape (a quote, a backslash, a control character) or a lone surrogate (orjson refuses
    it) takes :func:`string_bytes` per string.
    """
    if not values:
        return []
    try:
        raw = orjson.dumps(values)
    except TypeError:  # a lone surrogate
        return [string_bytes(v)[1:-1] for v in values]
    if b"\\" in raw:
        return [string_bytes(v)[1:-1] for v in values]
    return raw[2:-2].split(b'","')


def number_fragments(values: Sequence[float]) -> list[bytes] | None:
    """Every double of ``values`` in ECMAScript form, from one orjson call (the receipt hot loops), or
    ``None`` when one of them needs :func:`json_number`.

    orjson writes a double with the same shortest round-trip digits as ECMAScript; in plain notation the
    text is then the same but for the ``.0`` orjson keeps on integral values, removed here (in a list of
    numbers ``.0,`` can only end an integral value). Any exponent (orjson switches to it at other bounds
    than ECMAScript), any ``-`` (``-0.0``) and any non-finite value (``null``) answer ``None``.
    """
    if not values:
        return []
    raw = orjson.dumps(values)
    if b"e" in raw or b"-" in raw or b"n" in raw:
        return None
    return (raw[1:-1] + b",").replace(b".0,", b",").split(b",")[:-1]


def number_texts(values: Sequence[float]) -> list[bytes]:
    """Every double of ``values`` in ECMAScript form (:func:`json_number`), from one orjson call: as
    :func:`number_fragments`, but a value orjson writes otherwise (an exponent, ``-``, a non-finite
    value) is written by :func:`json_number` alone instead of sending the whole list there (which
    raises for a non-finite value, as :func:`canonical_bytes` does)."""
    if not values:
        return []
    raw = orjson.dumps(values)
    parts = (raw[1:-1] + b",").replace(b".0,", b",").split(b",")[:-1]
    if b"e" in raw or b"-" in raw or b"n" in raw:
        for i, part in enumerate(parts):
            if b"e" in part or b"-" in part or b"n" in part:
                parts[i] = json_number(values[i]).encode()
    return parts


def plain_double(x: float) -> bool:
    """Whether orjson writes the double ``x`` exactly as RFC 8785 does: a non-integral magnitude in
    [1e-4, 1e16) (plain notation in both, the same shortest round-trip digits)."""
    return 1e-4 <= (x if x >= 0.0 else -x) < 1e16 and not x.is_integer()


def presorted_bytes(obj: Mapping[str, str | float]) -> bytes:
    """:func:`canonical_bytes` of a flat object whose keys the caller wrote in ASCII and in sorted order,
    with string values and doubles for which :func:`plain_double` holds (a report hashes one such record
    per covered inference: this is three times faster). The caller's tests check it against
    :func:`reference_bytes`; a string with a lone surrogate takes the full encoder."""
    try:
        return orjson.dumps(obj)
    except TypeError:
        return canonical_bytes(obj)


# --- the reference encoder ---------------------------------------------------------------------


def _utf16_key(item: tuple[str, Any]) -> bytes:
    return item[0].encode("utf-16-be", "surrogatepass")


def _encode(value: object, out: list[str], string: Callable[[str], str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        out.append(string(value))
    elif isinstance(value, int):
        out.append(_int_text(value))
    elif isinstance(value, float):
        out.append(json_number(value))
    elif isinstance(value, Mapping):
        items = list(value.items())
        for k, _ in items:
            if not isinstance(k, str):
                raise TypeError(f"JSON object keys must be strings, not {type(k).__name__}")
        items.sort(key=_utf16_key)  # RFC 8785 §3.2.3: by UTF-16 code units
        out.append("{")
        for i, (k, v) in enumerate(items):
            if i:
                out.append(",")
            out.append(string(k))
            out.append(":")
            _encode(v, out, string)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for i, v in enumerate(value):
            if i:
                out.append(",")
            _encode(v, out, string)
        out.append("]")
    else:
        raise TypeError(f"{type(value).__name__} has no canonical JSON form (give a Decimal as a string)")


def reference_bytes(value: object, *, lone_surrogates: LoneSurrogates = "escape") -> bytes:
    """RFC 8785 bytes of ``value`` by the plain recursive encoder (the definition :func:`canonical_bytes`
    takes a short cut to). Raises :class:`CanonicalJSONError` (a ``ValueError``) for a value JSON cannot
    hold and ``TypeError`` for a type it has no form for."""
    out: list[str] = []
    _encode(value, out, encode_basestring)
    text = "".join(out)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate, in a string or a key
        if lone_surrogates == "reject":
            raise CanonicalJSONError("string is not well-formed Unicode (lone surrogate)") from None
    out.clear()
    _encode(value, out, _escaped_surrogates)
    return "".join(out).encode("utf-8")


# --- the fast path -----------------------------------------------------------------------------


class _NotProvablySame(Exception):
    pass


_Fragment = orjson.Fragment


def _prep(v: Any) -> Any:
    """``v`` with every double pre-rendered (``orjson.Fragment``), or :class:`_NotProvablySame`."""
    t = type(v)
    if t is str:
        return v
    if t is float:
        a = v if v >= 0.0 else -v
        if 1e-4 <= a < 1e16:  # orjson writes these in plain notation, with ECMAScript's digits
            if not v.is_integer():
                return v
            if a <= 9007199254740992.0:  # 2**53: integral, so ECMAScript writes the integer
                return int(v)
        return _Fragment(json_number(v))  # also refuses NaN and the infinities
    if t is dict:
        out = {}
        for k, x in v.items():
            if not _key_ok(k):
                raise _NotProvablySame
            out[k] = _prep(x)
        return out
    if t is list or t is tuple:
        return [_prep(x) for x in v]
    if t is int:
        if -MAX_SAFE_INTEGER <= v <= MAX_SAFE_INTEGER:
            return v
        raise _NotProvablySame
    if v is None or t is bool:
        return v
    raise _NotProvablySame


def _key_ok(k: object) -> bool:
    return type(k) is str and (k.isascii() or _NOT_BELOW_SURROGATES.search(k) is None)


def _scalar_as_is(x: object, t: type) -> bool:
    """Whether orjson writes the scalar ``x`` (of type ``t``, not a container) exactly as RFC 8785 does."""
    if t is str or x is None or t is bool:
        return True
    if t is float:
        a = x if x >= 0.0 else -x  # type: ignore[operator]
        return 1e-4 <= a < 1e16 and not x.is_integer()  # type: ignore[operator,attr-defined]
    if t is int:
        return -MAX_SAFE_INTEGER <= x <= MAX_SAFE_INTEGER  # type: ignore[operator]
    return False


def _as_is(v: Any) -> bool:
    """Whether orjson with sorted keys writes ``v`` exactly as RFC 8785 does, with nothing converted
    (the common case: no integral or out-of-range double); checked without allocating. The scalar tests
    are :func:`_scalar_as_is` inlined (this runs on every signed record)."""
    t = type(v)
    if t is dict:
        for k, x in v.items():
            if type(k) is not str or not (k.isascii() or _NOT_BELOW_SURROGATES.search(k) is None):
                return False
            tx = type(x)
            if tx is str or x is None or tx is bool:
                continue
            if tx is float:
                if not (1e-4 <= (x if x >= 0.0 else -x) < 1e16) or x.is_integer():
                    return False
            elif tx is int:
                if not -MAX_SAFE_INTEGER <= x <= MAX_SAFE_INTEGER:
                    return False
            elif tx is dict or tx is list or tx is tuple:
                if not _as_is(x):
                    return False
            else:
                return False
        return True
    if t is list or t is tuple:
        for x in v:
            tx = type(x)
            if tx is dict or tx is list or tx is tuple:
                if not _as_is(x):
                    return False
            elif not _scalar_as_is(x, tx):
                return False
        return True
    return _scalar_as_is(v, t)


_SORT_KEYS = orjson.OPT_SORT_KEYS


def canonical_bytes(value: object, *, lone_surrogates: LoneSurrogates = "escape") -> bytes:
    """RFC 8785 canonical JSON of ``value``, UTF-8 encoded.

    Raises :class:`CanonicalJSONError` (a ``ValueError``) for NaN, infinities, integers no double holds
    exactly and, with ``lone_surrogates="reject"``, strings that are not well-formed Unicode;
    ``TypeError`` for anything else JSON has no form for (e.g. ``Decimal``: give it as a string)."""
    try:
        return orjson.dumps(value if _as_is(value) else _prep(value), option=_SORT_KEYS)
    except (_NotProvablySame, TypeError):  # orjson.JSONEncodeError is a TypeError (e.g. a lone surrogate)
        return reference_bytes(value, lone_surrogates=lone_surrogates)


def canonical_text(value: object, *, lone_surrogates: LoneSurrogates = "escape") -> str:
    """:func:`canonical_bytes` as text."""
    return canonical_bytes(value, lone_surrogates=lone_surrogates).decode("utf-8")
