"""``powermeter receipts …``: verify a saved receipt offline; print the receipts public key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

receipts_app = typer.Typer(help="Signed carbon receipts: verify offline, show the public key.", no_args_is_help=True)


def _server_public_key() -> str | None:
    """This server's public key, when the CLI runs with the server's settings (secret key)."""
    try:
        from powermeter.infra.security import Signer
        from powermeter.settings import Settings

        settings = Settings()
        if not settings.secret_key and not (settings.data_dir / "secret_key").exists():
            return None  # never invent a key: that would only produce a confusing mismatch
        return Signer(settings.resolved_secret()).public_key_pem()
    except Exception:  # no usable settings: the caller must pass --public-key
        return None


@receipts_app.command("verify")
def verify(
    file: Annotated[Path, typer.Argument(help="A receipt saved as JSON (GET /v1/receipts/{id} or .../download).")],
    public_key: Annotated[
        Path | None,
        typer.Option(
            "--public-key",
            help="PEM file of the signing key (GET /v1/receipts/public-key). "
            "Default: this server's key, from POWERMETER_SECRET_KEY.",
        ),
    ] = None,
) -> None:
    """Check a receipt offline: its RFC 8785 bytes, the Merkle audit path to the root, and the Ed25519
    signature of the tree head. Exit 0 if valid; 1 with the reason if not; 2 if it cannot be checked."""
    from powermeter.jobs.receipts import verify_document

    try:
        doc = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        typer.echo(f"error: cannot read {file}: {exc}", err=True)
        raise typer.Exit(2) from None
    if public_key is not None:
        try:
            pem = public_key.read_text(encoding="utf-8")
        except OSError as exc:
            typer.echo(f"error: cannot read {public_key}: {exc}", err=True)
            raise typer.Exit(2) from None
        pem = _pem_from(pem)
    else:
        found = _server_public_key()
        if found is None:
            typer.echo("error: no public key: pass --public-key PEM (from GET /v1/receipts/public-key)", err=True)
            raise typer.Exit(2)
        pem = found
    if not isinstance(doc, dict):
        typer.echo("INVALID: the file is not a JSON object", err=True)
        raise typer.Exit(1)
    result = verify_document(doc, pem)
    label = result.receipt_id or str(file)
    if result.ok:
        typer.echo(f"VALID   {label}: {result.reason}")
        return
    typer.echo(f"INVALID {label}: {result.reason}", err=True)
    raise typer.Exit(1)


def _pem_from(text: str) -> str:
    """Accept a bare PEM file or the saved JSON of GET /v1/receipts/public-key."""
    stripped = text.strip()
    if stripped.startswith("{"):
        obj = json.loads(stripped)
        data = obj.get("data", obj)
        return str(data["public_key_pem"])
    return text


@receipts_app.command("public-key")
def show_public_key() -> None:
    """Print this server's receipt-signing public key (PEM), from POWERMETER_SECRET_KEY."""
    pem = _server_public_key()
    if pem is None:
        typer.echo("error: POWERMETER_SECRET_KEY is not configured", err=True)
        raise typer.Exit(2)
    typer.echo(pem, nl=False)


@receipts_app.command("check")
def check(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object per altered receipt.")] = False,
    workers: Annotated[
        int,
        typer.Option(
            help="Processes to check with (each reads the whole receipts table: helps on a busy multi-core host).",
            min=1,
            max=64,
        ),
    ] = 1,
) -> None:
    """Verify every stored receipt against its signed Merkle tree; name the altered ones (exit 1).

    Each receipt row is rebuilt into its signed bytes and compared with its tree's leaf hash; each
    tree's leaf hashes must give its root and the root must carry this server's signature. Rows
    missing from a tree and rows pointing at no tree are reported too. Exit 0: all intact."""
    import time

    from powermeter.infra.bootstrap import open_database
    from powermeter.infra.security import Signer
    from powermeter.infra.validation import escape_control
    from powermeter.jobs.integrity import check_all, check_parallel

    settings, db = open_database()
    signer = Signer(settings.resolved_secret())
    started = time.perf_counter()

    def progress(done: int, total: int) -> None:
        typer.echo(f"  {done:,} / {total:,} receipts checked", err=True)

    if workers > 1:
        db.dispose()
        result = check_parallel(settings.resolved_database_url, settings.resolved_secret(), workers)
    else:
        result = check_all(db.connect, signer.public_key, signer.key_id, progress)
    elapsed = time.perf_counter() - started
    db.dispose()
    for f in result.failures:
        if as_json:
            typer.echo(
                json.dumps(
                    {
                        "receipt_id": f.receipt_id,
                        "job_id": f.job_id,
                        "account_id": f.account_id,
                        "tree_id": f.tree_id,
                        "reason": f.reason,
                    }
                )
            )
        else:
            typer.echo(
                f"ALTERED {escape_control(f.receipt_id)}  job {escape_control(f.job_id)}  "
                f"account {f.account_id}  tree {f.tree_id}: {f.reason}"
            )
    summary = (
        f"{result.receipts:,} receipts in {result.trees:,} signed trees checked in {elapsed:.1f} s: "
        f"{len(result.failures):,} altered"
    )
    typer.echo(summary, err=True)
    if result.failures:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``powermeter receipts …`` to the CLI."""
    app.add_typer(receipts_app, name="receipts")
