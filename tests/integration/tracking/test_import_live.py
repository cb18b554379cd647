"""``powermeter import slurm|csv`` against a real server: receipts, chunks, re-import stores nothing new."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from powermeter.methodology.compute_job import energy_kwh
from tests.integration.tracking.helpers import Live, run, started

FIXTURE = Path(__file__).parents[2] / "fixtures" / "sacct" / "jobs.txt"


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    with started(tmp_path) as lv:
        yield lv


def test_slurm_import_reports_finished_jobs_and_reimport_stores_nothing_new(live: Live) -> None:
    env = live.client_env()
    res = run(["import", "slurm", str(FIXTURE), "--geo-iso", "DE", "--chunk", "3"], env)
    # exit 0: every job sent was stored (the two unreadable rows are listed, not sent)
    assert res.returncode == 0, res.stderr
    assert "21 row(s), 10 finished job(s)" in res.stderr
    assert "2 running/pending, 1 never ran" in res.stderr
    assert "stored 10 new job(s)" in res.stderr
    assert "importing: 3/10 jobs sent" in res.stderr  # chunks of at most 3, one line each (no terminal)
    assert "importing: 10/10 jobs sent" in res.stderr
    assert live.receipts()["total"] == 10

    doc = live.receipt_of("slurm-1001")
    inputs = doc["receipt"]["inputs"]
    assert inputs["cpu_utilization"] == 0.75
    assert (inputs["cpu_cores"], inputs["duration_minutes"]) == (8, 120)
    assert (inputs["gpu_cores"], inputs["memory_gb"]) == (2, 32)
    assert doc["kwh"] == pytest.approx(energy_kwh(120, 8, 32, 2, cpu_utilization=0.75))
    assert {r["job_id"] for r in live.receipts()["receipts"]} >= {"slurm-1003_1", "slurm-1004+1", "slurm-1007"}

    # the same file again: the same chunks replay from their idempotency keys
    again = run(["import", "slurm", str(FIXTURE), "--geo-iso", "DE", "--chunk", "3"], env)
    assert again.returncode == 0, again.stderr
    assert "stored 0 new job(s)" in again.stderr
    assert "10 already stored" in again.stderr
    # other chunks (other keys): the server refuses the known job ids, the importer counts them as stored
    third = run(["import", "slurm", str(FIXTURE), "--geo-iso", "DE", "--chunk", "4"], env)
    assert third.returncode == 0, third.stderr
    assert "stored 0 new job(s)" in third.stderr
    assert "10 already stored" in third.stderr
    assert live.receipts()["total"] == 10


def test_a_partly_imported_file_stores_only_the_new_jobs(live: Live, tmp_path: Path) -> None:
    lines = FIXTURE.read_text().splitlines(keepends=True)
    head = tmp_path / "head.txt"
    head.write_text("".join(lines[:4]))  # header + job 1001 and its steps
    env = live.client_env()
    assert run(["import", "slurm", str(head), "--geo-iso", "DE"], env).returncode == 0
    res = run(["import", "slurm", str(FIXTURE), "--geo-iso", "DE"], env)
    assert res.returncode == 0, res.stderr
    assert "stored 9 new job(s)" in res.stderr
    assert "1 already stored" in res.stderr
    assert live.receipts()["total"] == 10


def test_prefix_pue_models_and_stdin(live: Live) -> None:
    res = run(
        [
            "import",
            "slurm",
            "-",
            "--geo-iso",
            "FR",
            "--prefix",
            "hpc1-",
            "--pue",
            "1.2",
            "--gpu-model",
            "gpu-node0=A100 80GB PCIe",
            "--cpu-model",
            "cpu=EPYC 7763",
        ],
        live.client_env(),
        input=FIXTURE.read_text(),
    )
    assert res.returncode == 0, res.stderr
    inputs = live.receipt_of("hpc1-1009")["receipt"]["inputs"]
    assert inputs["gpu_model"] == "A100 80GB PCIe"
    assert inputs["pue"] == 1.2
    assert inputs["geo_iso"] == "FR"
    assert live.receipt_of("hpc1-1002")["receipt"]["inputs"]["cpu_model"] == "EPYC 7763"


def test_bad_input_is_a_clear_error(live: Live, tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("JobID|Elapsed\n1|00:10\n")
    res = run(["import", "slurm", str(bad)], live.client_env())
    assert res.returncode == 2
    assert "missing column(s) AllocCPUS" in res.stderr
    assert "sacct -a -P" in res.stderr
    assert run(["import", "slurm", str(tmp_path / "nope.txt")], live.client_env()).returncode == 2


def test_csv_import_with_refused_rows_named_by_line(live: Live, tmp_path: Path) -> None:
    f = tmp_path / "jobs.csv"
    f.write_text(
        "job_id,duration_minutes,cpu_cores,memory_gb,gpu_cores,geo_iso,cpu_utilization,measured_cpu_kwh,started_at\n"
        "c-1,60,4,16,,DE,0.5,,2026-11-02T10:00:00Z\n"
        "c-2,30,2,,1,,,0.01,\n"
        "c-3,10,1,1,,NOWHERE,,,\n"
        "c-4,abc,1,1,,DE,,,\n"
    )
    env = live.client_env()
    res = run(["import", "csv", str(f), "--geo-iso", "US"], env)
    assert res.returncode == 1  # one row unreadable, one refused by the server
    assert "line 5: duration_minutes: 'abc' is not a number" in res.stderr
    assert "line 4 (c-3): geo_iso: unknown location 'NOWHERE'" in res.stderr
    assert "stored 2 new job(s)" in res.stderr
    assert live.receipt_of("c-1")["receipt"]["inputs"]["cpu_utilization"] == 0.5
    c2 = live.receipt_of("c-2")["receipt"]
    assert c2["inputs"]["geo_iso"] == "US"
    assert c2["results"]["energy_sources"]["cpu"]["method"] == "measured"
    again = run(["import", "csv", str(f), "--geo-iso", "US"], env)
    assert "stored 0 new job(s)" in again.stderr
    assert live.receipts()["total"] == 2
    typo = tmp_path / "typo.csv"
    typo.write_text("job_id,duration_minuts,geo_iso\nx,1,DE\n")
    res = run(["import", "csv", str(typo)], env)
    assert res.returncode == 2
    assert "unknown column(s) duration_minuts" in res.stderr


def test_slurm_start_is_sent_as_started_at_in_the_clusters_zone(live: Live) -> None:
    res = run(["import", "slurm", str(FIXTURE), "--geo-iso", "DE", "--timezone", "Europe/Berlin"], live.client_env())
    assert res.returncode == 0, res.stderr
    # sacct printed 2026-11-05T08:00:00 in Berlin (CET, UTC+1): the job ran from 07:00 UTC
    assert live.receipt_of("slurm-1003_1")["receipt"]["inputs"]["started_at"] == "2026-11-05T07:00:00Z"
    bad = run(["import", "slurm", str(FIXTURE), "--geo-iso", "DE", "--timezone", "Mars/Olympus"], live.client_env())
    assert bad.returncode == 2
    assert "unknown IANA time zone 'Mars/Olympus'" in bad.stderr
