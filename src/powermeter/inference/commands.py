"""``powermeter inference …``: inspect the model catalog and estimate a request offline (no database)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

inference_app = typer.Typer(help="AI inference: the model catalog and offline estimates.", no_args_is_help=True)


@inference_app.command("resolve")
def resolve(
    model_id: Annotated[str, typer.Argument(help="Model id, e.g. groq/llama-3.3-70b-versatile")],
    provider: Annotated[str | None, typer.Option(help="Provider, for ids without a vendor")] = None,
) -> None:
    """How a model id resolves (exact, alias, family, pattern, provider fallback) and its architecture."""
    from powermeter.inference.service import build_engine, model_resolution
    from powermeter.infra.errors import ApiError

    try:
        out = model_resolution(build_engine(), model_id, provider)
    except ApiError as e:
        typer.echo(e.detail, err=True)
        raise typer.Exit(1) from None
    typer.echo(json.dumps(out["resolution"], indent=2))


@inference_app.command("models")
def models(as_json: Annotated[bool, typer.Option("--json", help="Full catalog as JSON")] = False) -> None:
    """List the catalog: id, architecture, confidence."""
    from powermeter.inference.service import build_engine, models_listing

    listing = models_listing(build_engine())
    if as_json:
        typer.echo(json.dumps(listing, indent=2))
        return
    for m in listing["models"]:
        a = m["architecture"]
        typer.echo(
            f"{m['id']:60s} {a['type']:5s} total {a['totalParamsB']!s:28s} active "
            f"{a['activeParamsB']!s:28s} {m['confidence']}"
        )
    typer.echo(f"{listing['count']} models, catalog {listing['version']}")


@inference_app.command("estimate")
def estimate(
    provider: Annotated[str, typer.Option(help="Provider, e.g. OpenAI")],
    model: Annotated[str | None, typer.Option(help="Model id")] = None,
    prompt_tokens: Annotated[int, typer.Option(min=0)] = 0,
    completion_tokens: Annotated[int, typer.Option(min=0)] = 0,
    reasoning_tokens: Annotated[int, typer.Option(min=0)] = 0,
    cached_tokens: Annotated[int, typer.Option(min=0)] = 0,
    region: Annotated[str | None, typer.Option(help="Detected data-centre region")] = None,
) -> None:
    """Estimate one request without storing it (the numbers POST /v1/inference would return)."""
    from powermeter.inference.service import build_engine, resolve_model
    from powermeter.infra.errors import ApiError
    from powermeter.methodology.ai_inference import estimate_inference, tree_days, tree_message

    engine = build_engine()
    try:
        res = resolve_model(engine, model, provider)
    except ApiError as e:
        typer.echo(e.detail, err=True)
        raise typer.Exit(1) from None
    site = engine.sites.resolve(provider, region)
    p = engine.sites.providers.find(provider)
    est = estimate_inference(
        res.entry.profile,
        site.factors,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        reasoning_tokens=reasoning_tokens,
        cached_tokens=cached_tokens,
        reasoning_in_completion=p.reasoning_in_completion if p is not None else True,
    )
    days = tree_days(est.co2_g.value)
    typer.echo(
        json.dumps(
            {
                "model": res.entry.id,
                "match": res.match,
                "energy_wh": est.energy_wh.value,
                "energy_wh_range": [est.energy_wh.min, est.energy_wh.max],
                "co2_grams": est.co2_g.value,
                "water_ml": est.water_ml.value,
                "tree_days": days,
                "audit": site.audit_dict(),
                "message": tree_message(days),
            },
            indent=2,
        )
    )


def register(app: typer.Typer) -> None:
    app.add_typer(inference_app, name="inference")
