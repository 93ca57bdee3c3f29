"""Sequential recipes from the command line: train (metrics on leave-last), evaluate leave-last with sampled
negatives, tune, recommend, and a campaign, on a log where what comes next depends on the order."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytestmark = pytest.mark.torch

N_ITEMS = 150
FAST = ("-p", "epochs=12", "-p", "factors=16", "-p", "max_len=10", "-p", "batch_size=64", "-p", "patience=0",
        "-p", "lr=0.01", "-p", "dropout=0.1")


@pytest.fixture
def walks(cli, tmp_path: Path):
    """Users walking a cycle of items (after item i comes item i + 1), imported into group 'walks'."""
    rng = np.random.default_rng(0)
    lines = ["USER_ID,ITEM_ID,TIMESTAMP"]
    for u in range(300):
        start = int(rng.integers(N_ITEMS))
        lines += [f"u{u},i{(start + t) % N_ITEMS},{1_700_000_000 + 1000 * u + 60 * t}" for t in range(8)]
    path = tmp_path / "walks.csv"
    path.write_text("\n".join(lines) + "\n")
    result = cli("import", "interactions", path, "-g", "walks")
    assert result.exit_code == 0, result.output
    return cli


def test_train_evaluate_and_recommend_a_sequential_recipe(walks) -> None:
    trained = walks("train", "-g", "walks", "--recipe", "sasrec", *FAST, "--json")
    assert trained.exit_code == 0, trained.output
    version = json.loads(trained.stdout)
    assert version["metrics"]["protocol"] == "leave-last n=1"  # what a sequential recipe predicts
    assert version["metrics"]["ndcg@10"] > 0.5, version["metrics"]

    sasrec_params = [f"sasrec.{arg}" if arg != "-p" else arg for arg in FAST]
    result = walks("evaluate", "-g", "walks", "--protocol", "leave_last", "--recipes", "sasrec,item-knn",
                   *sasrec_params, "--sampled-negatives", 100, "--metrics", "ndcg@10,hit_rate@10", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    rows = {row["recipe"]: row for row in report["results"]}
    assert report["split"]["protocol"] == "leave-last"
    assert rows["sasrec"]["ndcg@10"] > rows["item-knn"]["ndcg@10"] + 0.1
    assert rows["sasrec"]["sampled_hit_rate@10"] > 0.9 and "sampled_protocol" in rows["sasrec"]

    # u0 walked i{s}..i{s+7}: the next stop is i{s+8}
    recs = json.loads(walks("recommend", "--solution-version", version["id"], "--user", "u0", "--num", "3",
                            "--json").stdout)["items"]
    start = int(np.random.default_rng(0).integers(N_ITEMS))
    assert recs[0]["item_id"] == f"i{(start + 8) % N_ITEMS}", recs
    assert recs[0]["reason"] == "personalized"

    created = walks("campaign", "create", "next", "-g", "walks", "--solution-version", version["id"])
    assert created.exit_code == 0, created.output


def test_tune_a_sequential_recipe_on_leave_last(walks) -> None:
    result = walks("tune", "-g", "walks", "--recipe", "sasrec", "--trials", 2, "-p", "epochs=2", "-p", "factors=16",
                   "-p", "max_len=10", "--json")
    assert result.exit_code == 0, result.output
    study = json.loads(result.stdout)
    assert study["trials_run"] == 2 and study["completed"] >= 1 and 0 <= study["best_value"] <= 1
    assert study["holdout"]["protocol"] == "leave-last"


@pytest.mark.parametrize(("recipe", "params"), [
    ("session-knn", ()),
    ("gru4rec", ("-p", "epochs=8", "-p", "factors=32", "-p", "batch_size=32", "-p", "lr=0.01", "-p", "patience=0")),
])
def test_the_other_sequential_recipes_train_and_recommend(walks, recipe: str, params: tuple[str, ...]) -> None:
    trained = walks("train", "-g", "walks", "--recipe", recipe, *params, "--json")
    assert trained.exit_code == 0, trained.output
    version = json.loads(trained.stdout)
    assert version["metrics"]["protocol"] == "leave-last n=1"
    recs = json.loads(walks("recommend", "--solution-version", version["id"], "--user", "u0", "--num", "5",
                            "--json").stdout)["items"]
    start = int(np.random.default_rng(0).integers(N_ITEMS))
    walked = {f"i{(start + t) % N_ITEMS}" for t in range(8)}
    assert len(recs) == 5 and not walked & {item["item_id"] for item in recs}
    assert f"i{(start + 8) % N_ITEMS}" in [item["item_id"] for item in recs[:3]], recs
