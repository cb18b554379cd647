"""The data directory is 0700 and the SQLite files 0600, also when they existed with looser modes
(issue 14 item 9)."""

from __future__ import annotations

import stat
from pathlib import Path

from fastapi.testclient import TestClient

from powermeter.app import create_app
from powermeter.settings import Settings


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_data_dir_and_database_files_are_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    s = Settings(env="test", data_dir=data, log_requests=False)
    app = create_app(s)
    with TestClient(app) as c:
        assert c.get("/healthz").status_code == 200
        db = data / "powermeter.db"
        assert _mode(data) == 0o700
        assert _mode(db) == 0o600
        wal = data / "powermeter.db-wal"
        assert wal.exists()
        assert _mode(wal) == 0o600
        assert _mode(data / "secret_key") == 0o600
    app.state.pm.db.dispose()


def test_loose_modes_of_an_existing_install_are_tightened(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    db = data / "powermeter.db"
    db.touch()
    db.chmod(0o644)
    app = create_app(Settings(env="test", data_dir=data, secret_key="s" * 40, log_requests=False))
    assert _mode(data) == 0o700
    assert _mode(db) == 0o600
    app.state.pm.db.dispose()
