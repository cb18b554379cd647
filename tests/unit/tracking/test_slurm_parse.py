"""sacct -P parsing: every duration and memory form, steps folded, arrays and het jobs, states."""

from __future__ import annotations

from pathlib import Path

import pytest

from powermeter.data.hardware import load_hardware
from powermeter.data.locations import load_locations, location_lookup
from powermeter.imports.slurm import (
    SacctFormatError,
    model_for,
    parse_duration,
    parse_gpus,
    parse_mapping,
    parse_reqmem,
    parse_sacct,
    to_report,
)
from powermeter.methodology.compute_job import ComputeJobEstimator, JobSpec, energy_kwh

FIXTURE = Path(__file__).parents[2] / "fixtures" / "sacct" / "jobs.txt"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("02:00:00", 7200.0), ("12:00:00", 43200.0), ("1-02:03:04", 93784.0), ("1-10:00:00", 122400.0),
        ("45:10", 2710.0), ("44:00.123", 2640.123), ("05:30.250", 330.25), ("00:00.010", 0.01),
        ("10:00.5", 600.5), ("00:00.000018", 0.000018), ("59", 59.0), ("", None), ("INVALID", None),
    ],
)  # fmt: skip
def test_every_duration_form(text: str, seconds: float | None) -> None:
    assert parse_duration(text) == (pytest.approx(seconds) if seconds is not None else None)


@pytest.mark.parametrize("text", ["xx:yy", "1-02:03", "10:75", "1:2:3:4", "-5", "1.x"])
def test_bad_durations_are_errors(text: str) -> None:
    with pytest.raises(ValueError, match="bad duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "cpus", "nodes", "gb"),
    [
        ("32G", 8, 1, 32.0), ("4000Mc", 4, 1, 4000 / 1024 * 4), ("250Gn", 2, 2, 500.0), ("1T", 1, 1, 1024.0),
        ("2048M", 1, 1, 2.0), ("512K", 1, 1, 512 / 1024**2), ("4Gc", 3, 1, 12.0), ("0n", 4, 2, 0.0),
        ("", 4, 1, 0.0), ("1000", 1, 1, 1000 / 1024),
    ],
)  # fmt: skip
def test_every_reqmem_form(text: str, cpus: int, nodes: int, gb: float) -> None:
    assert parse_reqmem(text, cpus, nodes) == pytest.approx(gb)


@pytest.mark.parametrize("text", ["32GB", "lots", "4gc", "-1G"])
def test_bad_reqmem_is_an_error(text: str) -> None:
    with pytest.raises(ValueError, match="bad ReqMem"):
        parse_reqmem(text, 1, 1)


def test_gpus_from_alloctres() -> None:
    assert parse_gpus("billing=8,cpu=8,gres/gpu=2,mem=32G,node=1") == 2
    assert parse_gpus("cpu=16,gres/gpu:a100=4,mem=64G") == 4
    assert parse_gpus("cpu=16,gres/gpu:a100=2,gres/gpu:v100=1") == 3
    assert parse_gpus("cpu=16,gres/gpu=3,gres/gpu:a100=3") == 3  # untyped total wins: no double count
    assert parse_gpus("cpu=4,mem=8G") == 0
    assert parse_gpus("") == 0


def test_the_fixture_folds_steps_and_skips_unfinished_jobs() -> None:
    with FIXTURE.open() as fh:
        res = parse_sacct(fh)
    ids = [j.job_id for j in res.jobs]
    assert ids == ["1001", "1002", "1003_1", "1003_2", "1004+0", "1004+1", "1007", "1008", "1009", "1010"]
    assert res.rows == 21
    assert res.skipped_not_finished == 2  # 1005 RUNNING, 1003_[3-5] PENDING
    assert res.skipped_never_ran == 1  # 1006 CANCELLED with Elapsed 0
    assert len(res.bad_rows) == 2  # 1011 (Elapsed xx:yy) and 1012 (short row)
    assert "1011" in res.bad_rows[0]
    assert "line 21" in res.bad_rows[0]
    by_id = {j.job_id: j for j in res.jobs}
    j2 = by_id["1002"]  # TotalCPU 0 on the allocation row: the steps' sum
    assert j2.total_cpu_s == pytest.approx(330.25 + 122400)
    assert j2.cpu_utilization == pytest.approx((330.25 + 122400) / (93784 * 4))
    assert to_report(j2, prefix="", geo_iso="DE")["cpu_utilization"] == 0.33  # sent to 1 percentage point
    assert j2.req_mem_gb == pytest.approx(4000 / 1024 * 4)
    assert by_id["1003_1"].req_mem_gb == 500.0
    assert by_id["1008"].cpu_utilization == 1.0  # 25 min CPU in 10 min on 1 CPU: capped
    assert by_id["1009"].gpus == 4
    assert by_id["1010"].req_mem_gb == 0.0
    assert by_id["1004+1"].gpus == 1
    assert by_id["1001"].start is not None
    assert by_id["1001"].start.isoformat() == "2026-11-02T10:00:00"


def test_the_acceptance_job_gets_075_and_the_green_algorithms_energy() -> None:
    with FIXTURE.open() as fh:
        job = next(j for j in parse_sacct(fh).jobs if j.job_id == "1001")
    body = to_report(job, prefix="slurm-", geo_iso="DE")
    assert body == {
        "job_id": "slurm-1001",
        "duration_minutes": 120.0,
        "cpu_cores": 8,
        "memory_gb": 32.0,
        "gpu_cores": 2,
        "geo_iso": "DE",
        "cpu_utilization": 0.75,
    }
    # 2 h × (8 × 12 W × 0.75 + 2 × 200 W + 32 × 0.3725 W) × PUE 1.56 / 1000
    expected = 2 * (8 * 12 * 0.75 + 2 * 200 + 32 * 0.3725) * 1.56 / 1000
    assert energy_kwh(120, 8, 32, 2, cpu_utilization=0.75) == pytest.approx(expected)
    estimator = ComputeJobEstimator(load_hardware(), location_lookup(load_locations()))
    est = estimator.estimate(JobSpec(**{k: v for k, v in body.items() if k != "job_id"}))
    assert est.energy_kwh == pytest.approx(expected)


def test_prefix_pue_and_model_mapping_by_partition_or_node_prefix() -> None:
    with FIXTURE.open() as fh:
        jobs = {j.job_id: j for j in parse_sacct(fh).jobs}
    cpu_map = parse_mapping(["cpu-a=EPYC 7763", "cpu-a0=Xeon Gold 6248", "gpu=Xeon Platinum 8358"], "--cpu-model")
    gpu_map = parse_mapping(["gpu-node0=A100 80GB PCIe"], "--gpu-model")
    assert model_for(jobs["1007"], cpu_map) == "Xeon Gold 6248"  # node cpu-a02: the longest prefix
    assert model_for(jobs["1002"], cpu_map) == "EPYC 7763"  # node cpu-a17
    assert model_for(jobs["1001"], cpu_map) == "Xeon Platinum 8358"  # partition gpu
    body = to_report(jobs["1009"], prefix="hpc1-", geo_iso="FR", pue=1.2, cpu_models=cpu_map, gpu_models=gpu_map)
    assert body["job_id"] == "hpc1-1009"
    assert body["pue"] == 1.2
    assert body["gpu_model"] == "A100 80GB PCIe"
    assert "gpu_model" not in to_report(jobs["1007"], prefix="", geo_iso="FR", gpu_models={"cpu": "A100"})
    with pytest.raises(ValueError, match="PARTITION_OR_NODE_PREFIX=MODEL"):
        parse_mapping(["nomodel"], "--cpu-model")


def test_missing_columns_name_the_sacct_command() -> None:
    with pytest.raises(SacctFormatError, match=r"missing column.*TotalCPU.*sacct -a -P"):
        parse_sacct(["JobID|Elapsed|AllocCPUS|ReqMem|AllocTRES|State\n", "1|00:10|1|1G||COMPLETED\n"])
    with pytest.raises(SacctFormatError, match="empty input"):
        parse_sacct([])
