"""The gateway's Python CPU per forwarded call, in process: no sockets, no other process, little noise.

``bench_gateway.py`` measures the gateway among three processes on shared cores, where two runs a minute
apart differ by 10-20 %. This script feeds the two protocols of a :class:`GatewayServer` directly: a
round writes the same chat-completion request into each of ``--connections`` caller connections, then
the fake upstream's answer (``fake_llm_app.CHAT``, with ``Content-Length``) into each upstream
connection, and yields to the event loop once (the spool append runs there, as after a loop iteration of
the real server). Writes go to in-memory transports, so what is measured is the Python work of a call:
parsing both messages, routing, the exchange, and on the metered route the usage, the record line, the
footprint headers and the spool append (its ``write`` is a real file write). Segments are sealed and
dropped as they fill; nothing is sent (the background sender is stopped).

    python benchmarks/bench_gateway_cpu.py [--calls 200000] [--connections 8] [--repeat 3]

It prints µs of process CPU per call for the metered route (``/openai/v1/chat/completions``) and an
unmetered one (``/openai/v1/unmetered``), alternating, ``--repeat`` times each.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from benchmarks.fake_llm_app import CHAT  # noqa: E402

from powermeter.gateway.app import Gateway, GatewayConfig, parse_upstream  # noqa: E402
from powermeter.gateway.recorder import Recorder, Spool  # noqa: E402
from powermeter.gateway.server import GatewayServer, _UpConn  # noqa: E402

BODY = b'{"model":"gpt-4o","messages":[{"role":"user","content":"Hi"}]}'
ANSWER = (
    b"HTTP/1.1 200 OK\r\ndate: Fri, 04 Dec 2026 18:00:00 GMT\r\nserver: uvicorn\r\n"
    b"content-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (len(CHAT), CHAT)
)


def request(path: str) -> bytes:
    return (
        b"POST %s HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        b"authorization: Bearer sk-bench\r\ncontent-length: %d\r\n\r\n%s" % (path.encode(), len(BODY), BODY)
    )


class MemoryTransport:
    """What the protocols call on a transport; writes are kept until the round ends."""

    def __init__(self) -> None:
        self.out: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.out.append(data)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 1)

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0


async def measure(path: str, calls: int, connections: int) -> tuple[float, int]:
    up = parse_upstream("openai=http://127.0.0.1:9")
    spool = Spool(Path(tempfile.mkdtemp(prefix="pm-gwcpu-")))
    recorder = Recorder(spool, "http://127.0.0.1:9", "bench", batch_size=500, flush_interval_s=3600)
    gw = Gateway(GatewayConfig(upstreams=(up,)), recorder)
    server = GatewayServer(gw, "127.0.0.1", 0)
    server.loop = server.pool.loop = asyncio.get_running_loop()
    await gw.start()
    if recorder._task is not None:  # nothing is sent: the sender is not what is measured
        recorder._task.cancel()
    key = server.origins["openai"][0]
    req = request(path)
    pairs = []
    for _ in range(connections):
        caller, ct = server.connection_class(server), MemoryTransport()
        caller.connection_made(ct)  # type: ignore[arg-type]
        upconn, ut = _UpConn(key), MemoryTransport()
        upconn.connection_made(ut)  # type: ignore[arg-type]
        pairs.append((caller, ct, upconn, ut))
    idle = server.pool._idle.setdefault(key, [])
    for _, _, upconn, _ in pairs:  # idle kept-alive connections, as after an answer (then the pool's own)
        upconn.complete = upconn.keep_alive = True
        upconn.idle_since = time.monotonic()
        idle.append(upconn)

    def one_round() -> None:
        for caller, _, _, _ in pairs:
            caller.data_received(req)
        for _, _, upconn, _ in pairs:
            upconn.data_received(ANSWER)
        for _, ct, _, ut in pairs:
            ct.out.clear()
            ut.out.clear()

    for _ in range(200):  # warm-up (and a check that calls are answered)
        one_round()
        await asyncio.sleep(0)
    rounds = max(1, calls // connections)
    t0 = time.process_time()
    for i in range(rounds):
        one_round()
        await asyncio.sleep(0)
        if i % 64 == 63:
            if spool.active_count >= recorder.batch_size:
                spool.seal()
            for segment in list(spool.sealed):
                spool.done(segment, 0)
    cpu = time.process_time() - t0
    answered = gw.recorded if path.endswith("/completions") else gw.calls
    if server.pool.connects or len(idle) != connections:
        raise RuntimeError("a call missed its upstream connection: the harness is broken")
    recorder._write()
    spool.close()
    return cpu / (rounds * connections) * 1e6, answered


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=200_000)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    for _ in range(args.repeat):
        for path in ("/openai/v1/chat/completions", "/openai/v1/unmetered"):
            us, answered = asyncio.run(measure(path, args.calls, args.connections))
            label = "metered  " if path.endswith("/completions") else "unmetered"
            print(f"{label} {path}: {us:.2f} µs of CPU per call ({answered} calls)", flush=True)


if __name__ == "__main__":
    main()
