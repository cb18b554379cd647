"""Compute-job energy & carbon (Green Algorithms formula) against hand-computed values."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from powermeter.data.hardware import load_hardware
from powermeter.data.locations import load_locations, location_lookup
from powermeter.methodology.compute_job import (
    DEFAULT_PUE,
    ComputeJobEstimator,
    JobSpec,
    UnknownLocationError,
    energy_kwh,
    normalise_model,
)


@pytest.fixture(scope="module")
def est() -> ComputeJobEstimator:
    return ComputeJobEstimator(load_hardware(), location_lookup(load_locations()))


def intensity(code: str) -> float:
    loc = load_locations().resolve(code)
    assert loc is not None
    return loc.intensity_g_per_kwh


def test_seed_report_example_by_hand(est: ComputeJobEstimator) -> None:
    # 120 min, 8 cores, 32 GB, 2 GPUs, US, all defaults:
    # P = 8×12 + 2×200 + 32×0.3725 = 507.92 W; × PUE 1.56 × 2 h = 1584.7104 Wh.
    e = est.estimate(JobSpec(120, 8, 32, 2, "US"))
    assert e.energy_kwh == pytest.approx(1.5847104, rel=1e-12)
    assert e.co2_g == pytest.approx(1.5847104 * intensity("US"), rel=1e-12)
    assert e.breakdown() == pytest.approx(
        {"cpu_kwh": 0.192, "gpu_kwh": 0.8, "memory_kwh": 0.02384, "overhead_kwh": 0.5688704, "pue": 1.56}
    )
    assert e.cpu_kwh + e.gpu_kwh + e.memory_kwh + e.overhead_kwh == pytest.approx(e.energy_kwh)


def test_seed_batch_cpu_only_job_by_hand(est: ComputeJobEstimator) -> None:
    # 60 min, 4 cores, 16 GB: (48 + 5.96) W × 1.56 × 1 h = 84.1776 Wh.
    e = est.estimate(JobSpec(60, 4, 16, 0, "US"))
    assert e.energy_kwh == pytest.approx(0.0841776, rel=1e-12)
    assert e.gpu_kwh == 0.0


def test_overrides_by_hand(est: ComputeJobEstimator) -> None:
    # AMD EPYC 7763: 280 W / 64 cores = 4.375 W/core at 50 %; 4 × H100 SXM5 (700 W) at 80 %;
    # 256 GB; AWS PUE 1.2; us-east-1 → PJM grid.
    # P = 64×4.375×0.5 + 4×700×0.8 + 256×0.3725 = 140 + 2240 + 95.36 = 2475.36 W; × 1.2 × 1 h.
    spec = JobSpec(
        60, 64, 256, 4, "US", cpu_model="AMD EPYC 7763", gpu_model="h100-sxm5", cpu_utilization=0.5,
        gpu_utilization=0.8, provider="aws", region="us-east-1",
    )  # fmt: skip
    e = est.estimate(spec)
    assert e.energy_kwh == pytest.approx(2.970432, rel=1e-12)
    assert e.co2_g == pytest.approx(2.970432 * intensity("PJM"), rel=1e-12)
    names = {f.name: f for f in e.profile.factors}
    assert names["cpu_power_per_core"].value == pytest.approx(4.375)
    assert "AMD EPYC 7763" in names["cpu_power_per_core"].source
    assert names["gpu_power"].value == 700.0
    assert names["pue"].value == 1.2
    assert names["cpu_utilization"].source == "request"
    assert e.profile.location_code == "aws:us-east-1"
    assert e.profile.warnings == ()


def test_every_factor_has_a_source_and_table_factors_a_dataset_version(est: ComputeJobEstimator) -> None:
    e = est.estimate(JobSpec(60, 2, 4, 1, "DE", gpu_model="T4", provider="gcp"))
    for f in e.profile.factors:
        assert f.source
        assert f.unit
    by_name = {f.name: f for f in e.profile.factors}
    assert by_name["gpu_power"].dataset_version == load_hardware().version
    assert by_name["pue"].dataset_version == load_hardware().version
    assert by_name["carbon_intensity"].dataset_version == load_locations().version
    assert by_name["carbon_intensity"].unit == "gCO2e/kWh"


def test_explicit_pue_wins_over_provider_and_regional_pue_over_provider_default(
    est: ComputeJobEstimator,
) -> None:
    assert est.estimate(JobSpec(60, 1, 0, 0, "US", provider="aws", pue=1.1)).profile.pue_value == 1.1
    assert est.estimate(JobSpec(60, 1, 0, 0, "gcp:us-central1")).profile.pue_value == 1.11
    assert est.estimate(JobSpec(60, 1, 0, 0, "gcp:asia-south1")).profile.pue_value == 1.12
    assert est.estimate(JobSpec(60, 1, 0, 0, "azure:westeurope")).profile.pue_value == 1.12
    assert est.estimate(JobSpec(60, 1, 0, 0, "FR")).profile.pue_value == DEFAULT_PUE.value


def test_region_is_more_specific_than_geo_iso(est: ComputeJobEstimator) -> None:
    e = est.estimate(JobSpec(60, 1, 0, 0, "EU", provider="gcp", region="europe-north1"))
    assert e.profile.location_code == "gcp:europe-north1"
    assert e.profile.carbon_intensity.value == intensity("gcp:europe-north1")
    bare = est.estimate(JobSpec(60, 1, 0, 0, "US", region="westus2"))
    assert bare.profile.location_code == "azure:westus2"
    assert bare.profile.pue.value == 1.12  # provider inferred from the region


def test_unknown_locations_are_errors_naming_the_field(est: ComputeJobEstimator) -> None:
    with pytest.raises(UnknownLocationError) as exc:
        est.estimate(JobSpec(60, 1, 0, 0, "ATLANTIS"))
    assert (exc.value.field_name, exc.value.value) == ("geo_iso", "ATLANTIS")
    with pytest.raises(UnknownLocationError) as exc:
        est.estimate(JobSpec(60, 1, 0, 0, "US", provider="aws", region="moon-1"))
    assert (exc.value.field_name, exc.value.value) == ("region", "aws:moon-1")


def test_unknown_hardware_model_falls_back_visibly(est: ComputeJobEstimator) -> None:
    e = est.estimate(JobSpec(60, 10, 0, 1, "US", cpu_model="Quantum 9000", gpu_model="Imaginary X"))
    assert e.energy_kwh == pytest.approx((10 * 12 + 200) * 1.56 / 1000)
    assert len(e.profile.warnings) == 2
    assert "Quantum 9000" in e.profile.warnings[0]


@pytest.mark.parametrize(
    "spec",
    [
        JobSpec(-1, 1, 0, 0, "US"),
        JobSpec(60, -1, 0, 0, "US"),
        JobSpec(60, 1, float("nan"), 0, "US"),
        JobSpec(60, 1, 0, float("inf"), "US"),
        JobSpec(60, 1, 0, 0, "US", cpu_utilization=1.5),
        JobSpec(60, 1, 0, 0, "US", gpu_utilization=-0.1),
        JobSpec(60, 1, 0, 0, "US", pue=0.9),
    ],
)
def test_invalid_inputs_are_rejected(est: ComputeJobEstimator, spec: JobSpec) -> None:
    with pytest.raises(ValueError, match="must be"):
        est.estimate(spec)
    with pytest.raises(ValueError, match="must be"):
        est.estimate_batch([JobSpec(10, 1, 1, 0, "US"), spec])


def test_datacentre_gpus_are_in_the_table() -> None:
    hw = load_hardware()
    expected = {
        "A100": 400, "A100 80GB PCIe": 300, "H100": 700, "H100 PCIe": 350, "H200": 700, "B200": 1000,
        "L4": 72, "L40S": 350, "T4": 70, "NVIDIA Tesla V100": 300, "MI300X": 750, "AMD Instinct MI250X": 560,
    }  # fmt: skip
    for model, watts in expected.items():
        f = hw.gpu_power(model)
        assert f is not None, model
        assert f.value == watts, model
    assert normalise_model("NVIDIA Tesla T4") == normalise_model("t4")


def test_cpu_table_is_per_core_tdp_and_pue_default_matches_code() -> None:
    hw = load_hardware()
    f = hw.cpu_power_per_core("Xeon Gold 6248")
    assert f is not None
    assert f.value == pytest.approx(150 / 20)
    for cpu in hw.cpus:
        assert 1.0 <= cpu.w_per_core <= 30.0, cpu
    assert hw.default_pue().value == DEFAULT_PUE.value
    assert hw.pue("AWS", "anything").value == 1.2  # type: ignore[union-attr]


def test_bare_formula_matches_estimator(est: ComputeJobEstimator) -> None:
    e = est.estimate(JobSpec(90, 8, 0, 1, "EU"))
    assert e.energy_kwh == pytest.approx(energy_kwh(90, 8, 0, 1))


durations = st.floats(min_value=0, max_value=1e6, allow_nan=False)
counts = st.floats(min_value=0, max_value=4096, allow_nan=False)
codes = st.sampled_from(["US", "EU", "WORLD", "DE", "US-CA", "CAISO", "aws:us-west-2", "gcp:europe-west1"])


@given(durations, counts, counts, counts, codes, st.floats(min_value=0, max_value=1000))
@settings(max_examples=200, deadline=None)
def test_energy_is_linear_in_duration_and_non_negative(
    d: float, cores: float, mem: float, gpus: float, code: str, k: float
) -> None:
    est = ComputeJobEstimator(load_hardware(), location_lookup(load_locations()))
    a = est.estimate(JobSpec(d, cores, mem, gpus, code))
    b = est.estimate(JobSpec(d * k, cores, mem, gpus, code))
    assert a.energy_kwh >= 0.0
    assert a.co2_g >= 0.0
    assert b.energy_kwh == pytest.approx(k * a.energy_kwh, rel=1e-9, abs=1e-12)
    assert b.co2_g == pytest.approx(k * a.co2_g, rel=1e-9, abs=1e-9)


jobs = st.builds(
    JobSpec,
    duration_minutes=durations,
    cpu_cores=counts,
    memory_gb=counts,
    gpu_cores=st.integers(0, 16).map(float),
    geo_iso=codes,
    gpu_model=st.none() | st.sampled_from(["A100", "H100", "L4", "T4"]),
    cpu_utilization=st.none() | st.floats(0, 1),
)


@given(st.lists(jobs, min_size=1, max_size=50))
@settings(max_examples=100, deadline=None)
def test_batch_totals_equal_the_sum_of_jobs(specs: list[JobSpec]) -> None:
    est = ComputeJobEstimator(load_hardware(), location_lookup(load_locations()))
    batch = est.estimate_batch(specs)
    singles = [est.estimate(s) for s in specs]
    assert len(batch) == len(specs)
    for i, single in enumerate(singles):
        assert batch.energy_kwh[i] == pytest.approx(single.energy_kwh, rel=1e-12)
        assert batch.co2_g[i] == pytest.approx(single.co2_g, rel=1e-12)
        assert batch.job(i).breakdown() == pytest.approx(single.breakdown(), rel=1e-9, abs=1e-12)
    assert batch.total_energy_kwh == pytest.approx(sum(s.energy_kwh for s in singles), rel=1e-9)
    assert batch.total_co2_g == pytest.approx(sum(s.co2_g for s in singles), rel=1e-9)


def test_a_10000_job_batch_shares_one_profile_per_location(est: ComputeJobEstimator) -> None:
    # Its speed is measured by benchmarks/bench_batch.py, not asserted here (no wall-clock bounds in tests).
    codes_ = ["US", "EU", "DE", "aws:us-west-2", "gcp:europe-west1"]
    specs = [JobSpec(60 + i % 90, 1 + i % 16, 4 * (i % 8), i % 3, codes_[i % 5]) for i in range(10_000)]
    batch = est.estimate_batch(specs)
    assert len(batch) == 10_000
    assert len(batch.profiles) == 5  # one profile per distinct location, not per job
