"""Shared fixtures: datasets folder, settings, and a store on SQLite and (when configured) PostgreSQL."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from recsmith.cli.main import app
from recsmith.settings import Settings
from recsmith.store.store import Store
from recsmith.store.tables import VERSION_TABLE, metadata
from recsmith.testing import datasets_dir as _datasets_dir

POSTGRES_URL = os.environ.get("RECSMITH_TEST_POSTGRES_URL")
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip ``slow`` tests unless RECSMITH_RUN_SLOW=1."""
    if os.environ.get("RECSMITH_RUN_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow; set RECSMITH_RUN_SLOW=1 to run")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def datasets_dir() -> Path:
    return _datasets_dir()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home")


@pytest.fixture(scope="session")
def postgres_ready() -> str:
    """A migrated PostgreSQL database, wiped once per session (tests skip when it is not configured)."""
    if not POSTGRES_URL:
        pytest.skip("RECSMITH_TEST_POSTGRES_URL is not set")
    engine = sa.create_engine(POSTGRES_URL)
    with engine.begin() as conn:
        for name in sa.inspect(conn).get_table_names():  # the store's, its revision, and other tools' (Optuna's)
            conn.exec_driver_sql(f'DROP TABLE IF EXISTS "{name}" CASCADE')
    engine.dispose()
    store = Store(POSTGRES_URL)
    store.migrate()
    store.close()
    return POSTGRES_URL


def _wipe_postgres(url: str) -> None:
    engine = sa.create_engine(url)
    names = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
        for name in set(sa.inspect(conn).get_table_names()) - set(metadata.tables) - {VERSION_TABLE}:
            conn.exec_driver_sql(f'DROP TABLE IF EXISTS "{name}" CASCADE')  # Optuna's studies from a tune test
    engine.dispose()


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database URL: a new SQLite file, or the wiped PostgreSQL test database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    url = request.getfixturevalue("postgres_ready")
    _wipe_postgres(url)
    return url


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    """A migrated, empty store on each backend."""
    instance = Store(db_url)
    instance.migrate()
    yield instance
    instance.close()


# ---------------------------------------------------------------- the CLI, in-process (tests/cli, tests/tuning)
@pytest.fixture
def cli(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """``cli("import", "interactions", path, ...)`` -> the click result; never swallows exceptions."""
    monkeypatch.setenv("RECSMITH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("RECSMITH_DATABASE_URL", db_url)
    runner = CliRunner()

    def run(*args: object):
        return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)

    return run


@pytest.fixture
def movielens(cli):
    """The bundled ml-latest-small loaded into dataset group 'ml'."""
    result = cli("datasets", "load", "ml-latest-small", "--dataset-group", "ml", "--json")
    assert result.exit_code == 0, result.output
    reports = json.loads(result.stdout)
    assert [(r["dataset_type"], r["rows_loaded"]) for r in reports] == [("interactions", 100_004), ("items", 9_125)]
    return cli
