"""recsmith evaluate: protocols, experiment files, intervals and paired tests, errors before any training."""

import json
from pathlib import Path

import pytest


def evaluate_json(movielens, *args) -> dict:
    result = movielens("evaluate", "-g", "ml", *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_leaderboard_has_intervals_and_a_paired_test(movielens) -> None:
    report = evaluate_json(movielens, "--recipes", "popularity,item-knn", "--metrics", "ndcg@10,recall@20,novelty@10")
    assert report["split"]["protocol"] == "random" and report["primary_metric"] == "ndcg@10"
    best, other = report["results"]
    assert best["recipe"] == "item-knn" and other["recipe"] == "popularity"
    for row in (best, other):
        for name in ("ndcg@10", "recall@20"):
            interval = row["ci"][name]
            assert interval["ci_low"] <= row[name] <= interval["ci_high"]
            assert interval["ci_high"] - interval["ci_low"] < 0.1
    assert other["vs_best"]["recipe"] == "item-knn" and other["vs_best"]["p_value"] < 0.001
    assert best["novelty@10"] > other["novelty@10"] > 0  # popularity recommends the least novel items
    assert "vs_best" not in best


@pytest.mark.parametrize(("args", "protocol"), [
    (["--protocol", "leave-last", "--n", "2"], "leave-last"),
    (["--protocol", "leave_last", "--n", "2"], "leave-last"),  # either spelling, one canonical name
    (["--protocol", "temporal", "--fraction", "0.2"], "temporal"),
    (["--protocol", "users", "--test-users", "100", "--input-fraction", "0.8"], "users"),
])
def test_every_protocol_from_the_command_line(movielens, args: list[str], protocol: str) -> None:
    report = evaluate_json(movielens, "--recipes", "popularity,item-knn", "--param", "item-knn.neighbors=50", *args)
    assert report["split"]["protocol"] == protocol
    rows = {row["recipe"]: row for row in report["results"]}
    assert rows["item-knn"]["ndcg@10"] > rows["popularity"]["ndcg@10"] > 0
    if protocol == "users":
        assert report["split"]["evaluated_users"] == 100 and report["split"]["test_users"] == 100


def test_experiment_file(movielens, tmp_path: Path) -> None:
    path = tmp_path / "exp.toml"
    path.write_text('protocol = "random"\nk = 5\nmetrics = ["ndcg", "hit_rate"]\n[split]\ntest_fraction = 0.1\n'
                    '[[recipes]]\nrecipe = "item-knn"\nname = "knn-20"\nparams = { neighbors = 20 }\n'
                    '[[recipes]]\nrecipe = "item-knn"\nname = "knn-200"\n')
    report = evaluate_json(movielens, "--experiment", str(path))
    assert report["metrics"] == ["ndcg@5", "hit_rate@5"] and report["split"]["test_fraction"] == 0.1
    assert {row["recipe"] for row in report["results"]} == {"knn-20", "knn-200"}
    overridden = evaluate_json(movielens, "--experiment", str(path), "--k", "3")
    assert overridden["metrics"] == ["ndcg@3", "hit_rate@3"]


@pytest.mark.parametrize(("args", "expected"), [
    (["--protocol", "sideways"], "sideways"),
    (["--k", "0"], "k must be a positive integer"),
    (["--metrics", "ndcg@10,serendipity@5"], "serendipity"),
    (["--recipes", "item-knn,deep-magic"], "deep-magic"),
    (["--param", "item-knn.neighbours=5"], "neighbours"),
    (["--protocol", "leave_last", "--test-fraction", "0.3"], "no option 'test_fraction'"),
    (["--protocol", "temporal"], "exactly one"),
    (["--protocol", "users", "--test-users", "100000"], "eligible"),
])
def test_bad_input_fails_before_training(movielens, args: list[str], expected: str) -> None:
    result = movielens("evaluate", "-g", "ml", *args)
    assert result.exit_code == 1 and expected in result.stderr, result.output
    assert "fit" not in result.stdout


def test_bad_experiment_files_name_the_problem(movielens, tmp_path: Path) -> None:
    cases = {
        'protocol = "random"\nfolds = 3\n[[recipes]]\nrecipe = "ease"\n': "unknown key 'folds'",
        '[[recipes]]\nrecipe = "ease"\nparams = { regularisation = 1.0 }\n': "regularisation",
        '[[recipes]]\nrecipe = "ease"\nreg = 5\n': "unknown key 'recipes.0.reg'",
        'recipes = [\n': "not valid TOML",
        '[[recipes]]\nrecipe = "ease"\n[[recipes]]\nrecipe = "ease"\n': "appears twice",
    }
    for number, (text, expected) in enumerate(cases.items()):
        path = tmp_path / f"bad{number}.toml"
        path.write_text(text)
        result = movielens("evaluate", "-g", "ml", "--experiment", str(path))
        assert result.exit_code == 1 and expected in result.stderr and str(path.name) in result.stderr, result.output
    both = movielens("evaluate", "-g", "ml", "--experiment", str(path), "--recipes", "ease")
    assert both.exit_code == 1 and "not both" in both.stderr


def test_cross_validation_of_rating_recipes(movielens) -> None:
    result = movielens("evaluate", "-g", "ml", "--folds", "3", "--recipes", "svd", "--param", "svd.epochs=4",
                       "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["protocol"].startswith("kfold n_splits=3")
    (row,) = report["results"]
    assert row["recipe"] == "svd" and len(row["folds"]) == 3
    assert 0.8 < row["rmse"] < 1.0 and row["mae"] < row["rmse"]
    assert sum(fold["test_ratings"] for fold in row["folds"]) == 100_004
    ranking = movielens("evaluate", "-g", "ml", "--folds", "3", "--recipes", "item-knn")
    assert ranking.exit_code == 1 and "svd or svdpp" in ranking.stderr
    mixed = movielens("evaluate", "-g", "ml", "--folds", "3", "--protocol", "users")
    assert mixed.exit_code == 1 and "drop the ranking options" in mixed.stderr


def test_sampled_negatives_are_labelled(movielens) -> None:
    report = evaluate_json(movielens, "--recipes", "popularity,item-knn", "--metrics", "ndcg@10,hit_rate@10",
                           "--sampled-negatives", "100", "--sampling", "popularity")
    rows = {row["recipe"]: row for row in report["results"]}
    for row in rows.values():
        assert row["sampled_protocol"] == "sampled: 100 popularity negatives"
        assert row["sampled_cases"] == report["split"]["test_pairs"]
        assert 0 < row["sampled_hit_rate@10"] <= 1 and 0 < row["sampled_auc"] < 1
    assert rows["item-knn"]["sampled_auc"] > rows["popularity"]["sampled_auc"]
    table = movielens("evaluate", "-g", "ml", "--recipes", "popularity", "--sampled-negatives", "50")
    assert table.exit_code == 0 and "sampled: 50 uniform negatives" in table.stdout
    bad = movielens("evaluate", "-g", "ml", "--sampled-negatives", "50", "--sampling", "zipf")
    assert bad.exit_code == 1 and "zipf" in bad.stderr and "uniform, popularity" in bad.stderr


@pytest.mark.parametrize("protocol", [["--protocol", "random"], ["--protocol", "users", "--test-users", "100"]])
def test_html_report(movielens, tmp_path: Path, protocol: list[str]) -> None:
    path = tmp_path / "report.html"
    report = evaluate_json(movielens, "--recipes", "popularity,item-knn", *protocol, "--report", str(path))
    assert report["report"] == str(path)
    page = path.read_text()
    assert page.count("<svg") == 4 and "item-knn" in page and "popularity" in page
    assert "<script" not in page and "<link" not in page
    missing = movielens("evaluate", "-g", "ml", "--report", str(tmp_path / "no" / "such" / "r.html"))
    assert missing.exit_code == 1 and "does not exist" in missing.stderr


def test_the_report_leaves_the_metrics_as_they_are(movielens, tmp_path: Path) -> None:
    """The report ranks deeper (metric vs k); ties among equal scores still come out in item order, so the
    same command gives the same metrics with and without it."""
    args = ("--recipes", "popularity,item-knn", "--seed", "42")
    plain = evaluate_json(movielens, *args)
    reported = evaluate_json(movielens, *args, "--report", str(tmp_path / "report.html"))
    assert (tmp_path / "report.html").stat().st_size > 0
    assert [row["recipe"] for row in plain["results"]] == [row["recipe"] for row in reported["results"]]
    for a, b in zip(plain["results"], reported["results"], strict=True):
        assert {key: value for key, value in a.items() if "@" in key} == \
            {key: value for key, value in b.items() if "@" in key}
