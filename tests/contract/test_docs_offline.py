"""/docs loads Swagger UI from this server, not a CDN (issue 14 item 13)."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient


def test_docs_page_and_its_assets_are_served_locally(client: TestClient) -> None:
    r = client.get("/docs")
    assert r.status_code == 200
    urls = re.findall(r'(?:src|href)="([^"]+)"', r.text) + re.findall(r"url: '([^']+)'", r.text)
    assert urls
    assert not [u for u in urls if u.startswith(("http://", "https://", "//"))], urls
    for asset in ("/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css"):
        assert asset in r.text
        got = client.get(asset)
        assert got.status_code == 200
        assert len(got.content) > 10_000
