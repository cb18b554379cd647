"""The gateway's usage reading (whole answers, SSE split anywhere, gzip) and its spool, on real files."""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import orjson
import pytest

from powermeter.gateway.app import _decoder, _scan_large, parse_upstream
from powermeter.gateway.recorder import Spool, SpoolLocked
from powermeter.gateway.usage import SSEReader, Usage, from_body, route_kind, wants_usage_injection
from tests.integration.gateway.fake_llm import anthropic_chunks, chat_chunks, responses_chunks


def feed_split(chunks: list[bytes], size: int, encode: bool = False) -> SSEReader:
    data = b"".join(chunks)
    if encode:
        data = gzip.compress(data)
    dec = _decoder(b"gzip") if encode else None
    reader = SSEReader()
    for i in range(0, len(data), size):
        part = data[i : i + size]
        reader.feed(dec(part) if dec is not None else part)
    return reader


@pytest.mark.parametrize("size", [1, 7, 64, 100_000])
@pytest.mark.parametrize("encode", [False, True])
def test_sse_usage_is_read_however_the_stream_is_cut(size: int, encode: bool) -> None:
    r = feed_split(chat_chunks(True), size, encode)
    assert (r.model, r.usage, r.token_seen) == ("gpt-4o", Usage(120, 45, 10, 64), True)
    a = feed_split(anthropic_chunks(), size, encode)
    assert a.model == "claude-sonnet-4-5-20250929"
    assert a.usage == Usage(prompt_tokens=2120, completion_tokens=250, cached_tokens=2000, cache_creation_tokens=20)
    resp = feed_split(responses_chunks(), size, encode)
    assert (resp.model, resp.usage) == ("gpt-4o-mini", Usage(40, 70))


def test_first_token_is_the_first_generated_text_not_the_first_event() -> None:
    r = SSEReader()
    role, first_word, *_ = chat_chunks(True)
    assert r.feed(role) is False  # role chunk with empty content
    assert r.feed(first_word) is True
    assert r.feed(first_word) is False  # only once
    a = SSEReader()
    chunks = anthropic_chunks()
    assert [a.feed(c) for c in chunks[:4]] == [False, False, False, True]  # message_start, block start, ping


def test_stream_without_usage_chunk_has_no_usage() -> None:
    r = feed_split(chat_chunks(False), 50)
    assert r.usage is None
    assert r.model == "gpt-4o"


def test_anthropic_message_delta_restating_the_prompt_replaces_it() -> None:
    r = SSEReader()
    for c in anthropic_chunks()[:-2]:
        r.feed(c)
    r.feed(
        b'event: message_delta\ndata: {"type":"message_delta","usage":{"input_tokens":5,'
        b'"cache_read_input_tokens":7,"cache_creation_input_tokens":0,"output_tokens":9}}\n\n'
    )
    assert r.usage == Usage(prompt_tokens=12, completion_tokens=9, cached_tokens=7)


def test_whole_answers() -> None:
    body = orjson.dumps(
        {
            "model": "gpt-4o",
            "usage": {
                "prompt_tokens": 10,
                "completion_tokens": 3,
                "completion_tokens_details": {"reasoning_tokens": 2},
                "prompt_tokens_details": {"cached_tokens": 4},
            },
        }
    )
    assert from_body(body) == ("gpt-4o", Usage(10, 3, 2, 4))
    resp = orjson.dumps(
        {
            "model": "o3",
            "usage": {"input_tokens": 9, "output_tokens": 8, "output_tokens_details": {"reasoning_tokens": 5}},
        }
    )
    assert from_body(resp) == ("o3", Usage(9, 8, 5, 0))
    assert from_body(b"not json") == (None, None)
    assert from_body(orjson.dumps({"model": "m"})) == ("m", None)


def test_large_answer_scan_reads_model_from_the_head_and_usage_from_the_tail() -> None:
    body = orjson.dumps(
        {
            "object": "list",
            "model": "text-embedding-3-large",
            "data": [{"embedding": [0.001] * 50_000}],
            "usage": {"prompt_tokens": 77, "total_tokens": 77},
        }
    )
    assert _scan_large(body[:65536], body[-65536:]) == ("text-embedding-3-large", Usage(77, 0))


def test_include_usage_is_added_only_to_openai_streams_that_lack_it() -> None:
    added = wants_usage_injection("chat", b'{"model":"m","stream":true,"stream_options":{"x":1}}')
    assert added is not None
    assert orjson.loads(added)["stream_options"] == {"x": 1, "include_usage": True}
    assert wants_usage_injection("chat", b'{"stream":true,"stream_options":{"include_usage":true}}') is None
    assert wants_usage_injection("chat", b'{"stream":false}') is None
    assert wants_usage_injection("messages", b'{"stream":true}') is None
    assert wants_usage_injection("completions", b'{"stream":true}') is not None


def test_routes_and_upstream_specs() -> None:
    assert [
        route_kind(p)
        for p in (
            "/v1/chat/completions",
            "/v1/completions",
            "/v1/responses",
            "/v1/embeddings",
            "/v1/messages",
            "/v1/models",
        )
    ] == ["chat", "completions", "responses", "embeddings", "messages", None]
    u = parse_upstream("local=http://10.0.0.5:8000/base@meta")
    assert (u.name, u.provider, u.prefix, u.origin.host) == ("local", "meta", b"/base", "10.0.0.5")
    assert parse_upstream("openai=https://api.openai.com").provider == "openai"
    for bad in ("openai", "=http://x", "a=ftp://x", "a b=http://x"):
        with pytest.raises(ValueError):
            parse_upstream(bad)


def test_spool_keeps_records_across_processes_and_is_bounded(tmp_path: Path) -> None:
    sp = Spool(tmp_path, max_records=3)
    sp.open()
    for i in range(4):
        sp.append({"i": i})
    assert (sp.total, sp.dropped) == (3, 1)
    with pytest.raises(SpoolLocked):
        Spool(tmp_path).open()
    # a crash: the lock goes with the process, the open segment stays as .part, a line may be cut short
    assert sp._fd is not None
    assert sp._lock_fd is not None
    os.write(sp._fd, b'{"i": 9')
    os.close(sp._fd)
    os.close(sp._lock_fd)
    again = Spool(tmp_path)
    again.open()
    again.recover_parts()
    assert again.total == 3
    assert [r["i"] for p in again.sealed for r in again.read(p)] == [0, 1, 2]
    # what the sender posts: the recovered segment's whole lines only, as they are on disk
    assert again.lines(again.sealed[0]) == [b'{"i":0}', b'{"i":1}', b'{"i":2}']
    again.done(again.sealed[0], 3)
    assert again.total == 0
    assert list(tmp_path.glob("*.jsonl")) == []
    # a segment this process wrote and sealed itself is sent as written
    again.append_many([{"i": 5, "tag": "a}"}, {"i": 6}])
    again.seal()
    assert again.lines(again.sealed[0]) == [b'{"i":5,"tag":"a}"}', b'{"i":6}']
    assert again.lines(again.sealed[0]) == again.read_lines(again.sealed[0])


def test_compressed_whole_answers_are_read_from_a_decoded_copy() -> None:
    from powermeter.gateway.app import _decode_all

    body = orjson.dumps({"model": "gpt-4o", "usage": {"prompt_tokens": 3, "completion_tokens": 2}})
    assert from_body(_decode_all(b"gzip", gzip.compress(body))) == ("gpt-4o", Usage(3, 2))
    assert from_body(_decode_all(b"deflate", zlib.compress(body))) == ("gpt-4o", Usage(3, 2))
    assert from_body(_decode_all(b"", body)) == ("gpt-4o", Usage(3, 2))
    assert from_body(_decode_all(b"br", b"\x0b\x02")) == (None, None)  # unreadable: no usage, no crash
