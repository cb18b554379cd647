"""The layering of DESIGN.md is held by import-linter contracts (pyproject.toml, run by .ci/run).

These tests run ``lint-imports`` on the real tree (it must pass) and on copies of it with one of the
leaks that the code-health review found put back: each must make ``lint-imports`` fail, naming it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")

pytestmark = pytest.mark.skipif(not Path(LINT).exists(), reason="import-linter is not installed")


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root / "src")}
    return subprocess.run(
        [LINT, str(root / "pyproject.toml"), "--no-cache"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_tree_keeps_every_contract() -> None:
    res = _lint(ROOT)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "BROKEN" not in res.stdout


LEAKS = {
    "infra imports a capability's tables (the old package cycle)": (
        "src/powermeter/infra/idempotency.py",
        "from powermeter.accounts.tables import accounts  # noqa\n",
        "infra knows no capability",
    ),
    "a router calls a repository": (
        "src/powermeter/accounts/router.py",
        "from powermeter.accounts import repository as _repo  # noqa\n",
        "API routers call services",
    ),
    "SQL in a service": (
        "src/powermeter/reports/service.py",
        "import sqlalchemy as _sa  # noqa\n",
        "SQL lives in repository.py",
    ),
    "a router appends to the audit log itself (the receipt view written twice)": (
        "src/powermeter/jobs/router.py",
        "from powermeter.audit import service as _audit  # noqa\n",
        "the audit log hears of other capabilities",
    ),
    "the devices router reaches into cost": (
        "src/powermeter/devices/router.py",
        "from powermeter.cost import service as _cost  # noqa\n",
        "reaches other capabilities only",
    ),
    "a capability imports the composition root": (
        "src/powermeter/jobs/service.py",
        "import powermeter.composition as _root  # noqa\n",
        "capabilities import neither",
    ),
    "methodology reads the database": (
        "src/powermeter/methodology/units.py",
        "import powermeter.infra.db as _db  # noqa\n",
        "methodology is pure",
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("leak", sorted(LEAKS))
def test_a_reintroduced_leak_breaks_a_contract(leak: str, tmp_path: Path) -> None:
    path, line, contract = LEAKS[leak]
    shutil.copytree(ROOT / "src", tmp_path / "src", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / path
    text = target.read_text()
    head, sep, rest = text.partition("from __future__ import annotations\n")
    target.write_text(head + sep + line + rest)
    res = _lint(tmp_path)
    assert res.returncode != 0, res.stdout
    broken = res.stdout.split("Broken contracts", 1)[-1]
    assert contract in broken, res.stdout
