"""The model catalog: every seed id resolves, values agree with EcoLogits, resolution order holds."""

from __future__ import annotations

import json
import re
import shutil
from importlib import resources
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from powermeter.data.loader import data_path
from powermeter.data.models import (
    CONFIDENCE_LEVELS,
    MATCH_KINDS,
    load_catalog,
    load_catalog_from,
    normalized_candidates,
    parse_catalog,
)

# The seed document's model list (seeds/004, one id a line), copied into the repository.
SEED_MODELS = Path(__file__).parent / "data" / "seed_models.txt"


def _seed_ids() -> list[str]:
    return [line.strip() for line in SEED_MODELS.read_text().splitlines() if line.strip()]


SEED_IDS = _seed_ids()
CATALOG = load_catalog()


def _ecologits_models() -> dict[tuple[str, str], dict[str, object]]:
    path = Path(str(resources.files("ecologits").joinpath("data", "models.json")))
    raw = json.loads(path.read_text())
    models = {(m["provider"], m["name"]): m for m in raw["models"]}
    for a in raw["aliases"]:
        models[(a["provider"], a["name"])] = models[(a["provider"], a["alias"])]
    return models


def test_seed_list_is_the_384_ids() -> None:
    assert len(SEED_IDS) == 384
    assert len(set(SEED_IDS)) == 384


@pytest.mark.parametrize("model_id", SEED_IDS)
def test_every_seed_id_resolves_to_an_entry_with_a_source(model_id: str) -> None:
    res = CATALOG.resolve(model_id)
    assert res is not None, model_id
    assert res.match in MATCH_KINDS
    assert res.match != "provider_fallback", "seed ids are catalogued, not guessed"
    assert res.entry.id in {e.id for e in CATALOG.all()}
    assert res.source.strip()
    assert res.entry.source.strip()
    assert res.confidence in CONFIDENCE_LEVELS
    arch = res.entry.architecture
    assert arch.kind in ("dense", "moe")
    assert 0 < arch.active_min_b <= arch.active_max_b <= arch.total_max_b


def test_seed_ids_mostly_resolve_exactly() -> None:
    kinds = [CATALOG.resolve(m).match for m in SEED_IDS]  # type: ignore[union-attr]
    assert kinds.count("exact") > 300


@pytest.mark.parametrize(
    ("model_id", "entry_id", "total", "active"),
    [
        ("qwen/qwen3-235b-a22b", "qwen/qwen3-235b-a22b", (235, 235), (22, 22)),
        ("meta-llama/llama-3.1-70b-instruct", "meta-llama/llama-3.1-70b-instruct", (70.55, 70.55), (70.55, 70.55)),
        ("deepseek/deepseek-v3.2", "deepseek/deepseek-v3.2", (671, 671), (37, 37)),
        ("anthropic/claude-sonnet-4.5", "anthropic/claude-sonnet-4.5", (440, 440), (44, 132)),
        ("openai/gpt-5", "openai/gpt-5", (300, 300), (30, 90)),
        ("google/gemini-2.5-flash", "google/gemini-2.5-flash", (440, 440), (44, 132)),
        ("mistralai/mixtral-8x22b-instruct", "mistralai/mixtral-8x22b-instruct", (140.6, 140.6), (39.1, 39.1)),
        ("openai/gpt-oss-120b:free", "openai/gpt-oss-120b", (117, 117), (5.1, 5.1)),
        ("groq/llama-3.3-70b-versatile", "meta-llama/llama-3.3-70b-instruct", (70.55, 70.55), (70.55, 70.55)),
        ("anthropic/claude-3.7-sonnet:thinking", "anthropic/claude-3.7-sonnet", (440, 440), (44, 132)),
        ("openai/gpt-4o:extended", "openai/gpt-4o", (440, 440), (44, 132)),
        ("anthropic/claude-sonnet-4-5-20250929", "anthropic/claude-sonnet-4.5", (440, 440), (44, 132)),
        ("deepseek/deepseek-r1-0528", "deepseek/deepseek-r1", (671, 671), (37, 37)),
        ("meituan/longcat-flash-chat", "meituan/longcat-flash-chat", (560, 560), (18.6, 31.3)),
    ],
)
def test_known_ids_resolve_to_published_sizes(
    model_id: str, entry_id: str, total: tuple[float, float], active: tuple[float, float]
) -> None:
    res = CATALOG.resolve(model_id)
    assert res is not None
    a = res.entry.architecture
    assert res.entry.id == entry_id
    assert (a.total_min_b, a.total_max_b) == total
    assert (a.active_min_b, a.active_max_b) == active


def test_variant_suffix_is_recorded_and_does_not_change_the_model() -> None:
    free = CATALOG.resolve("openai/gpt-oss-20b:free")
    plain = CATALOG.resolve("openai/gpt-oss-20b")
    assert free is not None
    assert plain is not None
    assert free.entry is plain.entry
    assert free.variant == "free"
    assert free.match == "exact"


def test_resolution_is_case_and_whitespace_insensitive() -> None:
    a = CATALOG.resolve("  OpenAI/GPT-4o ")
    assert a is not None
    assert a.entry.id == "openai/gpt-4o"


@settings(max_examples=200, deadline=None)
@given(
    model_id=st.sampled_from(SEED_IDS),
    variant=st.sampled_from(["free", "thinking", "extended", "exacto", "nitro", "floor"]),
)
def test_any_variant_suffix_resolves_like_the_base(model_id: str, variant: str) -> None:
    base = model_id.split(":", 1)[0]
    with_variant = CATALOG.resolve(f"{base}:{variant}")
    plain = CATALOG.resolve(base)
    assert with_variant is not None
    assert plain is not None
    assert with_variant.entry.id == plain.entry.id


def test_dated_versions_and_dashed_version_numbers_resolve_to_the_base() -> None:
    cases = {
        "anthropic/claude-haiku-4-5-20251001": "anthropic/claude-haiku-4.5",
        "anthropic/claude-3-5-sonnet-20241022": "anthropic/claude-3.5-sonnet",
        "openai/gpt-5-2025-08-07": "openai/gpt-5",
        "google/gemini-2.5-pro-preview-05-06": "google/gemini-2.5-pro",
        "google/gemini-2.0-flash-001": "google/gemini-2.0-flash",
        "mistralai/mistral-large-2411": "mistralai/mistral-large-2407",
        "qwen/qwen3-235b-a22b-2507": "qwen/qwen3-235b-a22b",
        "google/gemini-3-pro": "google/gemini-3-pro-preview",
    }
    for requested, expected in cases.items():
        res = CATALOG.resolve(requested)
        assert res is not None, requested
        assert res.entry.id == expected, requested
        assert res.match == "alias"


def test_host_prefixes_and_missing_vendors_resolve_by_name() -> None:
    for requested, expected in {
        "together/qwen3-32b": "qwen/qwen3-32b",
        "fireworks/deepseek-r1": "deepseek/deepseek-r1",
        "gemini-1.5-pro": "google/gemini-1.5-pro",
        "claude-opus-4-5": "anthropic/claude-opus-4.5",
    }.items():
        res = CATALOG.resolve(requested)
        assert res is not None, requested
        assert res.entry.id == expected, requested


def test_vendor_hint_completes_an_id_without_vendor() -> None:
    res = CATALOG.resolve("gpt-4o", vendor_hint="openai")
    assert res is not None
    assert res.entry.id == "openai/gpt-4o"


def test_family_prefix_catches_unlisted_versions() -> None:
    res = CATALOG.resolve("deepseek/deepseek-v3.9-experimental")
    assert res is not None
    assert res.match == "family"
    assert res.entry.architecture.total_max_b == 671


@pytest.mark.parametrize(
    ("model_id", "kind", "total", "active"),
    [
        ("acme/omni-30b-a3b-instruct", "moe", 30.0, 3.0),
        ("acme/wide-8x7b", "moe", 44.8, 12.5),
        ("acme/dense-13b-chat", "dense", 13.0, 13.0),
        ("acme/tiny-1.5b", "dense", 1.5, 1.5),
    ],
)
def test_name_patterns_give_sizes(model_id: str, kind: str, total: float, active: float) -> None:
    res = CATALOG.resolve(model_id)
    assert res is not None
    assert res.match == "pattern"
    assert res.confidence == "medium"
    a = res.entry.architecture
    assert a.kind == kind
    assert a.total_max_b == pytest.approx(total)
    assert a.active_max_b == pytest.approx(active)
    assert "model id" in res.source


def test_exact_and_alias_come_before_patterns() -> None:
    # the id names 8x22b, but the catalog's measured 140.6 B wins over the 0.8·8·22 pattern
    res = CATALOG.resolve("mistralai/mixtral-8x22b-instruct")
    assert res is not None
    assert res.match == "exact"
    assert res.entry.architecture.total_max_b == 140.6


def test_unknown_model_of_a_known_vendor_is_an_estimated_fallback() -> None:
    res = CATALOG.resolve("openai/gpt-9-ultra")
    assert res is not None
    assert res.match == "provider_fallback"
    assert res.estimated
    assert res.confidence == "estimated"
    assert res.source.startswith("estimated: openai fallback")
    # a vendor hint supplies the fallback for ids without a vendor
    hinted = CATALOG.resolve("mystery-model", vendor_hint="anthropic")
    assert hinted is not None
    assert hinted.match == "provider_fallback"
    # no id at all: the vendor's fallback, if the vendor is known
    empty = CATALOG.resolve(None, vendor_hint="google")
    assert empty is not None
    assert empty.match == "provider_fallback"


def test_unknown_model_without_a_fallback_is_unresolved() -> None:
    assert CATALOG.resolve("acme/mystery") is None
    assert CATALOG.resolve("mystery") is None
    assert CATALOG.resolve(None) is None
    assert CATALOG.resolve("") is None


def test_catalog_copies_of_ecologits_values_are_exact() -> None:
    el = _ecologits_models()
    checked = 0
    for entry in CATALOG.all():
        if entry.ecologits is None:
            continue
        m = el.get(entry.ecologits)
        assert m is not None, f"{entry.id}: {entry.ecologits} is not in EcoLogits"
        params = m["architecture"]["parameters"]  # type: ignore[index]
        if m["architecture"]["type"] == "moe":  # type: ignore[index]
            total, active = params["total"], params["active"]
        else:
            total = active = params
        a = entry.architecture

        def rng(v: object) -> tuple[float, float]:
            return (v["min"], v["max"]) if isinstance(v, dict) else (float(v), float(v))  # type: ignore[arg-type]

        assert (a.total_min_b, a.total_max_b) == rng(total), entry.id
        assert (a.active_min_b, a.active_max_b) == rng(active), entry.id
        dep: dict[str, float | None] = m.get("deployment") or {}  # type: ignore[assignment]
        assert a.tps == dep.get("tps"), entry.id
        assert a.ttft_s == dep.get("ttft"), entry.id
        checked += 1
    assert checked >= 40


def test_entries_are_well_formed() -> None:
    ids = set()
    for e in CATALOG.all():
        assert re.fullmatch(r"[a-z0-9._-]+/[a-z0-9._:-]+", e.id), e.id
        assert e.id not in ids
        ids.add(e.id)
        assert e.confidence in CONFIDENCE_LEVELS
        a = e.architecture
        if a.kind == "dense":
            assert (a.total_min_b, a.total_max_b) == (a.active_min_b, a.active_max_b), e.id
        else:
            assert a.active_min_b < a.total_min_b, e.id  # (EcoLogits lets gemini-3-flash reach 100 %)
            assert a.active_max_b <= a.total_max_b, e.id
        if a.is_range:
            assert "model-arch-not-released" in e.warnings or e.id == "meituan/longcat-flash-chat", e.id
        assert e.profile.gpus_min >= 1
    for name, c in CATALOG.classes.items():
        assert c.source
        assert c.size_class == name


def test_version_is_a_content_hash() -> None:
    assert re.fullmatch(r"sha256:[0-9a-f]{12}", CATALOG.version)


def test_normalized_candidates_strip_dates_and_suffixes_in_order() -> None:
    assert normalized_candidates("openai/gpt-4o-2024-08-06") == ["openai/gpt-4o-2024-08-06", "openai/gpt-4o"]
    cands = normalized_candidates("anthropic/claude-3-5-sonnet-20241022")
    assert cands[:2] == ["anthropic/claude-3-5-sonnet-20241022", "anthropic/claude-3-5-sonnet"]
    assert "anthropic/claude-3.5-sonnet" in cands


def _copy_catalog(tmp_path: Path) -> tuple[Path, Path]:
    csv_path = tmp_path / "models.csv"
    meta_path = tmp_path / "catalog_meta.json"
    shutil.copy(data_path("models", "models.csv"), csv_path)
    shutil.copy(data_path("models", "catalog_meta.json"), meta_path)
    return csv_path, meta_path


def test_a_copy_of_the_shipped_files_loads_with_the_same_version(tmp_path: Path) -> None:
    csv_path, meta_path = _copy_catalog(tmp_path)
    assert load_catalog_from(csv_path, meta_path).version == CATALOG.version


@pytest.mark.parametrize(
    ("bad_row", "message"),
    [
        ("acme/x,dense,7,,,,,,high,,,,,", "no source"),
        ("acme/x,dense,7,,,,,,certain,,,,,src", "confidence"),
        ("acme/x,,,,acme/missing,,,,low,,,,,src", "not in the catalog"),
        ("acme/x,dense,7,,,mid,,,low,,,,,src", "exactly one"),
        ("acme/x,dense,7,9,,,,,high,,,,,src", "dense"),
        ("acme/x,dense,7,,,,,,high,,,,made-up-warning,src", "unknown warnings"),
        ("openai/gpt-4o,dense,7,,,,,,high,,,,,src", "duplicate"),
    ],
)
def test_invalid_rows_are_rejected(tmp_path: Path, bad_row: str, message: str) -> None:
    csv_path, meta_path = _copy_catalog(tmp_path)
    with csv_path.open("a") as f:
        f.write(bad_row + "\n")
    with pytest.raises(ValueError, match=message):
        parse_catalog(csv_path, meta_path)
