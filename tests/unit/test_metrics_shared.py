"""``Metrics`` shared by several processes (issue 13): each process's counts live in its own file in one
directory, ``render`` in any of them sums all, a dead process's counts stay; one process alone renders
exactly the text it always did."""

from __future__ import annotations

import multiprocessing
import os
import re
import signal
from pathlib import Path
from typing import Any

from powermeter.infra.observability import Metrics, counter_files, read_counter_file, read_shared_dir

SPAWN = multiprocessing.get_context("spawn")  # as uvicorn starts its workers


def _worker(directory: str, n: int, seconds: float, degraded: int, up: int, ready: Any, leave: Any, how: str) -> None:
    """A stand-in for one uvicorn worker: ``n`` requests, two DB outages, a rate-limiter-like collector."""
    m = Metrics(shared_dir=directory)
    m.collectors.append(
        lambda: [
            "# HELP powermeter_ratelimit_degraded_total Degraded decisions.",
            "# TYPE powermeter_ratelimit_degraded_total counter",
            f'powermeter_ratelimit_degraded_total{{limit="ip"}} {degraded}',
            "# HELP powermeter_ratelimit_redis_up Redis answered.",
            "# TYPE powermeter_ratelimit_redis_up gauge",
            f"powermeter_ratelimit_redis_up {up}",
        ]
    )
    for _ in range(n):
        m.observe("GET", "/v1/me", 200, seconds)
    m.observe("POST", "/v1/report", 201, 0.002)
    m.inc("powermeter_db_unavailable_total", cause="down", status="503")
    m.inc("powermeter_db_unavailable_total", status="503", cause="down")
    m.save_snapshot()
    ready.set()
    if how == "sigkill":  # no clean-up of any kind: the counts are already in the file
        os.kill(os.getpid(), signal.SIGKILL)
    leave.wait(60)
    m.close()


def _value(text: str, series: str) -> float:
    found = re.findall(rf"^{re.escape(series)} (\S+)$", text, re.M)
    assert len(found) == 1, (series, text)
    return float(found[0])


def test_render_sums_every_process_and_keeps_a_killed_ones_counts(tmp_path: Path) -> None:
    directory = str(tmp_path / "metrics")
    leave = SPAWN.Event()
    procs = []
    plan = [(7, 0.003, 2, 1, "stay"), (5, 0.2, 3, 0, "sigkill"), (11, 7.0, 4, 1, "exit")]
    for n, seconds, degraded, up, how in plan:
        ready = SPAWN.Event()
        p = SPAWN.Process(target=_worker, args=(directory, n, seconds, degraded, up, ready, leave, how))
        p.start()
        assert ready.wait(60)
        procs.append(p)
    procs[1].join(30)
    assert procs[1].exitcode == -signal.SIGKILL
    procs[2].join(0)  # still waiting on `leave`: it exits below

    # every process wrote its own file
    files = counter_files(Path(directory))
    assert len(files) == 3
    assert sorted(read_counter_file(f).request_count("/v1/me") for f in files) == [5, 7, 11]

    leave.set()
    procs[2].join(30)
    procs[0].join(30)  # all gone now; start a "live" one that only reads, as a restarted worker would
    reader = Metrics(shared_dir=directory)
    reader.collectors.append(
        lambda: [
            "# HELP powermeter_ratelimit_degraded_total Degraded decisions.",
            "# TYPE powermeter_ratelimit_degraded_total counter",
            'powermeter_ratelimit_degraded_total{limit="ip"} 10',
            "# HELP powermeter_ratelimit_redis_up Redis answered.",
            "# TYPE powermeter_ratelimit_redis_up gauge",
            "powermeter_ratelimit_redis_up 1",
        ]
    )
    reader.observe("GET", "/v1/me", 401, 0.0001)
    text = reader.render()
    reader.close()

    assert _value(text, 'powermeter_http_requests_total{method="GET",route="/v1/me",status="200"}') == 23
    assert _value(text, 'powermeter_http_requests_total{method="GET",route="/v1/me",status="401"}') == 1
    assert _value(text, 'powermeter_http_requests_total{method="POST",route="/v1/report",status="201"}') == 3
    count = 'powermeter_http_request_duration_seconds_count{method="GET",route="/v1/me"}'
    assert _value(text, count) == 24
    bucket = 'powermeter_http_request_duration_seconds_bucket{method="GET",route="/v1/me",le="%s"}'
    assert _value(text, bucket % "0.001") == 1  # the reader's own
    assert _value(text, bucket % "0.005") == 1 + 7
    assert _value(text, bucket % "0.25") == 1 + 7 + 5
    assert _value(text, bucket % "5.0") == 13
    assert _value(text, bucket % "+Inf") == 24
    total = _value(text, 'powermeter_http_request_duration_seconds_sum{method="GET",route="/v1/me"}')
    assert abs(total - (0.0001 + 7 * 0.003 + 5 * 0.2 + 11 * 7.0)) < 1e-5
    assert _value(text, 'powermeter_db_unavailable_total{cause="down",status="503"}') == 6
    # collector counters summed over all processes, dead ones included (2 + 3 + 4 + the reader's 10)
    assert _value(text, 'powermeter_ratelimit_degraded_total{limit="ip"}') == 19
    assert text.count("# TYPE powermeter_ratelimit_degraded_total counter") == 1
    # gauges: one per live process, labelled with its pid; the dead ones' are gone
    assert _value(text, f'powermeter_ratelimit_redis_up{{pid="{os.getpid()}"}}') == 1
    assert len(re.findall(r"^powermeter_ratelimit_redis_up", text, re.M)) == 1


def test_a_live_process_gauge_carries_its_pid(tmp_path: Path) -> None:
    directory = str(tmp_path / "metrics")
    leave, ready = SPAWN.Event(), SPAWN.Event()
    p = SPAWN.Process(target=_worker, args=(directory, 1, 0.01, 0, 0, ready, leave, "stay"))
    p.start()
    try:
        assert ready.wait(60)
        me = Metrics(shared_dir=directory)
        text = me.render()
        me.close()
        assert _value(text, f'powermeter_ratelimit_redis_up{{pid="{p.pid}"}}') == 0
        assert _value(text, 'powermeter_http_requests_total{method="GET",route="/v1/me",status="200"}') == 1
    finally:
        leave.set()
        p.join(30)


def test_many_series_grow_the_file(tmp_path: Path) -> None:
    m = Metrics(shared_dir=tmp_path)
    for i in range(3000):  # well past the first 64 KiB of the file
        m.observe("GET", f"/r/{i}", 200 + i % 3, 0.001 * (i % 50))
        m.inc("x_total", n=str(i % 7))
    totals = read_shared_dir(tmp_path)
    m.close()
    assert sum(totals.requests.values()) == 3000
    assert totals.requests[("GET", "/r/2999", 202)] == 1
    assert sum(sum(h) for h in totals.hist.values()) == 3000
    assert sum(totals.counters["x_total"].values()) == 3000


def test_one_process_renders_what_it_always_did() -> None:
    m = Metrics()
    assert m.shared_dir is None
    m.collectors.append(lambda: ["# TYPE x_total counter", 'x_total{limit="a"} 3'])
    m.observe("GET", "/v1/me", 401, 0.0005)
    m.observe("GET", "/v1/me", 200, 0.003)
    m.observe("GET", "/v1/me", 200, 9.0)
    m.inc("powermeter_db_unavailable_total", status="507", cause="disk_full")
    lines = m.render().splitlines()
    assert lines[:4] == [
        "# HELP powermeter_http_requests_total HTTP requests by method, route template and status.",
        "# TYPE powermeter_http_requests_total counter",
        'powermeter_http_requests_total{method="GET",route="/v1/me",status="200"} 2',
        'powermeter_http_requests_total{method="GET",route="/v1/me",status="401"} 1',
    ]
    assert 'powermeter_http_request_duration_seconds_bucket{method="GET",route="/v1/me",le="0.001"} 1' in lines
    assert 'powermeter_http_request_duration_seconds_bucket{method="GET",route="/v1/me",le="5.0"} 2' in lines
    assert 'powermeter_http_request_duration_seconds_bucket{method="GET",route="/v1/me",le="+Inf"} 3' in lines
    assert 'powermeter_http_request_duration_seconds_sum{method="GET",route="/v1/me"} 9.003500' in lines
    assert lines[-5:] == [
        "# HELP powermeter_db_unavailable_total Requests answered 503/507 because the database was down, full or "
        "read-only, by cause and status.",
        "# TYPE powermeter_db_unavailable_total counter",
        'powermeter_db_unavailable_total{cause="disk_full",status="507"} 1',
        "# TYPE x_total counter",
        'x_total{limit="a"} 3',
    ]
