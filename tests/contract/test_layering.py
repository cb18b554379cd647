"""The import rules of DESIGN.md: methodology is pure; nothing imports the app or the web layer."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "powermeter"
STDLIB = set(sys.stdlib_module_names)
# Pure libraries methodology may use: orjson serialises in memory (no I/O); methodology/canonical.py takes it
# as the fast path of the RFC 8785 encoder, checked byte for byte against the rfc8785 package.
PURE_THIRD_PARTY = {"orjson"}


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
            names += [f"{node.module}.{a.name}" for a in node.names]
    return names


def test_methodology_imports_only_the_standard_library_and_itself() -> None:
    bad = []
    for path in sorted((SRC / "methodology").glob("*.py")):
        for name in _imports(path):
            top = name.split(".")[0]
            if top in STDLIB or top in PURE_THIRD_PARTY or name.startswith(("powermeter.methodology", "__future__")):
                continue
            bad.append(f"{path.name}: {name}")
    assert bad == [], "methodology must stay pure (no I/O, web, db or settings imports): " + ", ".join(bad)


def test_nothing_imports_the_app_or_the_web_layer() -> None:
    bad = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC)
        if rel.parts[0] == "web" or rel.name in {"app.py", "cli.py", "__main__.py"}:
            continue
        for name in _imports(path):
            if name in {"powermeter.app", "powermeter.cli"} or name.startswith("powermeter.web"):
                bad.append(f"{rel}: {name}")
    assert bad == [], "only app.py / cli.py may import the app, the CLI or the web layer: " + ", ".join(bad)


def test_data_imports_no_capability_or_infra_module() -> None:
    bad = []
    for path in sorted((SRC / "data").glob("*.py")):
        for name in _imports(path):
            if name.startswith("powermeter.") and not name.startswith(("powermeter.data", "powermeter.methodology")):
                bad.append(f"{path.name}: {name}")
    assert bad == [], ", ".join(bad)
