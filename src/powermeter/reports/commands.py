"""CLI commands of this capability (filled in when the capability lands)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this capability's commands to the ``powermeter`` CLI."""
