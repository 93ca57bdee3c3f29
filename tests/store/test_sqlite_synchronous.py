"""RECSMITH_SQLITE_SYNCHRONOUS sets SQLite's PRAGMA synchronous on every connection of the store (default
normal); a bad value is refused naming the setting."""

from __future__ import annotations

from pathlib import Path

import pydantic
import pytest
import sqlalchemy as sa

from recsmith.errors import ConfigError
from recsmith.settings import Settings
from recsmith.store.store import Store

LEVELS = {"off": 0, "normal": 1, "full": 2, "extra": 3}


def _synchronous(store: Store) -> tuple[int, str]:
    with store.engine.connect() as conn:
        return (conn.execute(sa.text("PRAGMA synchronous")).scalar_one(),
                conn.execute(sa.text("PRAGMA journal_mode")).scalar_one())


@pytest.mark.parametrize(("env", "level"), [(None, 1), ("FULL", 2), ("normal", 1), ("extra", 3), (" off ", 0)])
def test_the_setting_reaches_every_connection(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: str | None,
                                              level: int) -> None:
    if env is not None:
        monkeypatch.setenv("RECSMITH_SQLITE_SYNCHRONOUS", env)
    store = Store.from_settings(Settings(home=tmp_path))
    store.migrate()
    assert _synchronous(store) == (level, "wal")
    store.engine.dispose()  # a new connection gets it too
    assert _synchronous(store) == (level, "wal")
    store.close()


def test_a_bad_value_is_refused_naming_the_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECSMITH_SQLITE_SYNCHRONOUS", "sometimes")
    with pytest.raises(pydantic.ValidationError, match="sqlite_synchronous"):
        Settings(home=tmp_path)
    with pytest.raises(ConfigError, match="RECSMITH_SQLITE_SYNCHRONOUS='sometimes' is not one of off, normal, full"):
        Store(f"sqlite:///{tmp_path / 'x.db'}", sqlite_synchronous="sometimes")
