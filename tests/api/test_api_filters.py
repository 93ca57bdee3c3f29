"""Stored filters over HTTP and the CLI."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from recsmith.cli.main import app
from recsmith.client import BadRequest, NotFound


def test_filter_crud_over_http(server):
    with server.client() as client:
        created = client.create_filter("movies", "cheap", "INCLUDE ItemID WHERE Items.GENRES IN ($G) | "
                                                          'EXCLUDE ItemID WHERE Items.GENRES IN ("Horror")')
        assert created["parameters"] == ["G"]
        assert client.get_filter("movies", "cheap")["expression"].startswith("INCLUDE")
        assert "cheap" in {f["name"] for f in client.list_filters("movies")}
        result = client.recommend("movies", "knn", user_id="1", num_results=5, filter="cheap",
                                  filter_values={"G": ["Comedy", "Horror"]})
        assert len(result.items) == 5
        with pytest.raises(BadRequest, match="already has a filter"):
            client.create_filter("movies", "cheap", 'EXCLUDE ItemID WHERE Items.GENRES IN ("Drama")')
        client.delete_filter("movies", "cheap")
        with pytest.raises(NotFound):
            client.get_filter("movies", "cheap")


def test_malformed_expression_is_refused_with_the_position(server):
    with server.client() as client, pytest.raises(BadRequest) as excinfo:
        client.create_filter("movies", "broken", "INCLUDE ItemID WHERE Items.GENRES IN (")
    assert excinfo.value.status == 400
    assert "position" in excinfo.value.message and "expected" in excinfo.value.message


def test_filter_cli(server):
    runner = CliRunner()
    env = {"RECSMITH_HOME": str(server.home)}
    created = runner.invoke(app, ["filter", "create", "-g", "movies", "--name", "cli-filter", "--expression",
                                  'EXCLUDE ItemID WHERE Items.GENRES IN ("Drama")'], env=env)
    assert created.exit_code == 0, created.output
    listed = runner.invoke(app, ["filter", "list", "-g", "movies", "--json"], env=env)
    assert "cli-filter" in listed.output
    broken = runner.invoke(app, ["filter", "create", "-g", "movies", "--name", "x", "--expression",
                                 "INCLUDE ItemID WHERE"], env=env)
    assert broken.exit_code == 1 and "position" in broken.output
    assert runner.invoke(app, ["filter", "delete", "cli-filter", "-g", "movies"], env=env).exit_code == 0
    assert "cli-filter" not in runner.invoke(app, ["filter", "list", "-g", "movies", "--json"], env=env).output
