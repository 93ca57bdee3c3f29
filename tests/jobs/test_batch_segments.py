"""Batch segment jobs through the CLI: Item-Affinity and Item-Attribute-Affinity lines, bad lines, deleted users."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from recsmith.serving.campaign import load_version
from recsmith.store.store import Store


@pytest.fixture
def als_version(movielens) -> int:
    result = movielens("train", "-g", "ml", "--recipe", "als", "--param", "factors=16", "--param", "epochs=5",
                       "--no-metrics", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["id"]


def test_segments_rank_users_by_the_models_scores(movielens, als_version: int, db_url: str, tmp_path: Path) -> None:
    source = tmp_path / "items.jsonl"
    source.write_text("\n".join([
        '{"itemId": "1"}',
        '{"itemAttributes": "ITEMS.GENRES = \\"Film-Noir\\" OR ITEMS.GENRES = \\"Western\\""}',
        '{"itemAttributes": "ITEMS.GENRES = = \\"Comedy\\""}',
        '{"itemAttributes": "ITEMS.NOPE = \\"x\\""}',
        '{"itemId": "no-such-item"}',
        '{"userId": "1"}',
    ]) + "\n")
    out = tmp_path / "segments.jsonl"
    result = movielens("batch-segment", "create", "-g", "ml", "--solution-version", als_version, "-i", source,
                       "-o", out, "--num-users", 30, "--json")
    assert result.exit_code == 0, result.output
    job = json.loads(result.stdout)
    assert (job["lines_read"], job["lines_written"], job["lines_failed"]) == (6, 2, 4)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    model = load_version(Store(db_url), als_version).model
    users = lines[0]["output"]["usersList"]
    assert len(users) == 30
    rows = model.users.indices(users)
    item = model.items.index("1")
    scores = model.recipe.score(rows, np.full(len(rows), item))
    assert scores.tolist() == pytest.approx(lines[0]["output"]["scores"], rel=1e-5)
    seen = set(model.recipe.train_matrix_[:, item].nonzero()[0].tolist())
    assert not seen & set(rows.tolist())  # users who already interacted are left out
    everyone = model.recipe.score(np.arange(len(model.users)), np.full(len(model.users), item))
    everyone[list(seen)] = -np.inf
    assert scores.min() >= np.sort(everyone)[-30] - 1e-5  # and these are the 30 best of the others
    assert len(lines[1]["output"]["usersList"]) == 30 and lines[1]["error"] is None
    assert "line 3:" in lines[2]["error"] and "at position 15" in lines[2]["error"]
    assert "line 4:" in lines[3]["error"] and "NOPE" in lines[3]["error"]
    assert "line 5: item 'no-such-item'" in lines[4]["error"]
    assert "line 6: unknown field(s) 'userId'" in lines[5]["error"]


def test_deleted_users_are_left_out_of_segments(movielens, als_version: int, tmp_path: Path) -> None:
    source = tmp_path / "items.jsonl"
    source.write_text('{"itemId": "1"}\n')
    first = tmp_path / "first.jsonl"
    assert movielens("batch-segment", "create", "-g", "ml", "--solution-version", als_version, "-i", source, "-o",
                     first, "--num-users", 10).exit_code == 0
    top = json.loads(first.read_text())["output"]["usersList"][0]
    result = movielens("users", "delete", top, "-g", "ml")
    assert result.exit_code == 0, result.output
    second = tmp_path / "second.jsonl"
    assert movielens("batch-segment", "create", "-g", "ml", "--solution-version", als_version, "-i", source, "-o",
                     second, "--num-users", 10).exit_code == 0
    users = json.loads(second.read_text())["output"]["usersList"]
    assert top not in users and len(users) == 10


def test_a_recipe_that_cannot_rank_users_is_refused(movielens, tmp_path: Path) -> None:
    result = movielens("train", "-g", "ml", "--recipe", "popularity", "--no-metrics", "--json")
    version = json.loads(result.stdout)["id"]
    source = tmp_path / "items.jsonl"
    source.write_text('{"itemId": "1"}\n')
    result = movielens("batch-segment", "create", "-g", "ml", "--solution-version", version, "-i", source, "-o",
                       tmp_path / "o.jsonl")
    assert result.exit_code == 1 and "cannot rank users for items" in result.stderr
