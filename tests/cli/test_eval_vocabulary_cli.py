"""Issue 14's evaluation items through the CLI: either spelling of protocols, recipes and metrics; --folds
checks every recipe before any fold trains; the leaderboard fits 80 columns; the signed difference to the
best recipe; the two recalls named apart."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from recsmith.cli import app as cli_app
from recsmith.cli.main import app


def evaluate_json(movielens, *args: object) -> dict:
    result = movielens("evaluate", "-g", "ml", *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def at_80_columns(monkeypatch: pytest.MonkeyPatch, *args: object):
    """The command as a terminal of 80 columns shows it (rich reads COLUMNS when it has no fixed width)."""
    monkeypatch.setattr(cli_app.out, "_width", None)  # a COLUMNS set when the console was made would pin it
    result = CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "80"}, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def leaderboard(text: str) -> list[str]:
    """The leaderboard's lines: from its title to the line before the notes under it."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if "offline evaluation" in line)
    stop = next(i for i, line in enumerate(lines) if line.startswith("under each mean"))
    return lines[start:stop]


def test_protocol_recipe_and_metric_names_in_either_spelling(movielens, tmp_path: Path) -> None:
    hyphens = evaluate_json(movielens, "--protocol", "leave-last", "--recipes", "popularity,item-knn",
                            "--param", "item-knn.neighbors=20", "--metrics", "ndcg@10,hit-rate@10")
    underscores = evaluate_json(movielens, "--protocol", "leave_last", "--recipes", "popularity,item_knn",
                                "--param", "item_knn.neighbors=20", "--metrics", "ndcg@10,hit_rate@10")
    for report in (hyphens, underscores):
        assert report["split"]["protocol"] == "leave-last"
        assert report["metrics"] == ["ndcg@10", "hit_rate@10"]
        assert [row["recipe"] for row in report["results"]] == ["item-knn", "popularity"]
    assert hyphens["results"][0]["hit_rate@10"] == underscores["results"][0]["hit_rate@10"]  # the same split
    path = tmp_path / "exp.toml"
    path.write_text('protocol = "leave_last"\nmetrics = ["hit-rate@5"]\n[split]\nn = 2\n'
                    '[[recipes]]\nrecipe = "item_knn"\nparams = { neighbors = 20 }\n')
    from_file = evaluate_json(movielens, "--experiment", path)
    assert (from_file["split"]["protocol"], from_file["split"]["n"]) == ("leave-last", 2)
    assert from_file["metrics"] == ["hit_rate@5"] and from_file["results"][0]["recipe"] == "item-knn"
    helped = movielens("evaluate", "--help")
    assert "leave-last" in helped.stdout and "recall_capped" in helped.stdout
    wrong = movielens("evaluate", "-g", "ml", "--protocol", "leave_first")
    assert wrong.exit_code == 1 and "'leave_first'; available: random, leave-last, temporal, users" in wrong.stderr


def test_tune_takes_either_spelling_of_recipe_and_metric(movielens) -> None:
    result = movielens("tune", "-g", "ml", "--recipe", "item_knn", "--metric", "hit-rate@10", "--trials", 1,
                       "--json")
    assert result.exit_code == 0, result.output
    tuned = json.loads(result.stdout)
    assert (tuned["recipe"], tuned["metric"], tuned["study_name"]) == ("item-knn", "hit_rate@10",
                                                                       "ml:item-knn:hit_rate@10")
    assert tuned["solution"]["recipe"] == "item-knn" and 0 < tuned["best_value"] <= 1


def test_folds_check_every_recipe_before_any_fold_trains(movielens, monkeypatch: pytest.MonkeyPatch) -> None:
    from recsmith.recipes import recipe_class

    fitted: list[str] = []
    for name in ("svd", "item-knn"):
        klass = recipe_class(name)
        real = klass._fit
        monkeypatch.setattr(klass, "_fit", lambda self, *a, _real=real, **kw: (fitted.append(self.name),
                                                                              _real(self, *a, **kw))[1])
    mixed = movielens("evaluate", "-g", "ml", "--folds", "5", "--recipes", "svd,item-knn")
    assert mixed.exit_code == 1 and "--folds 5" in mixed.stderr and "item-knn does not" in mixed.stderr
    assert "svd or svdpp" in mixed.stderr and fitted == []
    two = movielens("evaluate", "-g", "ml", "--folds", "3", "--recipes", "ease,item-knn,svd")
    assert two.exit_code == 1 and "ease, item-knn do not" in two.stderr and fitted == []
    # checked before the store is even read: a missing group is not what fails
    one_fold = movielens("evaluate", "-g", "no-such-group", "--folds", "1", "--recipes", "svd")
    assert one_fold.exit_code == 1 and "at least 2" in one_fold.stderr and "no-such-group" not in one_fold.stderr
    ranked = movielens("evaluate", "-g", "no-such-group", "--folds", "3", "--recipes", "svd,user_knn")
    assert ranked.exit_code == 1 and "user-knn does not" in ranked.stderr


def test_quickstart_leaderboard_fits_80_columns(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    text = at_80_columns(monkeypatch, "quickstart")
    table = leaderboard(text)
    assert max(len(line) for line in table) <= 80, "\n".join(table)
    assert "…" not in text
    whole = "\n".join(table)
    for word in ("precision", "recall", "ndcg", "coverage", "@10", "item-knn", "popularity", "vs best"):
        assert word in whole, word
    assert any("popularity" in line and "-0." in line for line in table)  # worse than the best: negative
    assert "recall_capped@k: hits in the top k / min(k" in text


def test_evaluate_leaderboard_fits_80_columns_and_shows_the_signed_difference(
        movielens, monkeypatch: pytest.MonkeyPatch) -> None:
    args = ("evaluate", "-g", "ml", "--recipes", "popularity,item-knn,user-knn", "--metrics",
            "precision@10,recall@10,recall_capped@10,ndcg@10,coverage@10")
    text = at_80_columns(monkeypatch, *args)
    table = leaderboard(text)
    assert max(len(line) for line in table) <= 80 and "…" not in text, "\n".join(table)
    for word in ("recall_capped", "user-knn", "item-knn", "popularity"):
        assert word in "\n".join(table), word
    report = evaluate_json(movielens, *args[3:])
    best, *others = report["results"]
    assert "vs_best" not in best
    assert sum(line.startswith("recipe ") for line in table) == 2  # too wide for one table: the rest in a second
    lines = {row["recipe"]: [line for line in table if line.startswith(row["recipe"] + " ")] for row in [best, *others]}
    assert any(line.rstrip().endswith("—") for line in lines[best["recipe"]])  # the best: no difference
    for row in others:
        difference = row["vs_best"]["mean_difference"]
        assert difference == pytest.approx(row["ndcg@10"] - best["ndcg@10"]) and difference < 0
        assert any(line.rstrip().endswith(f"{difference:+.4f}") for line in lines[row["recipe"]])


def test_the_two_recalls_are_named_apart(movielens, tmp_path: Path) -> None:
    path = tmp_path / "report.html"
    report = evaluate_json(movielens, "--recipes", "item-knn", "--metrics", "recall@10,recall_capped@10,ndcg@10",
                           "--report", path)
    (row,) = report["results"]
    assert report["metrics"] == ["recall@10", "recall_capped@10", "ndcg@10"]
    assert 0 < row["recall@10"] < row["recall_capped@10"] <= 1  # many users hold out more than 10 items
    page = path.read_text()
    assert "<b>recall@k</b>: hits in the top k / all the user&#x27;s held-out items" in page
    assert "<b>recall_capped@k</b>: hits in the top k / min(k, the user&#x27;s held-out items)" in page
    table = movielens("evaluate", "-g", "ml", "--recipes", "popularity", "--metrics", "recall@10")
    assert table.exit_code == 0
    assert "recall@k: hits in the top k / all the user's held-out items" in table.stdout
    assert "recall_capped@k: hits in the top k / min(k, the user's held-out items)" in table.stdout
