"""The report's fast paths give exactly what the per-record code gives.

* ``compose._Sums`` (the entries' figures summed by partial sum) against one ``AggregateRow`` per entry
  folded by ``reporting._merge``: the same rows and the same report figures, bit for bit;
* ``ledger._leaf_parts`` (a tree's receipt inputs/results bytes, column by column) against
  ``jobs.receipts.inputs_bytes`` / ``results_bytes`` per receipt, with numbers that need ECMAScript's
  exponent form, negative overheads, integral and tiny doubles.
"""

from __future__ import annotations

import dataclasses
import struct
from collections import namedtuple
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from powermeter.jobs import receipts as rc
from powermeter.methodology import reporting as rp
from powermeter.reports import compose, ledger

_odd = st.sampled_from([0.0, -0.0, 1e-7, 5e-324, 1e16, 2.0**53, 0.1, 1 / 3, 100.0, 1e21, 4.35, -2.5, 6.7e-6])
figure = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12) | _odd

_F = [
    rp.EmissionFactorRef("US", 367.0, "EIA 2024", "v1"),
    rp.EmissionFactorRef("FR", 56.0, "RTE", "v1"),
    None,
]
_M = rp.MarketFactorRef("residual_mix", "AIB FR", 30.0, "AIB", "v2", "combustion", "ok", 2024)
_C = rp.CombustionFactorRef("US", 350.0, 2023, "eGRID", "v3", 367.0, "ok")
# (kind, month, group, own_hardware, factor, methodology, category, market, basis, combustion, versions, gap)
_TEMPLATES = [
    ("job", "2026-01", "2026-01", True, _F[0], "m1", "scope2", _M, "lifecycle", _C, (("a", "1"),), 2),
    ("job", "2026-01", "2026-01", True, _F[0], "m1", "scope2", None, "lifecycle", None, (("a", "1"),), 2),
    ("job", "2026-02", "2026-02", False, _F[1], "m1", "scope3_cat1", None, "combustion", None, (), None),
    ("inference", "2026-01", "2026-01", False, _F[2], "m2", "scope3_cat1", None, "unknown", None, (), None),
]


def _figures(t: int, v: list[float], defaults: bool) -> compose._Figures:
    tpl = _TEMPLATES[t]
    market = v[4] if tpl[7] is not None else None
    generation = v[5] if tpl[9] is not None else None
    if tpl[0] == "inference":
        return (1, v[0], v[1], v[2], 1, v[3], int(defaults), 1, 0, 0.0, v[4], v[5], None, None)
    return (1, v[0], v[1], 0.0, 0, 0.0, int(defaults), 1, 0, v[6], None, None, market, generation)


def _row(t: int, f: compose._Figures) -> rp.AggregateRow:
    kind, month, group, own, factor, meth, category, market, basis, comb, versions, gap = _TEMPLATES[t]
    return rp.AggregateRow(
        kind, month, group, own, factor, meth, f[0], f[1], f[2], f[3], f[4], category, f[5], f[10], f[11], f[12],
        market, f[6], f[7], f[8], basis, f[13], f[9], comb, versions, gap,
    )  # fmt: skip


def _bits(x: object) -> object:
    """A row's fields with every double as its bit pattern (so 0.0 and -0.0 differ)."""
    if isinstance(x, float):
        return struct.pack("<d", x)
    if isinstance(x, tuple):
        return tuple(_bits(y) for y in x)
    return x


def _canon(rows: list[rp.AggregateRow]) -> list[object]:
    return sorted((_bits(dataclasses.astuple(r)) for r in rows), key=repr)


entries = st.lists(
    st.tuples(
        st.integers(0, len(_TEMPLATES) - 1),  # template
        st.integers(0, 2),  # the caller's cheap bucket (several per template: rows() must merge them)
        st.lists(figure, min_size=7, max_size=7),
        st.booleans(),
    ),
    max_size=40,
)


@given(entries)
@settings(max_examples=300, deadline=None)
def test_partial_sums_are_the_rows_reporting_merges_from_one_row_per_entry(items: list[Any]) -> None:
    sums = compose._Sums()
    per_entry: list[rp.AggregateRow] = []
    for t, bucket, values, defaults in items:
        f = _figures(t, values, defaults)
        sums.add((t, bucket), lambda t=t: _TEMPLATES[t], f)
        per_entry.append(_row(t, f))
    merged = sums.rows()
    assert _canon(merged) == _canon(rp._merge(per_entry))
    if per_entry:  # and the report figures built from either are the same bytes
        for group_by in ("month", "location"):
            a = rp.build_figures(per_entry, group_by)
            b = rp.build_figures(merged, group_by)
            assert orjson.dumps(dataclasses.asdict(a)) == orjson.dumps(dataclasses.asdict(b))


_Row = namedtuple("_Row", "leaf_index profile_index account_id kwh co2_grams geo_iso options")


def _profile(pue: float | None) -> ledger._Profile:
    return ledger._Profile("US", {}, {}, [], pue)


# mostly plain positive doubles (so that whole trees take the column path), one in 40 an odd one
small = st.integers(0, 39).flatmap(lambda i: _odd if i == 0 else st.floats(min_value=1e-3, max_value=1e6))
counts = st.sampled_from([0, 1, 2, 4, 8, 16, 0.5, 1e-7, 3.0])


receipt = st.tuples(
    small, small, small, small, small, counts, counts, counts, counts, st.integers(0, 1),
    st.sampled_from(["US", "FR", "aws:us-west-1", "é\u2028\"x", ""]),
    st.sampled_from([None, "", '{"provider":"on-prem"}']),
)  # fmt: skip


@given(st.lists(receipt, min_size=1, max_size=25), st.sampled_from([1.56, 1.0, 1.1e-5, 2.0]))
@settings(max_examples=300, deadline=None)
def test_a_trees_leaf_parts_are_the_per_receipt_bytes(receipts: list[Any], pue: float) -> None:
    n = len(receipts)
    # kwh: the components plus an overhead (r[0]; negative only when odd)
    rows = [_Row(i, r[9], "acct", r[2] + r[3] + r[4] + r[0], r[1], r[10], r[11]) for i, r in enumerate(receipts)]
    det = {
        "cpu_kwh": [r[2] for r in receipts],
        "gpu_kwh": [r[3] for r in receipts],
        "memory_kwh": [r[4] for r in receipts],
        "cpu_cores": [r[5] for r in receipts],
        "duration_minutes": [r[6] for r in receipts],
        "memory_gb": [r[7] for r in receipts],
        "gpu_cores": [r[8] for r in receipts],
    }
    profiles = [_profile(pue), _profile(2.0)]
    inputs, results = ledger._leaf_parts(rows, det, profiles, n, "acct")
    for k, row in enumerate(rows):
        if inputs is not None and not row.options:
            assert inputs[k] == rc.inputs_bytes(
                float(det["duration_minutes"][k]), det["cpu_cores"][k], det["memory_gb"][k], det["gpu_cores"][k],
                row.geo_iso, None,
            )  # fmt: skip
        if results is not None:
            assert results[k] == rc.results_bytes(
                row.kwh,
                row.co2_grams,
                det["cpu_kwh"][k],
                det["gpu_kwh"][k],
                det["memory_kwh"][k],
                (pue, 2.0)[row.profile_index],
            )


def test_plain_numbers_take_the_column_path_and_unusual_trees_the_per_receipt_one() -> None:
    rows = [_Row(i, 0, "acct", 0.5 + i, 180.25 + i, "US", None) for i in range(3)]
    det = {k: [0.125, 0.25, 0.375] for k in ("cpu_kwh", "gpu_kwh", "memory_kwh")}
    det |= {k: [2, 4, 8] for k in ("cpu_cores", "duration_minutes", "memory_gb", "gpu_cores")}
    inputs, results = ledger._leaf_parts(rows, det, [_profile(1.56)], 3, "acct")
    assert inputs is not None
    assert results is not None
    assert inputs[1] == b'{"cpu_cores":4,"duration_minutes":4,"geo_iso":"US","gpu_cores":4,"memory_gb":4}'
    # rows out of leaf order, another account's row, a missing pue, a short column: per receipt instead
    assert ledger._leaf_parts(rows[::-1], det, [_profile(1.56)], 3, "acct") == (None, None)
    assert ledger._leaf_parts(rows, det, [_profile(1.56)], 3, "acct_other") == (None, None)
    assert ledger._leaf_parts(rows, det, [_profile(None)], 3, "acct") == (None, None)
    assert ledger._leaf_parts(rows, det | {"cpu_kwh": [0.1]}, [_profile(1.56)], 3, "acct") == (None, None)
