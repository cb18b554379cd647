"""The gateway's per-call metering without pydantic: the record check accepts exactly what the server's
schema accepts, and the footprint equals ``inference.service.footprint`` (the X-Energy-Wh header equals
the stored record)."""

from __future__ import annotations

import itertools
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from powermeter.gateway.app import Gateway, GatewayConfig, make_upstream
from powermeter.gateway.meter import Footprints, check_record, footprint_header, footprint_value
from powermeter.gateway.usage import Usage
from powermeter.inference.schemas import MAX_TOKENS, InferenceBatchItem
from powermeter.inference.service import Engine, build_engine, footprint
from powermeter.infra.errors import ApiError

T0 = 1_764_000_000.0  # seconds


@pytest.fixture(scope="module")
def engine() -> Engine:
    return build_engine()


def schema_accepts(rec: dict[str, Any]) -> bool:
    try:
        InferenceBatchItem.model_validate(rec)
    except ValidationError:
        return False
    return True


MODELS = [
    "gpt-4o",
    "claude-sonnet-4-5",
    "x" * 200,
    "x" * 250,
    "bad\x00model",
    "esc\x1b[31m",
    "tab\tmodel",
    "é-model",
    "",
]


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("end_offset", [-0.5, 0.0, 2.0])
@pytest.mark.parametrize("tag", [None, "team-a"])
def test_records_are_kept_exactly_when_the_server_schema_accepts_them(
    model: str, end_offset: float, tag: str | None
) -> None:
    gw = Gateway(GatewayConfig(upstreams=(make_upstream("openai", "http://127.0.0.1:9"),), detected_region="us"), None)
    usage = Usage(prompt_tokens=MAX_TOKENS + 5, completion_tokens=3, reasoning_tokens=1, cached_tokens=2)
    metered = gw.meter(gw.config.upstreams[0], model, usage, b"{}", T0, T0 + 0.1, T0 + end_offset, tag)
    rec = None if metered is None else orjson.loads(metered[0])  # the spool line: one JSON object
    if metered is not None:
        assert metered[0].endswith(b"}\n")
        assert metered[0].count(b"\n") == 1
    # the record as built before the check (the gateway truncates the model to 200 characters)
    raw = {
        "provider": "openai",
        "model": model[:200] or None,
        "prompt_tokens": MAX_TOKENS,
        "completion_tokens": 3,
        "reasoning_tokens": 1,
        "cached_tokens": 2,
        "startTimeMs": int(T0 * 1000),
        "firstTokenTimeMs": int((T0 + 0.1) * 1000),
        "endTimeMs": int((T0 + end_offset) * 1000),
        "source": "gateway",
        "is_estimated": False,
        "tag": tag,
        "idempotency_key": "gw-x-1",
        "detected_region": "us",
    }
    assert (rec is not None) == schema_accepts(raw)
    if rec is not None:
        assert schema_accepts(rec)
        assert {k: v for k, v in raw.items() if v is not None and k != "idempotency_key"} == {
            k: v for k, v in rec.items() if k != "idempotency_key"
        }
        assert rec["idempotency_key"].startswith("gw-")
        assert rec["idempotency_key"].endswith("-1")
        assert check_record(rec) is None
    assert gw.unmetered == (0 if rec is not None else 1)


def test_invalid_provider_or_region_is_refused_at_start_up() -> None:
    with pytest.raises(ValueError, match="provider"):
        make_upstream("openai", "http://127.0.0.1:9", "bad\nprovider")
    with pytest.raises(ValueError, match="provider"):
        make_upstream("openai", "http://127.0.0.1:9", "p" * 101)
    with pytest.raises(ValueError, match="region"):
        Gateway(
            GatewayConfig(upstreams=(make_upstream("openai", "http://127.0.0.1:9"),), detected_region="eu\x1b"), None
        )


def test_footprint_equals_the_servers_for_every_input(engine: Engine) -> None:
    fp = Footprints(engine, max_entries=3)  # small: the memo is cleared along the way too
    providers = ["openai", "anthropic", "Google", "groq", "unknown-provider"]
    models = ["gpt-4o", "gpt-4o-mini", "claude-sonnet-4-5", "o3", "gemini-2.5-pro", "not-a-model-xyz", None]
    regions = [None, "us-west-1", "europe-west4", "FR"]
    tokens = [(0, 0, 0, 0), (500, 300, 0, 0), (12_000, 2_000, 1_500, 8_000), (10, 40, 100, 0)]
    timings = [(None, 0), (0.2, 0.001), (0.05, 30.0), (None, -1.0)]  # (first token after s, end after s)
    checked = 0
    for provider, model, region, (p, c, r, cached), (first, end) in itertools.product(
        providers, models, regions, tokens, timings
    ):
        rec: dict[str, Any] = {
            "provider": provider,
            "prompt_tokens": p,
            "completion_tokens": c,
            "reasoning_tokens": r,
            "cached_tokens": cached,
            "startTimeMs": int(T0 * 1000),
            "endTimeMs": int((T0 + end) * 1000),
            "source": "gateway",
            "is_estimated": False,
            "idempotency_key": "gw-x-1",
        }
        if model is not None:
            rec["model"] = model
        if region is not None:
            rec["detected_region"] = region
        if first is not None:
            rec["firstTokenTimeMs"] = int((T0 + first) * 1000)
        if end < 0:  # the gateway never meters such a record (check_record refuses it)
            assert check_record(rec) is not None
            continue
        try:
            expected: tuple[float, float] | None = footprint(engine, InferenceBatchItem.model_validate(rec))
        except ApiError:
            expected = None
        assert fp(rec) == expected, rec
        checked += expected is not None
    assert checked > 500


def test_model_and_tag_are_json_encoded_in_the_line() -> None:
    gw = Gateway(GatewayConfig(upstreams=(make_upstream("openai", "http://127.0.0.1:9", 'pro"vider'),)), None)
    usage = Usage(prompt_tokens=1, completion_tokens=2)
    for model, tag in (('quo"te\\back', 'a "tag" \\'), ("é-model", "t}{,")):
        metered = gw.meter(gw.config.upstreams[0], model, usage, b"{}", T0, None, T0 + 1, tag)
        assert metered is not None
        rec = orjson.loads(metered[0])
        assert (rec["provider"], rec["model"], rec["tag"]) == ('pro"vider', model, tag)
        assert "firstTokenTimeMs" not in rec
        assert "detected_region" not in rec
    # the model the request named is used when the answer names none
    metered = gw.meter(gw.config.upstreams[0], None, usage, b'{"model":"gpt-4o"}', T0, None, T0 + 1, None)
    assert metered is not None
    assert orjson.loads(metered[0])["model"] == "gpt-4o"
    lines = [gw.meter(gw.config.upstreams[0], "m", usage, b"", T0, None, T0, None) for _ in range(3)]
    assert len({orjson.loads(m[0])["idempotency_key"] for m in lines if m is not None}) == 3
    # a lone surrogate (no valid UTF-8) in a model or tag: the line is still JSON the server reads, the
    # character replaced by U+FFFD (never an exception in the answer's path)
    metered = gw.meter(gw.config.upstreams[0], "gpt\ud800-4o", usage, b"{}", T0, None, T0 + 1, "t\udfff")
    assert metered is not None
    rec = orjson.loads(metered[0])
    assert rec["model"].startswith("gpt\ufffd")
    assert rec["model"].endswith("-4o")
    assert rec["tag"].startswith("t\ufffd")


@pytest.mark.parametrize("seed", range(3))
def test_footprint_headers_parse_to_the_rounded_footprint(engine: Engine, seed: int) -> None:
    """The headers print the unrounded footprint with ``%.6f``: each parses to exactly ``round(x, 6)``,
    the figure the server returns, and the X-Energy-Wh of a call equals its stored record's."""
    import random

    rnd = random.Random(seed)
    values = [rnd.uniform(0, 10) ** rnd.choice((1, 3, -1)) for _ in range(20_000)]
    values += [0.0, 5e-7, 1.5e-6, 2.5e-6, 0.1234565, 1e6 + 0.0000005, 123456.7890125]
    for x in values:
        assert float(footprint_value(x)) == round(x, 6), x
        head = footprint_header((x, x / 3))
        energy, co2 = (float(line.split(b": ")[1]) for line in head.split(b"\r\n")[:2])
        assert (energy, co2) == (round(x, 6), round(x / 3, 6))
    fp = Footprints(engine)
    raw = fp.raw("openai", "gpt-4o", None, 500, 300, 0, 0, 1_000, None, 1_900)
    assert raw is not None
    assert (round(raw[0], 6), round(raw[1], 6)) == fp.of("openai", "gpt-4o", None, 500, 300, 0, 0, 1_000, None, 1_900)
