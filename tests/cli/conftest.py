"""The CLI, run in-process against the parametrised database (SQLite, and PostgreSQL when its URL is set)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from recsmith.cli.main import app


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
