"""Usage and receipts answer an htmx swap with a fragment and everything else (a history restore,
a reload, a plain link) with the whole page; caches are told the answer varies."""

from __future__ import annotations

from fastapi.testclient import TestClient

from .helpers import signup


def test_fragments_only_for_htmx_swaps(client: TestClient) -> None:
    signup(client)
    for path in ("/dashboard/usage?granularity=week", "/dashboard/receipts?q=x"):
        swap = client.get(path, headers={"HX-Request": "true"})
        assert 'aria-label="Main"' not in swap.text
        assert not swap.text.startswith("<!doctype")
        restore = client.get(path, headers={"HX-Request": "true", "HX-History-Restore-Request": "true"})
        assert restore.text.startswith("<!doctype html>")
        assert 'aria-label="Main"' in restore.text
        plain = client.get(path)
        assert plain.text.startswith("<!doctype html>")
        for r in (swap, restore, plain):
            assert "HX-Request" in r.headers["vary"]
