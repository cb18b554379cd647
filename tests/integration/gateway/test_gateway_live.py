"""``powermeter gateway`` end to end: a real gateway process between an httpx client and a fake LLM
provider on loopback, recording on a real ``powermeter serve`` process (SQLite file, or PostgreSQL
when POWERMETER_TEST_POSTGRES_URL is set). No mocks."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import sqlalchemy as sa

from tests.integration.gateway.fake_llm import CHAT_BODY, FakeLLM, run_fake
from tests.live import POWERMETER, create_key, free_port, live_process, live_server, server_env

STATUS = "/.well-known/powermeter-gateway"


@contextlib.contextmanager
def run_gateway(
    env: dict[str, str], upstream: str, server: str, key: str, spool: Path, log: Path, *extra: str
) -> Iterator[str]:
    port = free_port()
    args = [
        *POWERMETER,
        "gateway",
        "--listen",
        f"127.0.0.1:{port}",
        "--upstream",
        f"openai={upstream}",
        "--upstream",
        f"anthropic={upstream}",
        "--upstream",
        f"local={upstream}@openai",  # e.g. a self-hosted server: the provider is given, not the name
        "--upstream",
        f"dead=http://127.0.0.1:{free_port()}",  # nothing listens there
        "--url",
        server,
        "--key",
        key,
        "--spool-dir",
        str(spool),
        "--flush-seconds",
        "0.1",
        *extra,
    ]
    with live_process(args, env, log, f"http://127.0.0.1:{port}", STATUS, mode="a") as base:
        yield base


def status(gw: str) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(gw + STATUS, timeout=5).json()
    return body


def wait_sent(gw: str, n: int, timeout: float = 30) -> dict[str, Any]:
    deadline = time.time() + timeout
    while True:
        st = status(gw)
        rec = st["recorder"]
        if rec["pending"] == 0 and rec["created"] + rec["duplicates"] + rec["rejected"] >= n:
            return st
        if time.time() > deadline:
            raise AssertionError(f"records not sent: {st}")
        time.sleep(0.05)


def history(server: str, key: str, **params: Any) -> dict[str, Any]:
    r = httpx.get(server + "/v1/inference/history", params=params, headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def details(database_url: str, record_id: str) -> dict[str, Any]:
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            text = conn.execute(sa.text("SELECT details FROM inference_details WHERE id = :i"), {"i": record_id})
            out: dict[str, Any] = orjson.loads(text.scalar_one())
            row = conn.execute(
                sa.text("SELECT cached_tokens, reasoning_tokens, source, tag FROM inference_records WHERE id = :i"),
                {"i": record_id},
            ).one()
            out["row"] = dict(row._mapping)
            return out
    finally:
        engine.dispose()


@pytest.fixture
def fake() -> Iterator[FakeLLM]:
    with run_fake() as f:
        yield f


@pytest.fixture
def env(tmp_path: Path, database_url: str) -> dict[str, str]:
    return server_env(tmp_path, database_url)


@pytest.fixture
def server(env: dict[str, str], tmp_path: Path) -> Iterator[tuple[str, str]]:
    with live_server(env, tmp_path / "server.out") as base:
        yield base, create_key(env, "gw@example.com", "gateway")


@pytest.fixture
def gateway(env: dict[str, str], fake: FakeLLM, server: tuple[str, str], tmp_path: Path) -> Iterator[str]:
    base, key = server
    with run_gateway(
        env, fake.base, base, key, tmp_path / "spool", tmp_path / "gateway.out", "--read-timeout", "2"
    ) as gw:
        yield gw


def test_chat_completion_passes_byte_for_byte_and_the_record_equals_post_inference(
    gateway: str, fake: FakeLLM, server: tuple[str, str], database_url: str
) -> None:
    base, key = server
    tag = "chat-" + uuid.uuid4().hex[:8]
    request = orjson.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}]})
    r = httpx.post(
        gateway + "/openai/v1/chat/completions?api-version=1",
        content=request,
        headers={
            "Authorization": "Bearer sk-caller-secret",
            "Content-Type": "application/json",
            "X-Powermeter-Tag": tag,
            "Connection": "keep-alive",
        },
    )
    assert r.status_code == 200
    assert r.content == CHAT_BODY  # byte for byte
    assert r.headers["x-request-id"] == "req_fake_1"
    seen = fake.requests[-1]
    assert (seen["method"], seen["path"], seen["query"]) == ("POST", "/v1/chat/completions", "api-version=1")
    assert seen["body"] == request  # non-streamed request: unchanged
    assert seen["headers"]["authorization"] == "Bearer sk-caller-secret"  # the caller's credentials
    assert "x-powermeter-tag" not in seen["headers"]
    header_wh = float(r.headers["x-energy-wh"])
    header_co2 = float(r.headers["x-co2-grams"])

    wait_sent(gateway, 1)
    h = history(base, key, tag=tag)
    assert h["pagination"]["totalElements"] == 1
    rec = h["data"][0]
    assert (rec["inputTokens"], rec["outputTokens"], rec["source"], rec["tag"]) == (500, 300, "gateway", tag)
    assert (rec["provider"], rec["model"], rec["modelId"]) == ("openai", "gpt-4o", "openai/gpt-4o")
    assert h == history(base, key, tag=tag, source="gateway")
    assert history(base, key, tag=tag, source="dom_estimated")["data"] == []

    inputs = details(database_url, rec["id"])["inputs"]
    assert inputs["source"] == "gateway"
    assert inputs["tag"] == tag
    assert inputs["startTimeMs"] <= inputs["endTimeMs"]
    assert "firstTokenTimeMs" not in inputs  # not observable on a whole answer
    same = httpx.post(
        base + "/v1/inference",
        headers={"Authorization": f"Bearer {key}"},
        json={
            "provider": "openai",
            "model": "gpt-4o",
            "prompt_tokens": 500,
            "completion_tokens": 300,
            "startTimeMs": inputs["startTimeMs"],
            "endTimeMs": inputs["endTimeMs"],
        },
    )
    assert same.status_code == 200, same.text
    assert rec["energyWh"] == same.json()["energy_wh"] == header_wh
    assert rec["co2Grams"] == same.json()["co2_grams"] == header_co2


def test_openai_stream_passes_chunk_by_chunk_and_records_the_usage_chunk(
    gateway: str, fake: FakeLLM, server: tuple[str, str], database_url: str
) -> None:
    base, key = server
    tag = "sse-" + uuid.uuid4().hex[:8]
    delay_ms = 300
    request = {"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": "Hi"}]}
    received: list[bytes] = []
    with httpx.stream(
        "POST",
        gateway + "/openai/v1/chat/completions",
        json=request,
        headers={
            "Authorization": "Bearer sk-x",
            "X-Powermeter-Tag": tag,
            "x-fake-first-delay-ms": str(delay_ms),
            "x-fake-hold-last": "1",
        },
        timeout=30,
    ) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        assert "x-energy-wh" not in r.headers  # unknown before a stream ends
        for chunk in r.iter_raw():
            received.append(chunk)
            fake.release.set()  # the fake sends its last chunk only once we have read something
    assert fake.released_by_client is True  # so the gateway did not wait for the end of the stream
    assert b"".join(received) == b"".join(fake.last_stream)  # every chunk, in order, unchanged
    sent = orjson.loads(fake.requests[-1]["body"])
    assert sent["stream_options"] == {"include_usage": True}  # injected (documented)
    assert b'"choices":[],"usage":{"prompt_tokens":120' in b"".join(received)  # passed on to the client

    wait_sent(gateway, 1)
    rec = history(base, key, tag=tag)["data"][0]
    assert (rec["inputTokens"], rec["outputTokens"]) == (120, 45)
    d = details(database_url, rec["id"])
    assert (d["row"]["cached_tokens"], d["row"]["reasoning_tokens"]) == (64, 10)
    ttft_ms = d["inputs"]["firstTokenTimeMs"] - d["inputs"]["startTimeMs"]
    assert delay_ms <= ttft_ms <= delay_ms + 50, ttft_ms


def test_anthropic_stream_is_recorded_with_its_cache_tokens(
    gateway: str, fake: FakeLLM, server: tuple[str, str], database_url: str
) -> None:
    base, key = server
    tag = "anthropic-" + uuid.uuid4().hex[:8]
    with httpx.stream(
        "POST",
        gateway + "/anthropic/v1/messages",
        json={
            "model": "claude-sonnet-4-5",
            "max_tokens": 500,
            "stream": True,
            "messages": [{"role": "user", "content": "Bonjour"}],
        },
        headers={"x-api-key": "sk-ant-caller", "anthropic-version": "2023-06-01", "X-Powermeter-Tag": tag},
    ) as r:
        body = r.read()
    assert r.status_code == 200
    assert body == b"".join(fake.last_stream)
    seen = fake.requests[-1]
    assert seen["headers"]["x-api-key"] == "sk-ant-caller"
    assert b"stream_options" not in seen["body"]  # only OpenAI chat/completions get include_usage

    wait_sent(gateway, 1)
    rec = history(base, key, tag=tag)["data"][0]
    # input 100 + cache write 20 + cache read 2000; output from message_delta (cumulative)
    assert (rec["provider"], rec["inputTokens"], rec["outputTokens"]) == ("anthropic", 2120, 250)
    assert rec["modelId"].startswith("anthropic/claude-sonnet-4.5")
    assert details(database_url, rec["id"])["row"]["cached_tokens"] == 2000


def test_responses_stream_and_embeddings_are_recorded(gateway: str, server: tuple[str, str]) -> None:
    base, key = server
    tag = "misc-" + uuid.uuid4().hex[:8]
    h = {"Authorization": "Bearer sk-x", "X-Powermeter-Tag": tag}
    r = httpx.post(
        gateway + "/openai/v1/responses", json={"model": "gpt-4o-mini", "input": "Hi", "stream": True}, headers=h
    )
    assert r.status_code == 200
    assert b"response.completed" in r.content
    r = httpx.post(
        gateway + "/openai/v1/embeddings", json={"model": "text-embedding-3-small", "input": "Hi"}, headers=h
    )
    assert r.status_code == 200
    r = httpx.get(gateway + "/openai/v1/models", headers=h)  # forwarded, not metered
    assert r.status_code == 200
    assert r.json()["path"] == "/v1/models"
    wait_sent(gateway, 2)
    rows = sorted((d["inputTokens"], d["outputTokens"], d["model"]) for d in history(base, key, tag=tag)["data"])
    assert rows == [(8, 0, "text-embedding-3-small"), (40, 70, "gpt-4o-mini")]


def test_an_upstream_named_apart_from_its_provider_is_recorded_under_the_provider(
    gateway: str, fake: FakeLLM, server: tuple[str, str]
) -> None:
    base, key = server
    tag = "local-" + uuid.uuid4().hex[:8]
    r = httpx.post(
        gateway + "/local/v1/chat/completions",
        json={"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}]},
        headers={"Authorization": "Bearer sk-x", "X-Powermeter-Tag": tag},
    )
    assert r.status_code == 200
    assert r.content == CHAT_BODY
    assert fake.requests[-1]["path"] == "/v1/chat/completions"
    wait_sent(gateway, 1)
    rec = history(base, key, tag=tag)["data"][0]
    assert (rec["provider"], rec["modelId"], rec["inputTokens"]) == ("openai", "openai/gpt-4o", 500)


def test_upstream_errors_and_timeouts_pass_through_and_record_nothing(
    gateway: str, fake: FakeLLM, server: tuple[str, str]
) -> None:
    base, key = server
    bad = "bad-" + uuid.uuid4().hex[:8]
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}]}
    r = httpx.post(
        gateway + "/openai/v1/chat/completions", json=body, headers={"x-fake-status": "500", "X-Powermeter-Tag": bad}
    )
    assert r.status_code == 500
    assert r.json() == {"error": {"message": "the fake failed", "type": "server_error", "code": None}}
    r = httpx.post(
        gateway + "/openai/v1/chat/completions", json=body, headers={"x-fake-status": "429", "X-Powermeter-Tag": bad}
    )
    assert r.status_code == 429
    r = httpx.post(
        gateway + "/openai/v1/chat/completions",
        json=body,
        headers={"x-fake-hang": "1", "X-Powermeter-Tag": bad},
        timeout=30,
    )
    assert r.status_code == 504  # --read-timeout 2
    assert r.json()["error"]["code"] == "upstream_timeout"
    r = httpx.post(gateway + "/dead/v1/chat/completions", json=body, headers={"X-Powermeter-Tag": bad})
    assert r.status_code == 502
    assert r.json()["error"]["code"] == "upstream_unreachable"
    # a good call after the bad ones: once it is stored, anything queued before it was sent too
    good = "good-" + uuid.uuid4().hex[:8]
    assert (
        httpx.post(gateway + "/openai/v1/chat/completions", json=body, headers={"X-Powermeter-Tag": good}).status_code
        == 200
    )
    st = wait_sent(gateway, 1)
    assert st["recorder"]["created"] == 1
    assert history(base, key, tag=good)["pagination"]["totalElements"] == 1
    assert history(base, key, tag=bad)["pagination"]["totalElements"] == 0


def test_gateway_errors_are_clear_and_an_abandoned_stream_is_cut_and_not_recorded(
    gateway: str, fake: FakeLLM, server: tuple[str, str]
) -> None:
    r = httpx.post(gateway + "/nope/v1/chat/completions", json={})
    assert r.status_code == 404
    assert "openai" in r.json()["error"]["message"]
    r = httpx.post(gateway + "/openai/v1/chat/completions", json={}, headers={"X-Powermeter-Tag": "x" * 201})
    assert r.status_code == 400
    assert "X-Powermeter-Tag" in r.json()["error"]["message"]

    base, key = server
    tag = "left-" + uuid.uuid4().hex[:8]
    with httpx.stream(
        "POST",
        gateway + "/openai/v1/chat/completions",
        headers={"X-Powermeter-Tag": tag, "x-fake-hold-last": "1"},
        json={"model": "gpt-4o", "stream": True},
    ) as s:
        next(s.iter_raw())  # the caller reads the beginning, then goes away
    # Let the gateway's event loop see the caller's disconnect before the upstream sends its last chunk:
    # otherwise, on a loaded machine, the whole answer can reach the gateway first and be recorded as a
    # finished call (the gateway notices a departed caller only between upstream chunks).
    time.sleep(1.0)
    fake.release.set()
    deadline = time.time() + 20
    while status(gateway)["unmetered"] < 1:
        assert time.time() < deadline, status(gateway)
        time.sleep(0.05)
    assert status(gateway)["recorded"] == 0
    assert history(base, key, tag=tag)["data"] == []


def test_server_down_during_100_calls_then_back_gives_100_records_and_no_duplicates(
    env: dict[str, str], fake: FakeLLM, tmp_path: Path
) -> None:
    port = free_port()
    with live_server(env, tmp_path / "server1.out", port=port) as base:  # migrate and create the key
        key = create_key(env, "gw@example.com", "gateway")
    tag = "down-" + uuid.uuid4().hex[:8]
    spool = tmp_path / "spool"
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}]}
    with run_gateway(env, fake.base, base, key, spool, tmp_path / "gw1.out") as gw:
        with httpx.Client(headers={"X-Powermeter-Tag": tag}, timeout=30) as c:
            for i in range(100):
                r = c.post(gw + "/openai/v1/chat/completions", json={**body, "stream": i % 2 == 0})
                assert r.status_code == 200
        deadline = time.time() + 10
        while status(gw)["recorder"]["sendFailures"] == 0 and time.time() < deadline:
            time.sleep(0.05)
        st = status(gw)["recorder"]
        assert st["pending"] == 100
        assert st["created"] == 0
        assert st["sendFailures"] > 0
    # the gateway restarted (a new process on the same spool) and the server is back
    with run_gateway(env, fake.base, base, key, spool, tmp_path / "gw2.out") as gw2:
        assert status(gw2)["recorder"]["pending"] == 100
        with live_server(env, tmp_path / "server2.out", port=port):
            st2 = wait_sent(gw2, 100)
            h = history(base, key, tag=tag, limit=1000)
    assert st2["recorder"]["created"] + st2["recorder"]["duplicates"] == 100
    assert h["pagination"]["totalElements"] == 100
    assert len({d["id"] for d in h["data"]}) == 100
    tokens = sorted({(d["inputTokens"], d["outputTokens"]) for d in h["data"]})
    assert tokens == [(120, 45), (500, 300)]
    assert list(spool.glob("*.jsonl")) == []
