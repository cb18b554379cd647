"""AI inference footprint: resolve the model and the site, estimate, store, and read back.

The datasets (model catalog, provider defaults, locations, EcoLogits' electricity mixes) are loaded
into an :class:`Engine` by the composition root before the first request (:func:`build_engine`), and
passed to every function that estimates; a request then costs one dictionary
lookup for the model, one for the site, a closed-form estimate of a few microseconds and one INSERT.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

import orjson

from powermeter.accounts.service import Principal
from powermeter.audit.anchors import anchor_tree
from powermeter.data.ai_providers import (
    ResolvedSite,
    SiteResolver,
    load_ecologits_mixes,
    load_providers,
)
from powermeter.data.locations import load_locations
from powermeter.data.models import ModelCatalog, Resolution, load_catalog
from powermeter.inference import repository as repo
from powermeter.inference.schemas import InferenceBatchItem, InferenceIn
from powermeter.infra.db import Database
from powermeter.infra.db.unit_of_work import Grouped, defer, hot_rows, in_lane
from powermeter.infra.errors import BadRequest, NotFound
from powermeter.infra.security import Signer
from powermeter.methodology.ai_inference import FACTORS as AI_FACTORS
from powermeter.methodology.ai_inference import (
    METHODOLOGY_VERSION,
    REFERENCE_QUERY_OUTPUT_TOKENS,
    TREE_G_CO2_PER_DAY,
    TREE_SOURCE,
    InferenceEstimate,
    ModelProfile,
    SiteFactors,
    estimate_inference,
    observed_ttft_s,
    plausibility,
    tree_days,
    tree_message,
)
from powermeter.methodology.ledger import inference_leaf_hash
from powermeter.methodology.merkle import merkle_root, tree_head_bytes
from powermeter.methodology.occurrence import BOUNDS_TEXT, check_bounds, format_instant, parse_instant
from powermeter.methodology.units import Estimate

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

GROUP_BY = ("model", "provider", "day", "key")  # the per-day rollup has these
RECORD_GROUP_BY = ("tag", "source")  # these are grouped from the records
STREAM_THRESHOLD = 1000  # pages with more rows than this are streamed
_DIGITS = 6


@dataclass(frozen=True, slots=True)
class Engine:
    catalog: ModelCatalog
    sites: SiteResolver
    versions: dict[str, str]


def build_engine() -> Engine:
    """Load the datasets an estimate needs (the composition root does this once per process)."""
    catalog = load_catalog()
    providers = load_providers()
    locations = load_locations()
    mixes = load_ecologits_mixes()
    return Engine(
        catalog=catalog,
        sites=SiteResolver(providers, locations, mixes),
        versions={
            "methodology": METHODOLOGY_VERSION,
            "modelCatalog": catalog.version,
            "providers": providers.version,
            "locations": locations.version,
            "ecologitsElectricityMixes": mixes.version,
        },
    )


# -- POST /v1/inference ----------------------------------------------------------------------------


def _r(x: float) -> float:
    return round(x, _DIGITS)


def _range(e: Estimate) -> dict[str, float]:
    return {"min": _r(e.min if e.min is not None else e.value), "max": _r(e.max if e.max is not None else e.value)}


def resolve_model(engine: Engine, model: str | None, provider_name: str | None) -> Resolution:
    provider = engine.sites.providers.find(provider_name)
    hint = provider.vendor if provider is not None else None
    res = engine.catalog.resolve(model, vendor_hint=hint)
    if res is None:
        if model:
            raise BadRequest(
                f"model {model!r} is not in the model catalog and provider {provider_name!r} has no fallback "
                "model; send a catalog id (GET /v1/inference/models) or a known provider",
                code="UNKNOWN_MODEL",
            )
        raise BadRequest(f"model is required: provider {provider_name!r} has no fallback model", code="MODEL_REQUIRED")
    return res


_plausibility_cache: dict[tuple[str, SiteFactors], dict[str, Any]] = {}


def model_plausibility(model_id: str, profile: ModelProfile, site: SiteFactors) -> dict[str, Any]:
    """The model's estimate for the published reference query (500 output tokens, no prompt) against
    the published per-query figures (memoised per model and site)."""
    key = (model_id, site)
    hit = _plausibility_cache.get(key)
    if hit is None:
        ref = estimate_inference(profile, site, prompt_tokens=0, completion_tokens=REFERENCE_QUERY_OUTPUT_TOKENS)
        p = plausibility(ref.energy_wh)
        hit = {
            **p,
            "reference_query_wh": {k: _r(float(v)) for k, v in dict(p["reference_query_wh"]).items()},  # type: ignore[call-overload]
            "ratio_to_published": _r(float(p["ratio_to_published"])),  # type: ignore[arg-type]
        }
        if len(_plausibility_cache) > 4096:
            _plausibility_cache.clear()
        _plausibility_cache[key] = hit
    return hit


def booked_at(body: InferenceIn, now: datetime) -> datetime:
    """When the request happened: ``startTimeMs`` when given (bounded), else the received time."""
    if body.startTimeMs is None:
        return now
    try:
        moment = datetime.fromtimestamp(body.startTimeMs / 1000.0, tz=UTC)
    except (OverflowError, OSError, ValueError):
        moment = None
    if moment is None or not check_bounds(moment, now):
        raise BadRequest(f"startTimeMs must be {BOUNDS_TEXT} (epoch milliseconds)", code="INVALID_START_TIME")
    return moment


def estimate(engine: Engine, body: InferenceIn) -> tuple[Resolution, ResolvedSite, InferenceEstimate]:
    """The model resolution, the site and the estimate ``record`` stores for ``body`` (nothing stored:
    ``powermeter gateway`` calls it for its X-Energy-Wh header, so the header equals the record)."""
    res = resolve_model(engine, body.model, body.provider)
    site = engine.sites.resolve(body.provider, body.detected_region)
    provider = engine.sites.providers.find(body.provider)
    reasoning_in_completion = provider.reasoning_in_completion if provider is not None else True
    ttft = observed_ttft_s(body.startTimeMs, body.firstTokenTimeMs)
    latency: float | None = None
    if body.endTimeMs is not None and body.startTimeMs is not None and body.endTimeMs >= body.startTimeMs:
        latency = (body.endTimeMs - body.startTimeMs) / 1000.0
    est = estimate_inference(
        res.entry.profile,
        site.factors,
        prompt_tokens=body.prompt_tokens,
        completion_tokens=body.completion_tokens,
        reasoning_tokens=body.reasoning_tokens,
        cached_tokens=body.cached_tokens,
        reasoning_in_completion=reasoning_in_completion,
        observed_ttft_s=ttft,
        request_latency_s=latency,
    )
    return res, site, est


def footprint(engine: Engine, body: InferenceIn) -> tuple[float, float]:
    """(energy_wh, co2_grams) exactly as ``POST /v1/inference`` returns them for ``body``."""
    _res, _site, est = estimate(engine, body)
    return _r(est.energy_wh.value), _r(est.co2_g.value)


def record(
    engine: Engine,
    conn: Connection,
    principal: Principal,
    now: datetime,
    body: InferenceIn,
    signer: Signer | None = None,
    idempotency_key: str | None = None,
) -> dict[str, Any]:
    """Estimate one request, store it with the key that sent it, and return the response body.

    With ``signer`` (the API always passes it) the record is signed and its tree head anchored in the
    account's audit chain (see ``powermeter.methodology.ledger``): inside a group commit as a leaf
    of the batch's tree (:func:`seal_trees`, once per batch, account and month), else as a one-leaf tree."""
    booked = booked_at(body, now)
    res, site, est = estimate(engine, body)
    days = tree_days(est.co2_g.value)
    warnings = list(res.entry.warnings)
    plaus = model_plausibility(res.entry.id, res.entry.profile, site.factors)
    if not plaus["within_bound"]:
        warnings.append("estimate-above-published-per-query-range")
    if res.estimated:
        warnings.append("model-estimated-from-provider-fallback")
    if body.detected_region and site.calculation_method != "EXACT_REGION":
        warnings.append("detected-region-unknown")
    if site.water_world_default:
        warnings.append("offsite-water-world-average")
    record_id = uuid7(now)
    factors = site.factors_dict()
    audit: dict[str, Any] = {
        **site.audit_dict(),
        "treeGramsCo2PerDay": _r(TREE_G_CO2_PER_DAY),
        "treeSource": TREE_SOURCE,
    }
    out = _response(record_id, est, days, audit, res, factors, engine.versions, warnings)
    out["plausibility"] = plaus
    inputs = {
        "detected_region": body.detected_region,
        "startTimeMs": body.startTimeMs,
        "firstTokenTimeMs": body.firstTokenTimeMs,
        "endTimeMs": body.endTimeMs,
        "source": body.source,
        "is_estimated": body.is_estimated,
        "estimation_method": body.estimation_method,
        "tag": body.tag,
        "application": body.application,
    }
    details = {
        # enough to recompute the record: inputs, the model and site used, and the dataset versions
        "inputs": {k: v for k, v in inputs.items() if v is not None},
        "model": {"id": res.entry.id, "match": res.match, "confidence": res.confidence, "variant": res.variant},
        "site": {k: v for k, v in factors.items() if not k.endswith("Source")},
        "ranges": out["ranges"],
        "breakdown": out["breakdown"],
        "tokens": out["tokens"],
        "versions": engine.versions,
        "warnings": warnings,
    }
    signed: SignedRecord | None = None
    if signer is not None:
        fields = {
            "account_id": principal.account_id,
            "application": body.application,
            "calculation_method": site.calculation_method,
            "co2_embodied_grams": out["breakdown"]["co2_embodied_grams"],
            "co2_grams": out["co2_grams"],
            "co2_max_grams": out["ranges"]["co2_grams"]["max"],
            "co2_min_grams": out["ranges"]["co2_grams"]["min"],
            "co2_usage_grams": out["breakdown"]["co2_usage_grams"],
            "energy_wh": out["energy_wh"],
            "final_region": site.final_region[:100],
            "id": record_id,
            "is_estimated": body.is_estimated,
            "model_id": res.entry.id,
            "occurred_at": format_instant(booked),
            "provider": body.provider,
            "received_at": format_instant(now),
            "water_ml": out["water_ml"],
        }
        hot = hot_rows(conn)
        if hot is None and not in_lane(conn):
            signed = sign_fields(signer, fields)
        else:
            # a group commit: the record is a leaf of its batch's tree, signed once just before the COMMIT
            month = f"{booked.year:04d}-{booked.month:02d}"
            leaf = (principal.account_id, record_id, fields["application"], fields["received_at"],
                    fields["occurred_at"], inference_leaf_hash(fields))  # fmt: skip
            if hot is not None:  # SQLite
                hot.seal(("inference_tree", principal.account_id, month), leaf, partial(seal_trees, signer))
            else:  # a PostgreSQL lane: with the account's audit appends, in the batch's lock order
                defer(conn, ("2audit", principal.account_id, month), _Leaf(signer, leaf, month))
    repo.insert_record(
        conn,
        {
            "id": record_id,
            "account_id": principal.account_id,
            "key_id": principal.key_id,
            "key_name": principal.key_name,
            "masked_key": principal.masked_key,
            "log_date": booked,
            "provider": body.provider,
            "model": body.model or "",
            "model_id": res.entry.id,
            "input_tokens": body.prompt_tokens,
            "output_tokens": body.completion_tokens,
            "reasoning_tokens": body.reasoning_tokens,
            "cached_tokens": body.cached_tokens,
            "energy_wh": out["energy_wh"],
            "co2_grams": out["co2_grams"],
            "water_ml": out["water_ml"],
            "tree_days": out["tree_days"],
            "calculation_method": site.calculation_method,
            "final_region": site.final_region[:100],
            "final_provider": site.final_provider[:100],
            "source": body.source,
            "tag": body.tag,
            "idempotency_key": idempotency_key,
        },
        orjson.dumps(details).decode(),
        None if signed is None else signed.row,
    )
    if signed is not None:
        anchor_record(conn, principal.account_id, now, signed)
    return out


def record_batch(
    engine: Engine,
    conn: Connection,
    principal: Principal,
    now: datetime,
    items: list[InferenceBatchItem],
    signer: Signer | None,
) -> dict[str, Any]:
    """``POST /v1/inference/batch``: each record exactly as ``POST /v1/inference`` would store it, at
    most once per idempotency key (a key already stored, or repeated in the batch, is a ``duplicate``
    carrying the stored values). A record the catalog cannot resolve is ``rejected`` with the error
    ``POST /v1/inference`` would give; the others are stored all the same."""
    seen: dict[str, dict[str, Any]] = {
        k: {"id": rid, "energy_wh": e, "co2_grams": c, "water_ml": w}
        for k, rid, e, c, w in repo.find_by_idempotency_keys(
            conn, principal.account_id, sorted({it.idempotency_key for it in items})
        )
    }
    out: list[dict[str, Any]] = []
    counts = {"created": 0, "duplicate": 0, "rejected": 0}
    for i, item in enumerate(items):
        key = item.idempotency_key
        entry: dict[str, Any] = {"index": i, "idempotency_key": key}
        stored = seen.get(key)
        if stored is not None:
            entry |= {"status": "duplicate", **stored}
        else:
            try:
                res = record(engine, conn, principal, now, item, signer, idempotency_key=key)
            except BadRequest as exc:
                entry |= {"status": "rejected", "error_code": exc.code, "detail": exc.detail}
            else:
                stored = {k: res[k] for k in ("id", "energy_wh", "co2_grams", "water_ml")}
                seen[key] = stored
                entry |= {"status": "created", **stored}
        counts[entry["status"]] += 1
        out.append(entry)
    return {
        "status": "success",
        "created": counts["created"],
        "duplicates": counts["duplicate"],
        "rejected": counts["rejected"],
        "data": out,
    }


@dataclass(frozen=True, slots=True)
class SignedRecord:
    """A record's one-leaf tree, signed: its ``inference_signatures`` row and what anchors it."""

    row: dict[str, Any]
    fields: dict[str, Any]
    root_hex: str
    key_id: str
    signature: str


def sign_fields(signer: Signer, fields: dict[str, Any]) -> SignedRecord:
    """Sign one record's ``fields`` as a one-leaf tree (nothing stored)."""
    root = inference_leaf_hash(fields)
    issued_at = fields["received_at"]
    signature = signer.sign_b64(tree_head_bytes(root=root, tree_size=1, issued_at=issued_at, key_id=signer.key_id))
    row = {
        "id": fields["id"],
        "account_id": fields["account_id"],
        "application": fields["application"],
        "received_at": issued_at,
        "leaf_sha256": root.hex(),
        "key_id": signer.key_id,
        "signature": signature,
    }
    return SignedRecord(row, fields, row["leaf_sha256"], signer.key_id, signature)


#: Most leaves in one batch tree (a larger batch is sealed as several trees): bounds the anchoring audit
#: entry, which lists every leaf (~110 bytes each).
TREE_MAX_LEAVES = 1024


class _Leaf(Grouped):
    """A record's leaf left to its PostgreSQL lane's batch: the batch's leaves of one account and month are
    sealed by one :func:`seal_trees` (``Grouped.run_many``)."""

    __slots__ = ("leaf", "signer")

    def __init__(self, signer: Signer, leaf: tuple[Any, ...], month: str) -> None:
        super().__init__((leaf[0], month))
        self.signer, self.leaf = signer, leaf

    def __call__(self, conn: Connection) -> None:
        seal_trees(self.signer, conn, [self.leaf])

    @classmethod
    def run_many(cls, conn: Connection, items: list[Any]) -> None:
        seal_trees(items[0].signer, conn, [it.leaf for it in items])


def seal_trees(signer: Signer, conn: Connection, items: list[Any]) -> None:
    """Sign one group-commit batch's records of one account and month as Merkle trees (at most
    :data:`TREE_MAX_LEAVES` leaves each, in request order), store each record's signature row and anchor
    each tree in the account's audit chain (kind ``inference_tree``: its head, the occurrence range of its
    records, their ids and leaf hashes in leaf order). ``items``: ``(account id, record id, application,
    received_at, occurred_at, leaf hash)``, all of one account. Runs just before the batch's COMMIT, in
    its transaction (SQLite: ``HotRows.seal``; a PostgreSQL lane: deferred with the account's audit appends,
    so the chain head is locked in the batch's global order)."""
    for k in range(0, len(items), TREE_MAX_LEAVES):
        chunk = items[k : k + TREE_MAX_LEAVES]
        account_id = chunk[0][0]
        leaves = [it[5] for it in chunk]
        root = merkle_root(leaves)
        issued_at = max(it[3] for it in chunk)
        size = len(chunk)
        signature = signer.sign_b64(
            tree_head_bytes(root=root, tree_size=size, issued_at=issued_at, key_id=signer.key_id)
        )
        hexes = [h.hex() for h in leaves]
        repo.insert_signatures(
            conn,
            [
                (it[1], account_id, it[2], it[3], h, signer.key_id, signature)
                for it, h in zip(chunk, hexes, strict=True)
            ],
        )
        occurred = [it[4] for it in chunk]
        issued = parse_instant(issued_at)
        anchor_tree(
            conn,
            account_id=account_id,
            now=issued,
            kind="inference_tree",
            tree_id=uuid7(issued),
            root_hex=root.hex(),
            tree_size=size,
            issued_at=issued_at,
            key_id=signer.key_id,
            signature=signature,
            occurred=(min(occurred), max(occurred)),
            ids={"record_ids": [it[1] for it in chunk], "leaf_sha256": hexes},
        )


def anchor_record(conn: Connection, account_id: str, now: datetime, signed: SignedRecord) -> None:
    """Anchor a signed record's tree head in the account's audit chain."""
    fields = signed.fields
    anchor_tree(
        conn,
        account_id=account_id,
        now=now,
        kind="inference_record",
        tree_id=fields["id"],
        root_hex=signed.root_hex,
        tree_size=1,
        issued_at=fields["received_at"],
        key_id=signed.key_id,
        signature=signed.signature,
        occurred=(fields["occurred_at"], fields["occurred_at"]),
        ids={"record_id": fields["id"]},
    )


def sign_record(conn: Connection, account_id: str, signer: Signer, now: datetime, fields: dict[str, Any]) -> None:
    """Sign one record as a one-leaf tree, store the signature and anchor the head in the audit chain."""
    signed = sign_fields(signer, fields)
    repo.insert_signature(conn, **signed.row)
    anchor_record(conn, account_id, now, signed)


def uuid7(now: datetime) -> str:
    """RFC 9562 UUID version 7: 48-bit Unix milliseconds, then 74 random bits (time-ordered ids)."""
    ms = int(now.timestamp() * 1000) & ((1 << 48) - 1)
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms << 80) | (0x7 << 76) | (((rand >> 62) & 0xFFF) << 64) | (0b10 << 62) | (rand & ((1 << 62) - 1))
    h = f"{value:032x}"  # str(uuid.UUID(int=value)), without building the object
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _response(
    record_id: str,
    est: InferenceEstimate,
    days: float,
    audit: dict[str, Any],
    res: Resolution,
    factors: dict[str, Any],
    versions: dict[str, str],
    warnings: list[str],
) -> dict[str, Any]:
    return {
        "energy_wh": _r(est.energy_wh.value),
        "co2_grams": _r(est.co2_g.value),
        "water_ml": _r(est.water_ml.value),
        "tree_days": _r(days),
        "audit": audit,
        "message": tree_message(days),
        "id": record_id,
        "ranges": {
            "energy_wh": _range(est.energy_wh),
            "co2_grams": _range(est.co2_g),
            "water_ml": _range(est.water_ml),
        },
        "breakdown": {
            "prefill_wh": _r(est.prefill_wh.value),
            "decode_wh": _r(est.decode_wh.value),
            "server_wh": _r(est.server_wh.value),
            "co2_usage_grams": _r(est.co2_usage_g.value),
            "co2_embodied_grams": _r(est.co2_embodied_g.value),
            "latency_s": _r(est.latency_s.value),
            "gpus_min": est.gpus[0],
            "gpus_max": est.gpus[1],
        },
        "tokens": {
            "output_counted": est.output_tokens,
            "prompt_uncached": est.uncached_prompt_tokens,
            "prompt_cached": est.cached_prompt_tokens,
        },
        "model": res.as_dict(),
        "factors": factors,
        "methodology": versions,
        "warnings": warnings,
    }


# -- history ---------------------------------------------------------------------------------------


def parse_date(value: str | None, name: str, *, end: bool) -> datetime | None:
    """An ISO date (whole UTC day, inclusive) or datetime; for ``end`` the exclusive upper bound."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        if len(text) == 10:
            d = date.fromisoformat(text)
            start = datetime(d.year, d.month, d.day, tzinfo=UTC)
            return start + timedelta(days=1) if end else start
        dt = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise BadRequest(
            f"{name} must be an ISO 8601 date like 2025-01-31 (or a date-time), got {value!r}",
            code="INVALID_DATE",
        ) from None
    dt = dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
    return dt + timedelta(microseconds=1) if end else dt


def _iso(dt: datetime) -> str:
    if dt.tzinfo is not None:
        dt = dt.astimezone(UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def history_row(r: Any) -> dict[str, Any]:
    return {
        "id": r[0],
        "logDate": _iso(r[1]),
        "keyName": r[2],
        "maskedKey": r[3],
        "provider": r[4],
        "model": r[5],
        "inputTokens": r[6],
        "outputTokens": r[7],
        "energyWh": r[8],
        "co2Grams": r[9],
        "waterMl": r[10],
        "treeDays": r[11],
        "modelId": r[12],
        "calculationMethod": r[13],
        "finalRegion": r[14],
        "source": r[15],
        "tag": r[16],
    }


@dataclass(frozen=True, slots=True)
class HistoryQuery:
    account_id: str
    start: datetime | None
    end_exclusive: datetime | None
    key_name: str | None
    page: int
    limit: int
    source: str | None = None
    tag: str | None = None

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.limit

    def validate(self) -> None:
        if self.start is not None and self.end_exclusive is not None and self.start >= self.end_exclusive:
            raise BadRequest("startDate must not be after endDate", code="INVALID_DATE_RANGE")


def pagination(total: int, q: HistoryQuery) -> dict[str, int]:
    return {
        "totalElements": total,
        "totalPages": math.ceil(total / q.limit) if total else 0,
        "currentPage": q.page,
        "limit": q.limit,
    }


def whole_days(start: datetime | None, end_exclusive: datetime | None) -> tuple[date | None, date | None] | None:
    """The bounds as UTC dates when both are midnights (or absent), else ``None``."""
    out: list[date | None] = []
    for b in (start, end_exclusive):
        if b is None:
            out.append(None)
        elif b.hour == b.minute == b.second == b.microsecond == 0:
            out.append(b.date())
        else:
            return None
    return out[0], out[1]


def count(conn: Connection, q: HistoryQuery) -> int:
    """``totalElements``: from the per-day rollup for whole-day filters, else by counting records."""
    days = whole_days(q.start, q.end_exclusive)
    if days is not None and q.source is None and q.tag is None:  # the rollup keeps neither source nor tag
        return repo.count_history_days(conn, q.account_id, days[0], days[1], q.key_name)
    return repo.count_history(conn, q.account_id, q.start, q.end_exclusive, q.key_name, q.source, q.tag)


def history_page(conn: Connection, q: HistoryQuery, total: int) -> dict[str, Any]:
    rows = (
        repo.history_page(conn, q.account_id, q.start, q.end_exclusive, q.key_name, q.limit, q.offset, q.source, q.tag)
        if q.offset < total
        else []
    )
    return {"status": "success", "data": [history_row(r) for r in rows], "pagination": pagination(total, q)}


def stream_history(db: Database, q: HistoryQuery, total: int) -> Iterator[bytes]:
    """The page as JSON bytes, batch by batch, from its own connection (the request's is closed)."""
    yield b'{"status":"success","data":['
    first = True
    if q.offset < total:
        with db.connect() as conn:
            for batch in repo.iter_history(
                conn,
                q.account_id,
                q.start,
                q.end_exclusive,
                q.key_name,
                q.limit,
                q.offset,
                source=q.source,
                tag=q.tag,
            ):
                chunk = orjson.dumps([history_row(r) for r in batch])[1:-1]
                if not chunk:
                    continue
                yield chunk if first else b"," + chunk
                first = False
    yield b'],"pagination":' + orjson.dumps(pagination(total, q)) + b"}"


def summarize(
    conn: Connection,
    account_id: str,
    start: datetime | None,
    end_exclusive: datetime | None,
    group_by: str,
    source: str | None = None,
    tag: str | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    days = whole_days(start, end_exclusive)
    rows = (
        repo.summary_days(conn, account_id, days[0], days[1], group_by)
        if days is not None and source is None and tag is None and group_by in GROUP_BY
        else repo.summary(conn, account_id, start, end_exclusive, group_by, source, tag)
    )
    groups: list[dict[str, Any]] = []
    totals: dict[str, Any] = {
        "key": "total",
        "requests": 0,
        "inputTokens": 0,
        "outputTokens": 0,
        "energyWh": 0.0,
        "co2Grams": 0.0,
        "waterMl": 0.0,
        "treeDays": 0.0,
    }
    for row in rows:
        k, n, inp, outp, e, c, w, d = tuple(row)
        g: dict[str, Any] = {
            "key": "" if k is None else str(k),  # "" = records without a tag (or source)
            "requests": int(n),
            "inputTokens": int(inp or 0),
            "outputTokens": int(outp or 0),
            "energyWh": _r(float(e or 0)),
            "co2Grams": _r(float(c or 0)),
            "waterMl": _r(float(w or 0)),
            "treeDays": _r(float(d or 0)),
        }
        groups.append(g)
        for f in ("requests", "inputTokens", "outputTokens", "energyWh", "co2Grams", "waterMl", "treeDays"):
            totals[f] += g[f]
    for f in ("energyWh", "co2Grams", "waterMl", "treeDays"):
        totals[f] = _r(totals[f])
    if group_by != "day":
        groups.sort(key=lambda g: (-g["energyWh"], g["key"]))
    return groups, totals


# -- catalog ---------------------------------------------------------------------------------------


def models_listing(engine: Engine) -> dict[str, Any]:
    cat = engine.catalog
    return {
        "version": cat.version,
        "count": len(cat),
        "resolutionOrder": ["exact", "alias", "family", "pattern", "provider_fallback"],
        "models": [e.as_dict() for e in cat.all()],
        "classes": {name: c.as_dict() for name, c in cat.classes.items()},
        "vendorFallbacks": cat.vendor_fallbacks,
        "constants": [{"name": f.name, "value": f.value, "unit": f.unit, "source": f.source} for f in AI_FACTORS],
    }


def model_resolution(engine: Engine, model_id: str, provider: str | None) -> dict[str, Any]:
    p = engine.sites.providers.find(provider)
    res = engine.catalog.resolve(model_id, vendor_hint=p.vendor if p is not None else None)
    if res is None:
        raise NotFound(
            f"model {model_id!r} does not resolve: it is not in the catalog, matches no family or size pattern, "
            "and its vendor has no fallback",
            code="UNKNOWN_MODEL",
        )
    return {"resolution": res.as_dict(), "entry": res.entry.as_dict(), "catalogVersion": engine.catalog.version}
