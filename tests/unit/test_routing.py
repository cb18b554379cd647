"""Routing decision, latency model and request energy model."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from powermeter.data.grid import load_grid_data
from powermeter.methodology.routing import (
    Candidate,
    Policy,
    decide,
    great_circle_km,
    modelled_rtt_ms,
    payload_gb,
    request_footprint,
)

MODEL = load_grid_data().request_energy


def cands(**intensities: float) -> list[Candidate]:
    return [Candidate(r, ci, rtt_ms=10.0) for r, ci in intensities.items()]


# ---------------------------------------------------------------------------- decision


def test_cleanest_wins_and_alternatives_are_ranked() -> None:
    d = decide(cands(PJM=400, CAISO=92, BPA=115), Policy())
    assert d.chosen is not None
    assert d.chosen.region == "CAISO"
    assert [r.region for r in d.ranked] == ["CAISO", "BPA", "PJM"]
    assert not d.kept_current


def test_latency_bound_excludes_far_regions() -> None:
    c = [Candidate("near", 300, rtt_ms=5), Candidate("far", 50, rtt_ms=90), Candidate("nodata", 10)]
    d = decide(c, Policy(max_latency_ms=40))
    assert d.chosen is not None
    assert d.chosen.region == "near"
    assert {(e.region, e.reason) for e in d.excluded} == {("far", "latency"), ("nodata", "latency_unknown")}
    # Without a bound the far, clean one wins.
    assert decide(c, Policy()).chosen.region == "nodata"  # type: ignore[union-attr]


def test_nothing_feasible() -> None:
    c = [Candidate("a", 100, rtt_ms=100, healthy=True), Candidate("b", 1, healthy=False)]
    d = decide(c, Policy(max_latency_ms=10))
    assert d.chosen is None
    assert d.ranked == ()
    assert len(d.excluded) == 2


def test_carbon_weight_trades_carbon_for_latency() -> None:
    c = [Candidate("near", 200, rtt_ms=2), Candidate("far", 150, rtt_ms=80)]
    assert decide(c, Policy(carbon_weight=1.0)).chosen.region == "far"  # type: ignore[union-attr]
    assert decide(c, Policy(carbon_weight=0.0)).chosen.region == "near"  # type: ignore[union-attr]
    # w = 0.7: near = 0.7·1 + 0.3·0.025 = 0.7075 ; far = 0.7·0.75 + 0.3·1 = 0.825
    assert decide(c, Policy(carbon_weight=0.7)).chosen.region == "near"  # type: ignore[union-attr]


def test_margin_keeps_current_on_near_ties_and_switches_on_real_gains() -> None:
    c = cands(A=100, B=95)
    d = decide(c, Policy(margin=0.10), current="A")
    assert d.chosen.region == "A"
    assert d.kept_current
    assert d.best.region == "B"
    assert [r.region for r in d.ranked] == ["A", "B"]
    d = decide(cands(A=100, B=85), Policy(margin=0.10), current="A")
    assert d.chosen.region == "B"
    assert not d.kept_current
    # Exact tie keeps the current choice even with no margin.
    assert decide(cands(A=100, B=100), Policy(margin=0.0), current="B").chosen.region == "B"  # type: ignore[union-attr]


def test_current_that_became_infeasible_is_dropped() -> None:
    c = [Candidate("A", 100, rtt_ms=10, healthy=False), Candidate("B", 101, rtt_ms=10)]
    assert decide(c, Policy(), current="A").chosen.region == "B"  # type: ignore[union-attr]


def test_policy_validation() -> None:
    with pytest.raises(ValueError, match="carbon_weight"):
        Policy(carbon_weight=1.5)
    with pytest.raises(ValueError, match="margin"):
        Policy(margin=1.0)
    with pytest.raises(ValueError, match="max_latency_ms"):
        Policy(max_latency_ms=0)


regions = st.lists(st.sampled_from("ABCDEFGHIJ"), min_size=1, max_size=10, unique=True)


@st.composite
def candidate_sets(draw: st.DrawFn) -> list[Candidate]:
    names = draw(regions)
    return [
        Candidate(
            n,
            draw(st.floats(0, 1500)),
            rtt_ms=draw(st.one_of(st.none(), st.floats(0, 300))),
            healthy=draw(st.booleans()),
        )
        for n in names
    ]


@given(candidate_sets(), st.floats(0, 1), st.one_of(st.none(), st.floats(1, 300)))
def test_chosen_is_feasible_and_no_feasible_candidate_scores_lower(
    cs: list[Candidate], w: float, max_lat: float | None
) -> None:
    d = decide(cs, Policy(carbon_weight=w, max_latency_ms=max_lat))
    feasible = {
        c.region for c in cs if c.healthy and (max_lat is None or (c.rtt_ms is not None and c.rtt_ms <= max_lat))
    }
    assert {r.region for r in d.ranked} == feasible
    assert len(d.ranked) + len(d.excluded) == len(cs)
    if d.chosen is not None:
        assert all(d.chosen.score <= r.score for r in d.ranked)


@given(candidate_sets(), st.floats(0, 0.5))
def test_hysteresis_never_flaps_on_unchanged_data(cs: list[Candidate], margin: float) -> None:
    policy = Policy(margin=margin)
    first = decide(cs, policy)
    assume(first.chosen is not None)
    second = decide(cs, policy, current=first.chosen.region)  # type: ignore[union-attr]
    assert second.chosen == first.chosen


@given(st.floats(1, 1000), st.floats(0.0, 0.5))
def test_switch_iff_gain_exceeds_margin(ci_current: float, margin: float) -> None:
    gain = margin + 0.01
    better = ci_current * (1 - gain)
    d = decide(cands(cur=ci_current, new=better), Policy(margin=margin), current="cur")
    assert d.chosen.region == "new"  # type: ignore[union-attr]
    near = ci_current * (1 - margin * 0.5)
    d = decide(cands(cur=ci_current, new=near), Policy(margin=margin), current="cur")
    assert d.chosen.region == "cur"  # type: ignore[union-attr]


# ---------------------------------------------------------------------------- latency model


def test_great_circle_known_distance() -> None:
    # New York – London ≈ 5,570 km
    assert great_circle_km(40.71, -74.01, 51.51, -0.13) == pytest.approx(5570, rel=0.01)


def test_rtt_model_by_hand() -> None:
    # 1,000 km: 2 · 2.1 · 1000 / (299.792458 / 1.4682) = 20.57 ms
    assert modelled_rtt_ms(1000) == pytest.approx(2 * 2.1 * 1000 / (299.792458 / 1.4682))
    assert modelled_rtt_ms(0) == 1.0


@given(st.floats(0, 20000), st.floats(0, 20000))
def test_rtt_is_monotone_in_distance(a: float, b: float) -> None:
    assert (modelled_rtt_ms(a) <= modelled_rtt_ms(b)) == (a <= b) or modelled_rtt_ms(a) == modelled_rtt_ms(b)


# ---------------------------------------------------------------------------- energy model


def test_request_energy_by_hand() -> None:
    fp = request_footprint(payload_gb(128, "MB"), MODEL, destination_g_per_kwh=92)
    assert fp.payload_gb == pytest.approx(0.128)
    assert fp.compute_kwh == pytest.approx(0.128 * 0.055)
    assert fp.network_kwh == pytest.approx(0.128 * 0.059)
    assert fp.emissions_g == pytest.approx(0.128 * 0.114 * 92)


def test_network_share_uses_the_path_mean() -> None:
    fp = request_footprint(1.0, MODEL, destination_g_per_kwh=100, source_g_per_kwh=300)
    assert fp.emissions_g == pytest.approx(0.055 * 100 + 0.059 * 200)


def test_payload_units() -> None:
    assert payload_gb(1, "GB") == 1
    assert payload_gb(1000, "KB") == pytest.approx(1e-3)
    assert payload_gb(5, "B") == 5e-9
    with pytest.raises(ValueError, match="unit"):
        payload_gb(1, "TiB")
    with pytest.raises(ValueError, match="negative"):
        request_footprint(-1, MODEL, 100)


@given(st.floats(0, 1e4), st.floats(0, 1500), st.floats(0, 1500))
def test_emissions_are_monotone_in_destination_intensity(size: float, a: float, b: float) -> None:
    ea = request_footprint(size, MODEL, a, 200).emissions_g
    eb = request_footprint(size, MODEL, b, 200).emissions_g
    assert (a <= b) <= (ea <= eb + 1e-9)
