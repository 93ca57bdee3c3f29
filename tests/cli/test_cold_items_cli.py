"""``recsmith evaluate --protocol cold-items``: held-out items ranked from their features, clear refusals."""

from __future__ import annotations

import json
from pathlib import Path


def test_cold_items_protocol_from_the_command_line(movielens) -> None:
    result = movielens("evaluate", "-g", "ml", "--protocol", "cold-items", "--fraction", "0.1", "--seed", "42",
                       "--recipes", "feature-popularity,random", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["split"]["protocol"] == "cold-items" and report["split"]["fraction"] == 0.1
    assert report["split"]["cold_items"] > 800 and report["metrics"] == ["ndcg@10", "recall@20"]
    rows = {row["recipe"]: row for row in report["results"]}
    assert rows["feature-popularity"]["ndcg@10"] > rows["random"]["ndcg@10"] > 0
    table = movielens("evaluate", "-g", "ml", "--protocol", "cold_items", "--recipes", "random")
    assert table.exit_code == 0 and "held-out items" in table.stdout, table.output


def test_recipes_that_cannot_rank_new_items_are_refused_before_training(movielens) -> None:
    result = movielens("evaluate", "-g", "ml", "--protocol", "cold-items", "--recipes", "random,item-knn")
    assert result.exit_code == 1, result.output
    assert "item-knn cannot score" in result.stderr and "feature-popularity" in result.stderr
    assert "fit" not in result.stdout


def test_a_group_without_item_metadata_fails_clearly(cli, tmp_path: Path) -> None:
    path = tmp_path / "ratings.csv"
    path.write_text("userId,movieId,rating,timestamp\n" + "".join(
        f"{u},{i},4.0,{1000 + u * 10 + i}\n" for u in range(6) for i in range(8) if (u + i) % 3))
    imported = cli("import", "interactions", path, "-g", "bare", "--map",
                   "userId=USER_ID,movieId=ITEM_ID,rating=EVENT_VALUE,timestamp=TIMESTAMP")
    assert imported.exit_code == 0, imported.output
    result = cli("evaluate", "-g", "bare", "--protocol", "cold-items", "--recipes", "random")
    assert result.exit_code == 1, result.output
    assert "no item metadata" in result.stderr and "recsmith import items" in result.stderr
