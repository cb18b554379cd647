"""The fast report encoder gives exactly the RFC 8785 reference bytes."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from powermeter.methodology.merkle import canonical_json
from powermeter.reports.canonical import fast_canonical_json

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**53), 2**53), st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
values: Any = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=8), inner, max_size=5)),
    max_leaves=30,
)


@given(values)
@settings(max_examples=400, deadline=None)
def test_fast_encoder_matches_the_reference(value: Any) -> None:
    assert fast_canonical_json(value) == canonical_json(value)


def test_fast_encoder_on_report_shaped_numbers() -> None:
    doc = {"b": [1.0, 0.1 + 0.2, 1e21, 1e-7, -0.0, 12.5, 2**53], "a": {"é": 1, "z": "\x00\u2028"}, "c": None}
    assert fast_canonical_json(doc) == canonical_json(doc)
