"""The one RFC 8785 encoder, byte for byte against the ``rfc8785`` package (the reference the docs name)."""

from __future__ import annotations

import json
import math
import struct
from decimal import Decimal
from typing import Any

import pytest
import rfc8785
from hypothesis import example, given, settings
from hypothesis import strategies as st

from powermeter.methodology.canonical import (
    MAX_SAFE_INTEGER,
    CanonicalJSONError,
    canonical_bytes,
    canonical_text,
    json_number,
    json_string,
    number_fragments,
    number_texts,
    plain_double,
    presorted_bytes,
    reference_bytes,
    string_bytes,
    string_fragments,
)

# --- strategies -----------------------------------------------------------------------------------

# Code points that stress UTF-16 ordering: ASCII, Latin-1, the BMP just below and above the surrogate
# block (U+D7FF, U+E000, U+FB33, U+FFFF) and astral planes (which sort *below* U+E000 in UTF-16 but
# above it in code-point and UTF-8 order).
_tricky_chars = st.sampled_from(
    ["a", "A", "1", "\r", "\x00", "\x1f", "\x7f", '"', "\\", "/", "\u0080", "\u00f6", "\u20ac", "\u2028",
     "\ud7ff", "\ue000", "\ufb33", "\uffff", "\U00010000", "\U0001f600", "\U0010ffff"]
)  # fmt: skip
_unicode = st.characters(exclude_categories=("Cs",))  # every code point but lone surrogates
keys = st.text(_tricky_chars | _unicode, max_size=6)
strings = st.text(_tricky_chars | _unicode | st.characters(max_codepoint=0x1F), max_size=12)
special_floats = st.sampled_from(
    [0.0, -0.0, 1e21, 1e-7, 1e-6, 9.999999999999997e-7, 5e-324, -5e-324, 1.7976931348623157e308, 1e16, 1e15,
     0.0001, 0.00001, 123456789012345680000.0, 2.0**53, -(2.0**53), 0.1, 1 / 3, 100.0, 1e23, 4.35]
)  # fmt: skip
floats = st.floats(allow_nan=False, allow_infinity=False) | special_floats
safe_ints = st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER) | st.sampled_from(
    [0, -1, MAX_SAFE_INTEGER, -MAX_SAFE_INTEGER, 2**31, 10**15]
)
scalars = st.none() | st.booleans() | safe_ints | floats | strings
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=5)
        | st.lists(children, max_size=3).map(tuple)
        | st.dictionaries(keys, children, max_size=5)
    ),
    max_leaves=25,
)


# --- against the reference implementation ------------------------------------------------------------


@given(json_values)
@settings(max_examples=1500, deadline=None)
@example({"\ue000": 1, "\U0001f600": 2, "\ud7ff": 3, "z": 4})
@example({"\U00010000": [1e21, 1e-7, -0.0, 5e-324], "\uffff": {"\x1f": "\x00\u2028"}})
@example([2**53 - 1, -(2**53 - 1), 1e21, 1e-7, -0.0, 5e-324, 9007199254740992.0])
def test_bytes_equal_the_rfc8785_package(value: Any) -> None:
    expected = rfc8785.dumps(value)
    assert canonical_bytes(value) == expected
    assert reference_bytes(value) == expected
    assert canonical_bytes(value, lone_surrogates="reject") == expected
    assert canonical_text(value) == expected.decode()


@given(floats)
@settings(max_examples=3000, deadline=None)
def test_every_double_is_written_as_ecmascript_number_to_string(x: float) -> None:
    assert json_number(x).encode() == rfc8785.dumps(x)
    assert float(json_number(x)) == x


@given(st.lists(floats, max_size=40))
@settings(max_examples=1000, deadline=None)
def test_number_fragments_are_the_numbers_json_form_or_none(values: list[float]) -> None:
    parts = number_fragments(values)
    if parts is not None:
        assert parts == [rfc8785.dumps(x) for x in values]


@given(st.lists(st.floats(min_value=1e-4, max_value=1e15, allow_subnormal=False), min_size=1, max_size=20))
def test_number_fragments_take_the_one_call_path_for_plain_positive_numbers(values: list[float]) -> None:
    # the receipts' hot loop relies on this range going fast (kWh, gCO2e, cores, minutes)
    assert number_fragments(values) == [rfc8785.dumps(x) for x in values]


@given(st.lists(floats, max_size=30))
@settings(max_examples=500, deadline=None)
def test_number_texts_are_the_numbers_json_form(values: list[float]) -> None:
    # the batch path's columns: one orjson call, the values it writes otherwise one by one
    assert number_texts(values) == [rfc8785.dumps(x) for x in values]
    assert number_texts(values) == [json_number(x).encode() for x in values]


def test_number_texts_refuse_what_json_number_refuses() -> None:
    with pytest.raises(CanonicalJSONError):
        number_texts([1.0, math.nan])
    with pytest.raises(CanonicalJSONError):
        number_texts([math.inf, 2.5])


@given(st.lists(strings | st.text(st.sampled_from(['"', "\\", ",", "a", "\ud800", "\u2028"]), max_size=6), max_size=12))
@settings(max_examples=500, deadline=None)
def test_string_fragments_are_the_literals_without_quotes(values: list[str]) -> None:
    # the batch path's string columns: one orjson call when nothing needs escaping, else one by one
    assert string_fragments(values) == [string_bytes(v)[1:-1] for v in values]


def test_string_fragments_fixed_cases() -> None:
    assert string_fragments([]) == []
    assert string_fragments(["", ""]) == [b"", b""]
    assert string_fragments(['a","b', "c"]) == [b'a\\",\\"b', b"c"]
    assert string_fragments(["x\ud800", "\u00e9"]) == [b"x\\ud800", "\u00e9".encode()]


@given(floats)
@settings(max_examples=2000, deadline=None)
def test_plain_doubles_are_written_by_orjson_exactly_as_rfc8785(x: float) -> None:
    import orjson

    if plain_double(x):
        assert orjson.dumps(x) == rfc8785.dumps(x)
        assert presorted_bytes({"a": x, "b": "\u2028\x1f"}) == rfc8785.dumps({"b": "\u2028\x1f", "a": x})


@given(strings)
def test_string_literals_equal_the_rfc8785_package(s: str) -> None:
    assert string_bytes(s) == rfc8785.dumps(s)
    assert json_string(s).encode() == rfc8785.dumps(s)


# --- fixed vectors ----------------------------------------------------------------------------------------

# RFC 8785 Appendix B: IEEE-754 bit patterns and their canonical number text.
RFC8785_NUMBERS = {
    "0000000000000000": "0",
    "8000000000000000": "0",
    "0000000000000001": "5e-324",
    "8000000000000001": "-5e-324",
    "7fefffffffffffff": "1.7976931348623157e+308",
    "ffefffffffffffff": "-1.7976931348623157e+308",
    "4340000000000000": "9007199254740992",
    "c340000000000000": "-9007199254740992",
    "4430000000000000": "295147905179352830000",
    "44b52d02c7e14af5": "9.999999999999997e+22",
    "44b52d02c7e14af6": "1e+23",
    "44b52d02c7e14af7": "1.0000000000000001e+23",
    "444b1ae4d6e2ef4e": "999999999999999700000",
    "444b1ae4d6e2ef4f": "999999999999999900000",
    "444b1ae4d6e2ef50": "1e+21",
    "3eb0c6f7a0b5ed8c": "9.999999999999997e-7",
    "3eb0c6f7a0b5ed8d": "0.000001",
    "41b3de4355555553": "333333333.3333332",
    "41b3de4355555554": "333333333.33333325",
    "41b3de4355555555": "333333333.3333333",
    "41b3de4355555556": "333333333.3333334",
    "41b3de4355555557": "333333333.33333343",
    "becbf647612f3696": "-0.0000033333333333333333",
    "43143ff3c1cb0959": "1424953923781206.2",
}


@pytest.mark.parametrize(("bits", "text"), RFC8785_NUMBERS.items())
def test_numbers_of_rfc8785_appendix_b(bits: str, text: str) -> None:
    (value,) = struct.unpack(">d", bytes.fromhex(bits))
    assert canonical_bytes(value) == text.encode()
    assert canonical_bytes([value]) == f"[{text}]".encode()
    assert rfc8785.dumps(value) == text.encode()


def test_the_example_of_rfc8785_section_3_2_2() -> None:
    value = {
        "numbers": [333333333.33333329, 1e30, 4.50, 2e-3, 0.000000000000000000000000001],
        "string": "\u20ac$\u000f\u000aA'\u0042\u0022\u005c\\\"/",
        "literals": [None, True, False],
    }
    expected = (
        '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
        '"string":"\u20ac$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
    ).encode()
    assert canonical_bytes(value) == expected == rfc8785.dumps(value)


def test_keys_sort_by_utf16_code_units_as_rfc8785_section_3_2_3() -> None:
    value = {
        "\u20ac": "Euro Sign",
        "\r": "Carriage Return",
        "\ufb33": "Hebrew Letter Dalet With Dagesh",
        "1": "One",
        "\U0001f600": "Emoji: Grinning Face",
        "\u0080": "Control",
        "\u00f6": "Latin Small Letter O With Diaeresis",
    }
    encoded = canonical_bytes(value)
    assert list(json.loads(encoded)) == ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]
    assert encoded == rfc8785.dumps(value)


def test_strings_escape_controls_only() -> None:
    s = 'a\u2028\u0007\u001f\t\b\f\n\r\x7f/"\\é😀'
    assert canonical_bytes(s) == '"a\u2028\\u0007\\u001f\\t\\b\\f\\n\\r\x7f/\\"\\\\é😀"'.encode()


def test_integers_beyond_2_53_are_doubles_or_refused() -> None:
    # JSON numbers are doubles: an integer a double holds exactly is written as that double ...
    expected = b"[9007199254740992,-9007199254740992,1152921504606847000,1e+21]"
    assert canonical_bytes([2**53, -(2**53), 2**60, 10**21]) == expected
    # ... any other has no JSON form (give it as a string)
    for n in (2**53 + 1, -(2**53) - 1, 10**400):
        with pytest.raises(CanonicalJSONError, match="not exactly an IEEE-754 double"):
            canonical_bytes({"n": n})


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_numbers_are_refused_with_a_clear_error(bad: float) -> None:
    for value in (bad, [1, bad], {"a": {"b": bad}}):
        with pytest.raises(CanonicalJSONError, match="RFC 8785 has no form for NaN or infinities"):
            canonical_bytes(value)
        with pytest.raises(ValueError, match="NaN or infinities"):
            reference_bytes(value)
    with pytest.raises(rfc8785.CanonicalizationError):
        rfc8785.dumps(bad)


@pytest.mark.parametrize("bad", [Decimal("1.5"), {1: "x"}, {"k": object()}, {1.5}, b"bytes"])
def test_values_json_has_no_form_for_are_type_errors(bad: Any) -> None:
    with pytest.raises(TypeError):
        canonical_bytes(bad)


def test_lone_surrogates_are_escaped_as_json_stringify_does_or_refused() -> None:
    # not well-formed Unicode: the rfc8785 package refuses it; receipts signed since v0.1 escaped it
    assert canonical_bytes("\ud800") == b'"\\ud800"'
    assert canonical_bytes({"k\udfff": ["x\ud83dy", "\U0001f600"]}) == b'{"k\\udfff":["x\\ud83dy","\xf0\x9f\x98\x80"]}'
    assert string_bytes("a\udc00") == b'"a\\udc00"'
    assert json_string("a\udc00") == '"a\\udc00"'
    # keys with lone surrogates still sort by UTF-16 code units
    assert canonical_bytes({"\ue000": 1, "\ud800": 2}) == b'{"\\ud800":2,"\xee\x80\x80":1}'
    with pytest.raises(rfc8785.CanonicalizationError):
        rfc8785.dumps("\ud800")
    with pytest.raises(CanonicalJSONError, match="lone surrogate"):
        canonical_bytes({"a": ["\ud800"]}, lone_surrogates="reject")
    with pytest.raises(CanonicalJSONError, match="lone surrogate"):
        json_string("\ud800", lone_surrogates="reject")


def test_subclasses_and_mappings_take_the_reference_path_with_the_same_bytes() -> None:
    from collections import OrderedDict
    from enum import IntEnum, StrEnum
    from types import MappingProxyType

    class Colour(StrEnum):
        RED = "red"

    class Level(IntEnum):
        HIGH = 3

    value = {"b": MappingProxyType({"y": 1, "x": Colour.RED}), "a": OrderedDict(z=Level.HIGH, c=[True])}
    assert (
        canonical_bytes(value)
        == b'{"a":{"c":[true],"z":3},"b":{"x":"red","y":1}}'
        == rfc8785.dumps({"b": {"y": 1, "x": "red"}, "a": {"z": 3, "c": [True]}})
    )


def test_deep_nesting_beyond_orjsons_limit_still_encodes() -> None:
    value: Any = 1.5
    for _ in range(300):
        value = [value]
    assert canonical_bytes(value) == b"[" * 300 + b"1.5" + b"]" * 300
