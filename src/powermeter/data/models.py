"""The LLM model catalog: model id → architecture (dense or MoE, total / active parameters).

Files: ``data/models/models.csv`` (one row per model, with aliases, family prefixes, warnings,
confidence and source) and ``data/models/catalog_meta.json`` (size classes for models without a
published architecture, each vendor's fallback, host prefixes, OpenRouter variant suffixes).

Resolution order for an id such as ``groq/llama-3.3-70b-versatile`` or ``openai/gpt-oss-120b:free``:

1. ``exact``: the id, lower-cased and without its ``:variant`` suffix, is a catalog id;
2. ``alias``: the id is a listed alias, or becomes a catalog id or alias once dated versions
   (``-2024-08-06``, ``-20250929``, ``-0528``, ``-2512``, ``-09-2025``), release suffixes
   (``-preview``, ``-instruct``, ``-it``, ``-latest``, ``-001`` …) and ``4-5`` → ``4.5`` are
   normalised away, or once a host prefix (``groq/``, ``together/`` …) or a missing vendor is
   replaced by the model's name;
3. ``family``: the normalised id starts with a family prefix (``deepseek/deepseek-v3``);
4. ``pattern``: the id names its size (``-30b-a3b`` → MoE 30B/3B, ``8x22b``, ``-70b``);
5. ``provider_fallback``: the vendor's fallback class or model, marked ``estimated``.

Anything else is unresolved (``None``): the caller reports it.
"""

from __future__ import annotations

import csv
import json
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from powermeter.data.loader import content_version, data_path
from powermeter.methodology.ai_inference import ModelArchitecture, ModelProfile, prepare_model

MODELS_CSV = ("models", "models.csv")
META_JSON = ("models", "catalog_meta.json")

CONFIDENCE_LEVELS = ("high", "medium", "low")
MATCH_KINDS = ("exact", "alias", "family", "pattern", "provider_fallback")
KNOWN_WARNINGS = frozenset(
    {
        "model-arch-not-released",  # EcoLogits: architecture guessed (closed model)
        "model-arch-multimodal",  # EcoLogits: multimodal model, text-token method is approximate
        "non-text-modality",  # audio / image / music generation priced in tokens
        "diffusion-llm",  # not autoregressive: per-token decode energy is a proxy
        "hybrid-ssm",  # Mamba/SSM-Transformer hybrid: attention-free layers decode cheaper
        "router",  # the model id routes to undisclosed models
        "test-time-compute-variant",  # a "-pro" model: the base model with more (counted) reasoning tokens
    }
)

_DATE_SUFFIXES = (
    re.compile(r"-\d{4}-\d{2}-\d{2}$"),  # -2024-08-06
    re.compile(r"-\d{8}$"),  # -20250929
    re.compile(r"-\d{2}-\d{4}$"),  # -09-2025 / -08-2024
    re.compile(r"-\d{2}-\d{2}$"),  # -05-06 / -02-15
    re.compile(r"-\d{4}$"),  # -2512 / -0528 / -8192 (context length)
    re.compile(r"-\d{3}$"),  # -001
)
_RELEASE_SUFFIXES = (
    "-instruct",
    "-it",
    "-preview",
    "-latest",
    "-exp",
    "-beta",
    "-hf",
    "-fp8",
    "-bf16",
    "-awq",
    "-gguf",
    "-versatile",
    "-instant",
    "-thinking",
    "-chat-latest",
)
_DOTTED = re.compile(r"(?<=[a-z]-)(\d)-(\d)(?=-|$)")
_MOE_PATTERN = re.compile(r"(?:^|[-_/])(\d+(?:\.\d+)?)b-a(\d+(?:\.\d+)?)b(?=$|[-_.])")
_EXPERTS_PATTERN = re.compile(r"(?:^|[-_/])(\d+)x(\d+(?:\.\d+)?)b(?=$|[-_.])")
_DENSE_PATTERN = re.compile(r"(?:^|[-_/])(\d+(?:\.\d+)?)b(?=$|[-_.])")
# Mixtral-style "n × expert size": shared attention makes the total ≈ 0.8·n·s and top-2 routing
# activates ≈ 0.28 of it (Mixtral 8x7B: 46.7/12.9 B; 8x22B: 140.6/39.1 B, EcoLogits models.json).
_EXPERTS_TOTAL_SHARE = 0.8
_EXPERTS_ACTIVE_SHARE = 0.28


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    id: str
    architecture: ModelArchitecture
    profile: ModelProfile
    confidence: str
    source: str
    warnings: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    families: tuple[str, ...] = ()
    ecologits: tuple[str, str] | None = None  # (EcoLogits provider, model name)
    same_as: str | None = None
    size_class: str | None = None

    def architecture_dict(self) -> dict[str, Any]:
        a = self.architecture
        return {
            "type": a.kind,
            "totalParamsB": _range_dict(a.total_min_b, a.total_max_b),
            "activeParamsB": _range_dict(a.active_min_b, a.active_max_b),
            "tps": a.tps,
            "ttftS": a.ttft_s,
            "gpus": _range_dict(self.profile.gpus_min, self.profile.gpus_max),
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "architecture": self.architecture_dict(),
            "confidence": self.confidence,
            "source": self.source,
            "warnings": list(self.warnings),
            "aliases": list(self.aliases),
            "families": list(self.families),
            "sameAs": self.same_as,
            "sizeClass": self.size_class,
            "ecologits": None if self.ecologits is None else "/".join(self.ecologits),
        }


def _range_dict(lo: float, hi: float) -> dict[str, float] | float:
    return lo if lo == hi else {"min": lo, "max": hi}


@dataclass(frozen=True, slots=True)
class Resolution:
    requested: str
    normalized: str
    match: str  # one of MATCH_KINDS
    entry: CatalogEntry
    confidence: str  # entry confidence; "medium" for a pattern; "estimated" for a provider fallback
    source: str
    variant: str | None = None

    @property
    def estimated(self) -> bool:
        return self.match == "provider_fallback"

    def as_dict(self) -> dict[str, Any]:
        return {
            "requested": self.requested,
            "normalized": self.normalized,
            "match": self.match,
            "variant": self.variant,
            "modelId": self.entry.id,
            "confidence": self.confidence,
            "estimated": self.estimated,
            "source": self.source,
            "warnings": list(self.entry.warnings),
            "architecture": self.entry.architecture_dict(),
        }


@dataclass(slots=True)
class _Meta:
    classes: dict[str, CatalogEntry]
    vendor_fallbacks: dict[str, tuple[str, str]]  # vendor -> (class name or model id, why)
    hosts: frozenset[str]
    raw: dict[str, Any] = field(default_factory=dict)


def _parse_range(text: str, what: str) -> tuple[float, float]:
    text = text.strip()
    if "-" in text:
        lo_s, hi_s = text.split("-", 1)
        lo, hi = float(lo_s), float(hi_s)
    else:
        lo = hi = float(text)
    if not 0 < lo <= hi:
        raise ValueError(f"{what}: bad range {text!r}")
    return lo, hi


def _split(text: str) -> tuple[str, ...]:
    return tuple(p.strip().lower() for p in text.split("|") if p.strip())


def _arch(kind: str, total: str, active: str, tps: float | None, ttft: float | None, what: str) -> ModelArchitecture:
    t_lo, t_hi = _parse_range(total, what)
    a_lo, a_hi = (t_lo, t_hi) if not active.strip() else _parse_range(active, what)
    if kind == "dense" and (a_lo, a_hi) != (t_lo, t_hi):
        raise ValueError(f"{what}: a dense model has active == total parameters")
    return ModelArchitecture(kind, t_lo, t_hi, a_lo, a_hi, tps, ttft)


def _opt_float(text: str) -> float | None:
    text = text.strip()
    return float(text) if text else None


def normalized_candidates(key: str) -> list[str]:
    """``key`` followed by its progressively normalised forms (dates and release suffixes removed,
    ``4-5`` → ``4.5``), without duplicates, in the order they are tried."""
    out = [key]
    current = key
    while True:
        nxt = current
        for rx in _DATE_SUFFIXES:
            nxt = rx.sub("", nxt)
            if nxt != current:
                break
        if nxt == current:
            for suffix in _RELEASE_SUFFIXES:
                if current.endswith(suffix) and len(current) > len(suffix) + 1:
                    nxt = current[: -len(suffix)]
                    break
        if nxt == current:
            break
        current = nxt
        out.append(current)
    for cand in list(out):
        dotted = _DOTTED.sub(r"\1.\2", cand)
        if dotted != cand:
            out.append(dotted)
    seen: set[str] = set()
    return [c for c in out if not (c in seen or seen.add(c))]  # type: ignore[func-returns-value]


class ModelCatalog:
    """All catalog entries of one dataset version, with an O(1) (cached) resolver."""

    def __init__(self, entries: list[CatalogEntry], meta: _Meta, version: str) -> None:
        self.version = version
        self._entries: dict[str, CatalogEntry] = {e.id: e for e in entries}
        self._meta = meta
        self._keys: dict[str, str] = {}
        for e in entries:
            self._keys[e.id] = e.id
        for e in entries:
            for a in e.aliases:
                other = self._keys.get(a)
                if other is not None and other != e.id:
                    raise ValueError(f"alias {a!r} of {e.id} is already {other}")
                self._keys[a] = e.id
        # Normalised forms of ids and aliases, kept only where they are unambiguous.
        derived: dict[str, set[str]] = {}
        for key, eid in list(self._keys.items()):
            for cand in normalized_candidates(key)[1:]:
                derived.setdefault(cand, set()).add(eid)
        for cand, ids in derived.items():
            if cand not in self._keys and len(ids) == 1:
                self._keys[cand] = next(iter(ids))
        # Name without vendor → entry, for host-prefixed and vendor-less ids.
        by_name: dict[str, set[str]] = {}
        for key, eid in self._keys.items():
            if "/" in key:
                by_name.setdefault(key.split("/", 1)[1], set()).add(eid)
        self._by_name = {name: next(iter(ids)) for name, ids in by_name.items() if len(ids) == 1}
        fams: list[tuple[str, str]] = []
        for e in entries:
            fams.extend((prefix, e.id) for prefix in e.families)
        fams.sort(key=lambda pf: -len(pf[0]))
        self._families = fams
        self._cache: dict[tuple[str, str | None], Resolution | None] = {}
        self._cache_lock = threading.Lock()

    # -- queries ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._entries)

    def all(self) -> list[CatalogEntry]:
        return list(self._entries.values())

    def get(self, model_id: str) -> CatalogEntry | None:
        return self._entries.get(model_id.strip().lower())

    @property
    def classes(self) -> dict[str, CatalogEntry]:
        return dict(self._meta.classes)

    @property
    def vendors(self) -> list[str]:
        return sorted(self._meta.vendor_fallbacks)

    @property
    def vendor_fallbacks(self) -> dict[str, dict[str, str]]:
        """vendor → {"fallback": class name or model id, "why": reason}."""
        return {v: {"fallback": t, "why": w} for v, (t, w) in sorted(self._meta.vendor_fallbacks.items())}

    def is_host(self, prefix: str) -> bool:
        return prefix in self._meta.hosts

    def resolve(self, model: str | None, vendor_hint: str | None = None) -> Resolution | None:
        """Resolve a model id (``None``/empty: the vendor's fallback) to a catalog entry."""
        key = ((model or "").strip().lower(), vendor_hint.strip().lower() if vendor_hint else None)
        try:
            return self._cache[key]
        except KeyError:
            pass
        res = self._resolve(key[0], key[1], model or "")
        with self._cache_lock:
            if len(self._cache) > 50_000:
                self._cache.clear()
            self._cache[key] = res
        return res

    # -- resolution --------------------------------------------------------------------------
    def _resolve(self, raw: str, vendor_hint: str | None, requested: str) -> Resolution | None:
        variant: str | None = None
        base = raw
        if ":" in raw:
            head, _, tail = raw.rpartition(":")
            if tail and "/" not in tail and head:
                base, variant = head, tail
        if not base:
            return self._fallback(requested, base, vendor_hint, variant)
        vendor, name = base.split("/", 1) if "/" in base else ("", base)
        hosted = vendor in self._meta.hosts
        eid = self._keys.get(base)
        if eid is not None:
            kind = "exact" if eid == base else "alias"
            return self._hit(requested, base, kind, self._entries[eid], variant)
        cands = normalized_candidates(base)
        for cand in cands[1:]:
            eid = self._keys.get(cand)
            if eid is not None:
                return self._hit(requested, cand, "alias", self._entries[eid], variant)
        if not vendor or hosted:
            name_cands = normalized_candidates(name)
            if vendor_hint:
                for cand in name_cands:
                    eid = self._keys.get(f"{vendor_hint}/{cand}")
                    if eid is not None:
                        return self._hit(requested, f"{vendor_hint}/{cand}", "alias", self._entries[eid], variant)
            for cand in name_cands:
                eid = self._by_name.get(cand)
                if eid is not None:
                    return self._hit(requested, cand, "alias", self._entries[eid], variant)
            if vendor_hint:
                cands = cands + [f"{vendor_hint}/{c}" for c in name_cands]
        for cand in cands:
            for prefix, fid in self._families:
                if cand.startswith(prefix):
                    return self._hit(requested, cand, "family", self._entries[fid], variant)
        pattern = self._pattern(cands[-1] if not hosted else normalized_candidates(name)[-1])
        if pattern is not None:
            return Resolution(requested, pattern.id, "pattern", pattern, "medium", pattern.source, variant)
        return self._fallback(requested, base, vendor if vendor and not hosted else vendor_hint, variant)

    def _hit(self, requested: str, normalized: str, kind: str, entry: CatalogEntry, variant: str | None) -> Resolution:
        return Resolution(requested, normalized, kind, entry, entry.confidence, entry.source, variant)

    def _pattern(self, key: str) -> CatalogEntry | None:
        name = key.split("/", 1)[-1]
        m = _MOE_PATTERN.search(name)
        if m:
            total, active = float(m.group(1)), float(m.group(2))
            if 0 < active <= total:
                arch = ModelArchitecture("moe", total, total, active, active)
                src = f"parameter counts read from the model id: '{m.group(1)}b-a{m.group(2)}b' = total-active"
                return _synthetic(key, arch, "medium", src)
        m = _EXPERTS_PATTERN.search(name)
        if m:
            n, size = int(m.group(1)), float(m.group(2))
            total = round(_EXPERTS_TOTAL_SHARE * n * size, 1)
            active = round(_EXPERTS_ACTIVE_SHARE * total, 1)
            if n > 1 and active > 0:
                arch = ModelArchitecture("moe", total, total, active, active)
                src = (
                    f"'{n}x{m.group(2)}b' experts × size in the model id; total ≈ 0.8·n·s, active ≈ 0.28·total "
                    "(Mixtral ratios from EcoLogits models.json)"
                )
                return _synthetic(key, arch, "medium", src)
        sizes = _DENSE_PATTERN.findall(name)
        if sizes:
            size = float(sizes[-1])
            if 0 < size <= 2000:
                arch = ModelArchitecture("dense", size, size, size, size)
                return _synthetic(key, arch, "medium", f"dense size read from the model id: '{sizes[-1]}b'")
        return None

    def _fallback(self, requested: str, normalized: str, vendor: str | None, variant: str | None) -> Resolution | None:
        if not vendor or vendor not in self._meta.vendor_fallbacks:
            return None
        target, why = self._meta.vendor_fallbacks[vendor]
        entry = self._meta.classes.get(target) or self._entries[target]
        src = f"estimated: {vendor} fallback ({why}); {entry.source}"
        return Resolution(requested, normalized or vendor, "provider_fallback", entry, "estimated", src, variant)


def _synthetic(key: str, arch: ModelArchitecture, confidence: str, source: str) -> CatalogEntry:
    return CatalogEntry(key, arch, prepare_model(arch), confidence, source)


def _parse_meta(path: Path) -> tuple[dict[str, Any], dict[str, CatalogEntry]]:
    raw = json.loads(path.read_text(encoding="utf-8"))
    classes: dict[str, CatalogEntry] = {}
    for name, c in raw["classes"].items():
        arch = _arch(c["kind"], c["total_b"], c["active_b"], None, None, f"class {name}")
        classes[name] = CatalogEntry(
            f"class/{name}",
            arch,
            prepare_model(arch),
            "low",
            c["source"],
            ("model-arch-not-released",),
            size_class=name,
        )
    return raw, classes


def parse_catalog(csv_path: Path, meta_path: Path) -> tuple[list[CatalogEntry], _Meta]:
    """Parse and validate the catalog files; raises ``ValueError`` naming the bad row."""
    raw_meta, classes = _parse_meta(meta_path)
    rows: dict[str, dict[str, str]] = {}
    with csv_path.open(newline="", encoding="utf-8") as f:
        for lineno, row in enumerate(csv.DictReader(f), start=2):
            mid = row["id"].strip().lower()
            if not mid or "/" not in mid:
                raise ValueError(f"{csv_path.name}:{lineno}: ids are vendor/name")
            if mid in rows:
                raise ValueError(f"{csv_path.name}:{lineno}: duplicate id {mid}")
            if not row["source"].strip():
                raise ValueError(f"{csv_path.name}:{lineno}: {mid} has no source")
            if row["confidence"] not in CONFIDENCE_LEVELS:
                raise ValueError(f"{csv_path.name}:{lineno}: bad confidence {row['confidence']!r}")
            bad = set(_split(row["warnings"])) - KNOWN_WARNINGS
            if bad:
                raise ValueError(f"{csv_path.name}:{lineno}: unknown warnings {sorted(bad)}")
            row["_line"] = str(lineno)
            rows[mid] = row

    built: dict[str, CatalogEntry] = {}

    def build(mid: str, stack: tuple[str, ...] = ()) -> CatalogEntry:
        if mid in built:
            return built[mid]
        if mid in stack:
            raise ValueError(f"same_as cycle through {mid}")
        row = rows.get(mid)
        if row is None:
            raise ValueError(f"same_as target {mid!r} is not in the catalog")
        what = f"{csv_path.name}:{row['_line']} {mid}"
        tps, ttft = _opt_float(row["tps"]), _opt_float(row["ttft_s"])
        same_as = row["same_as"].strip().lower() or None
        size_class = row["class"].strip() or None
        if sum(x is not None for x in (same_as, size_class)) + bool(row["total_b"].strip()) != 1:
            raise ValueError(f"{what}: give exactly one of total_b, same_as, class")
        if same_as is not None:
            base = build(same_as, (*stack, mid)).architecture
            arch = ModelArchitecture(
                base.kind,
                base.total_min_b,
                base.total_max_b,
                base.active_min_b,
                base.active_max_b,
                tps if tps is not None else base.tps,
                ttft if ttft is not None else base.ttft_s,
            )
        elif size_class is not None:
            if size_class not in classes:
                raise ValueError(f"{what}: unknown class {size_class!r}")
            c = classes[size_class].architecture
            arch = ModelArchitecture(c.kind, c.total_min_b, c.total_max_b, c.active_min_b, c.active_max_b, tps, ttft)
        else:
            arch = _arch(row["kind"].strip(), row["total_b"], row["active_b"], tps, ttft, what)
        el = row["ecologits"].strip()
        ecologits: tuple[str, str] | None = None
        if el:
            provider, _, name = el.partition(":")
            if not name:
                raise ValueError(f"{what}: ecologits reference is provider:name")
            ecologits = (provider, name)
        entry = CatalogEntry(
            id=mid,
            architecture=arch,
            profile=prepare_model(arch),
            confidence=row["confidence"],
            source=row["source"].strip(),
            warnings=_split(row["warnings"]),
            aliases=_split(row["aliases"]),
            families=_split(row["families"]),
            ecologits=ecologits,
            same_as=same_as,
            size_class=size_class,
        )
        built[mid] = entry
        return entry

    entries = [build(mid) for mid in rows]
    fallbacks: dict[str, tuple[str, str]] = {}
    for vendor, v in raw_meta["vendors"].items():
        target = v["fallback"]
        if target not in classes and target not in built:
            raise ValueError(f"vendor {vendor}: fallback {target!r} is neither a class nor a model")
        fallbacks[vendor] = (target, v["why"])
    meta = _Meta(
        classes=classes,
        vendor_fallbacks=fallbacks,
        hosts=frozenset(raw_meta["hosts"]),
        raw=raw_meta,
    )
    return entries, meta


def load_catalog_from(csv_path: Path, meta_path: Path) -> ModelCatalog:
    entries, meta = parse_catalog(csv_path, meta_path)
    return ModelCatalog(entries, meta, content_version(csv_path, meta_path))


_lock = threading.Lock()
_cached: ModelCatalog | None = None


def load_catalog() -> ModelCatalog:
    """The shipped model catalog, loaded once per process."""
    global _cached
    if _cached is None:
        with _lock:
            if _cached is None:
                _cached = load_catalog_from(data_path(*MODELS_CSV), data_path(*META_JSON))
    return _cached
