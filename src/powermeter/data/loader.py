"""Helpers shared by the reference-dataset loaders.

Every dataset is a file in this package; its version is a content hash, so a receipt that names
the version names exactly the bytes it was computed from.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path

DATA_ROOT = Path(str(resources.files("powermeter.data")))


def data_path(*parts: str) -> Path:
    """Path of a file shipped in ``powermeter/data``."""
    return DATA_ROOT.joinpath(*parts)


def content_version(*paths: Path) -> str:
    """``sha256:<12 hex>`` over the bytes of the given files, in order."""
    h = hashlib.sha256()
    for p in paths:
        h.update(p.read_bytes())
    return "sha256:" + h.hexdigest()[:12]
