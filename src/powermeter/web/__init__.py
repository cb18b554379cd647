"""The dashboard: a server-rendered sub-application mounted at ``/dashboard``.

``powermeter.app`` calls :func:`mount` when it builds the app. Pages are Jinja2 templates with htmx
for in-page updates and Chartist for charts (both vendored in ``static/``, no CDN).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI


def mount(app: FastAPI) -> None:
    """Mount the dashboard (pages at ``/dashboard``, static files at ``/dashboard/static``)."""
    from powermeter.web.site import build

    app.mount("/dashboard", build(app), name="dashboard")
