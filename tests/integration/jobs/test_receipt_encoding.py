"""The fast receipt encoder (fragments of the canonical encoder + a shared SHA-256 prefix) gives exactly the
RFC 8785 bytes of the receipt object (the ``rfc8785`` package's), for any inputs, including the values that
need the slow path."""

from __future__ import annotations

import hashlib
import json
from types import SimpleNamespace
from typing import Any

import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from powermeter.jobs import receipts as rc
from powermeter.methodology.canonical import reference_bytes
from powermeter.methodology.units import Factor

FACTORS = [
    Factor("cpu_power_per_core", 12.0, "W/core", "Green Algorithms"),
    Factor("pue", 1.56, "ratio", "Uptime Institute"),
    Factor("carbon_intensity", 369.47, "gCO2e/kWh", "OWID \u00e9 \u2028", "sha256:abc"),
]
PROFILE = rc.make_profile_doc(FACTORS, "US", {"hardware": "sha256:1", "locations": "sha256:2"}, ["w \u0007"])

floats = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e30, max_value=1e30) | st.sampled_from(
    [0.0, -0.0, 1.0, 12.0, 1e-7, 1e-5, 1e16, 1e21, 123456789012345680.0, 0.1, 2.5e-4]
)
texts = st.text(max_size=12) | st.sampled_from(["US", "job-001", "\ud800x", "é€😀"])


@given(
    duration=floats, cores=floats, mem=floats, gpus=floats, geo=texts, job_id=texts,
    options=st.none() | st.fixed_dictionaries({}, optional={"cpu_model": texts, "pue": floats, "region": texts}),
    kwh=floats, co2=floats, cpu=floats, gpu=floats, memory=floats, pue=floats,
)  # fmt: skip
@settings(max_examples=400, deadline=None)
def test_fast_leaf_equals_canonical_json(
    duration: float, cores: float, mem: float, gpus: float, geo: str, job_id: str, options: dict[str, Any] | None,
    kwh: float, co2: float, cpu: float, gpu: float, memory: float, pue: float,
) -> None:  # fmt: skip
    options = options or None
    inputs = rc.inputs_bytes(duration, cores, mem, gpus, geo, options)
    results = rc.results_bytes(kwh, co2, cpu, gpu, memory, pue)
    builder = rc.LeafBuilder("acct_1", "2026-11-22T12:00:00Z", [PROFILE])
    leaf = builder.leaf(0, inputs, job_id, "rcpt_0001", results)
    expected_inputs: dict[str, Any] = {
        "cpu_cores": cores, "duration_minutes": duration, "geo_iso": geo, "gpu_cores": gpus, "memory_gb": mem,
        **(options or {}),
    }  # fmt: skip
    receipt = {
        "account_id": "acct_1",
        **json.loads(PROFILE.body),
        "inputs": expected_inputs,
        "issued_at": "2026-11-22T12:00:00Z",
        "job_id": job_id,
        "methodology": rc.METHODOLOGY,
        "receipt_id": "rcpt_0001",
        "results": {
            "breakdown": {
                "cpu_kwh": cpu,
                "gpu_kwh": gpu,
                "memory_kwh": memory,
                "overhead_kwh": kwh - (cpu + gpu + memory),
                "pue": pue,
            },
            "co2_grams": co2,
            "kwh": kwh,
        },
        "type": rc.RECEIPT_TYPE,
    }
    assert leaf == reference_bytes(receipt)
    if not any("\ud800" in t for t in (geo, job_id, *[str(v) for v in (options or {}).values()])):
        assert leaf == rfc8785.dumps(receipt)  # well-formed Unicode: the reference implementation's bytes
    assert builder.leaf_hash(0, inputs, job_id, "rcpt_0001", results) == hashlib.sha256(b"\x00" + leaf).digest()


def test_options_are_only_the_overrides_given() -> None:
    job = SimpleNamespace(
        cpu_model=None,
        gpu_model="H100",
        cpu_utilization=None,
        gpu_utilization=0.5,
        pue=None,
        provider=None,
        region=None,
    )
    assert rc.job_options(job) == {"gpu_model": "H100", "gpu_utilization": 0.5}
    none = SimpleNamespace(**dict.fromkeys(rc.OPTION_FIELDS))
    assert rc.job_options(none) is None


def test_the_batch_loop_hashes_exactly_the_leaves_the_read_path_rebuilds() -> None:
    from powermeter.jobs.schemas import JobIn
    from powermeter.jobs.service import ComputeJobs, _details, _encode

    svc = ComputeJobs()
    jobs = [
        JobIn(job_id="a", duration_minutes=60, cpu_cores=8, memory_gb=32, gpu_cores=2, geo_iso="US"),
        JobIn(
            job_id="b\u00e9\u2028",
            duration_minutes=0.001,
            cpu_cores=1e-9,
            geo_iso="aws:us-east-1",
            gpu_model="H100",
            gpu_utilization=0.25,
            provider="aws",
        ),
        JobIn(job_id="c", duration_minutes=5e6, cpu_cores=1e6, memory_gb=1e8, gpu_cores=1e6, geo_iso="EU", pue=1.0),
    ]
    batch = svc.estimate(jobs, field_prefix="")
    docs = [svc.profile_doc(p) for p in batch.profiles]
    builder = rc.LeafBuilder("acct_1", "2026-11-22T12:00:00Z", docs)
    ids = ["rcpt_00000000000000000000", "rcpt_00000000000000000001", "rcpt_00000000000000000002"]
    hashes, rows = _encode(jobs, batch, builder, ids, "acct_1")
    det = json.loads(_details(jobs, batch))  # what is stored is what rebuilds the hashed bytes
    for i, job in enumerate(jobs):
        row = rows[i]  # receipt_id, account_id, job_id, tree_seq, leaf_index, profile_index, kwh, co2, geo, options
        options = json.loads(row[9]) if row[9] else None
        inputs = rc.inputs_bytes(
            det["duration_minutes"][i], det["cpu_cores"][i], det["memory_gb"][i], det["gpu_cores"][i], row[8], options
        )
        pue = batch.profiles[row[5]].pue_value
        results = rc.results_bytes(row[6], row[7], det["cpu_kwh"][i], det["gpu_kwh"][i], det["memory_kwh"][i], pue)
        leaf = builder.leaf(row[5], inputs, job.job_id, ids[i], results)
        assert hashes[i] == hashlib.sha256(b"\x00" + leaf).digest()
        assert json.loads(leaf)["inputs"]["duration_minutes"] == job.duration_minutes


# --- the column-wise encoder of plain batches (service._write, issue 13) ---------------------------------

PROFILES = [
    PROFILE,
    rc.make_profile_doc(FACTORS[:2], "aws:us-east-1", {"hardware": "sha256:1", "locations": "sha256:2"}, []),
    rc.make_profile_doc(FACTORS, "EU", {"hardware": "sha256:1", "locations": "sha256:2"}, ['100% %b %s \\ "']),
]
job_columns = st.fixed_dictionaries(
    {
        "job_id": texts, "geo": texts, "receipt_id": texts | st.sampled_from(["rcpt_0123456789abcdef0000"]),
        "duration": floats, "cores": floats, "mem": floats, "gpus": floats,
        "kwh": floats, "co2": floats, "cpu": floats, "gpu": floats, "memory": floats,
        "profile": st.integers(0, len(PROFILES) - 1),
    }
)  # fmt: skip


@given(jobs=st.lists(job_columns, min_size=1, max_size=12), pues=st.lists(floats, min_size=3, max_size=3))
@settings(max_examples=300, deadline=None)
def test_column_leaf_hashes_equal_the_per_job_leaves(jobs: list[dict[str, Any]], pues: list[float]) -> None:
    builder = rc.LeafBuilder("acct_1", "2026-11-22T12:00:00.123456Z", PROFILES)

    def col(name: str) -> list[Any]:
        return [j[name] for j in jobs]

    got = rc.plain_leaf_hashes(
        builder, col("receipt_id"), col("job_id"), col("geo"), col("duration"), col("cores"), col("mem"),
        col("gpus"), col("kwh"), col("co2"), col("cpu"), col("gpu"), col("memory"), col("profile"), pues,
    )  # fmt: skip
    expected = [
        builder.leaf_hash(
            j["profile"],
            rc.inputs_bytes(j["duration"], j["cores"], j["mem"], j["gpus"], j["geo"], None),
            j["job_id"],
            j["receipt_id"],
            rc.results_bytes(j["kwh"], j["co2"], j["cpu"], j["gpu"], j["memory"], pues[j["profile"]]),
        )
        for j in jobs
    ]
    assert got == expected
