"""The ``tune`` CLI in-process against the parametrised database (SQLite, and PostgreSQL when its URL is set)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from recsmith.cli.main import app


@pytest.fixture
def cli(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """``cli("tune", "--dataset-group", ...)`` -> the click result; never swallows exceptions."""
    monkeypatch.setenv("RECSMITH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("RECSMITH_DATABASE_URL", db_url)
    runner = CliRunner()

    def run(*args: object):
        return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)

    return run
