import html
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from recsmith.errors import ConfigError
from recsmith.evaluation import report
from recsmith.evaluation.analysis import interaction_deciles, report_entry
from recsmith.evaluation.report import render_report, write_report

SEGMENTS = {"light": {"mean": 0.2, "count": 10, "min_history": 1, "max_history": 9},
            "medium": {"mean": 0.3, "count": 11, "min_history": 10, "max_history": 30},
            "heavy": {"mean": 0.4, "count": 9, "min_history": 31, "max_history": 200}}


def result(name: str, ndcg: float, *, fit: float = 1.0, ci: bool = True) -> dict:
    metrics = {"ndcg@10": {"mean": ndcg, "ci_low": ndcg - 0.02, "ci_high": ndcg + 0.02} if ci else ndcg,
               "recall@10": ndcg + 0.1}
    return {
        "recipe": name,
        "metrics": metrics,
        "fit_seconds": fit,
        "curve": {"ndcg": {1: ndcg + 0.1, 5: ndcg + 0.05, 10: ndcg}, "recall": {1: 0.1, 5: 0.2, 10: ndcg + 0.1}},
        "segments": SEGMENTS,
        "segment_metric": "ndcg@10",
        "popularity_deciles": [0.0] * 7 + [0.1, 0.2, 0.7],
        "decile_k": 10,
    }


RESULTS = [result("popularity", 0.2146, fit=0.0004), result("ease", 0.4450, fit=1.75),
           result("item-knn", 0.3787, fit=0.12)]


def leaderboard_rows(text: str) -> list[str]:
    body = text.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return re.findall(r"<tr>(.*?)</tr>", body)


def test_writes_one_self_contained_file_with_table_and_four_plots(tmp_path: Path) -> None:
    target = tmp_path / "out" / "report.html"
    written = write_report(target, RESULTS, title="ML 100K", context={"dataset": "ml-100k", "seed": 42, "k": 10},
                           reference_deciles=[0.1] * 10)
    assert written == target and target.is_file()
    text = target.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    assert text.count("<svg") == 4
    for caption in ("Metric vs k.", "By user segment.", "Popularity bias.", "Fit time vs accuracy."):
        assert caption in text
    # self-contained: no scripts, stylesheets, images, frames or imports from outside the file
    for reference in ("<script", "<link", "<img", "<iframe", "<object", "@import", "src=", "url(http"):
        assert reference not in text.lower()
    assert "<?xml" not in text and "<!DOCTYPE svg" not in text
    # the only URLs left are the SVG namespaces
    assert set(re.findall(r"https?://[^\s\"'<>)]+", text)) <= {"http://www.w3.org/2000/svg",
                                                               "http://www.w3.org/1999/xlink"}
    # images are not fetched either: the page forbids every fetch
    assert "default-src 'none'" in text
    assert "<dt>dataset</dt><dd>ml-100k</dd>" in text and "<dt>seed</dt><dd>42</dd>" in text


def test_leaderboard_sorted_by_primary_metric_with_ci_columns() -> None:
    text = render_report(RESULTS, context={})
    rows = leaderboard_rows(text)
    assert len(rows) == 3
    assert [re.search(r'class="recipe">(.*?)</td>', row).group(1) for row in rows] == ["ease", "item-knn", "popularity"]
    assert "<td>1</td>" in rows[0] and "0.4450" in rows[0] and "[0.4250, 0.4650]" in rows[0]
    assert 'class="primary best">0.4450' in rows[0]  # best value of the column in bold
    assert "ndcg@10 95 % CI" in text
    assert "recall@10 95 % CI" not in text  # recall came without intervals
    assert "<td>1.75</td>" in rows[0] and "<td>0.0004</td>" in rows[2]  # fit seconds


def test_primary_metric_can_be_chosen_and_lower_is_better_sorts_ascending() -> None:
    rows = [{"recipe": "a", "metrics": {"rmse": 0.9, "ndcg@10": 0.1}},
            {"recipe": "b", "metrics": {"rmse": 0.8, "ndcg@10": 0.3}},
            {"recipe": "c", "metrics": {"ndcg@10": 0.2}}]  # no rmse: ranked last
    text = render_report(rows, primary="rmse")
    names = [re.search(r'class="recipe">(.*?)</td>', row).group(1) for row in leaderboard_rows(text)]
    assert names == ["b", "a", "c"]
    assert "lower is better" in text
    by_ndcg = render_report(rows, primary="ndcg@10")
    assert [re.search(r'class="recipe">(.*?)</td>', row).group(1) for row in leaderboard_rows(by_ndcg)] == [
        "b", "c", "a"]


def test_escapes_user_provided_text(tmp_path: Path) -> None:
    nasty = "<b>x</b>"
    rows = [result(nasty, 0.3), result("a$b$ & \\c", 0.2), result("_hidden", 0.1)]
    path = write_report(tmp_path / "r.html", rows, title="<script>alert(1)</script>",
                        context={"dataset": "<i>ml</i>", "<k>": {"nested": "<v>"}})
    text = path.read_text(encoding="utf-8")
    assert nasty not in text and "<script>" not in text and "<i>ml</i>" not in text and "<v>" not in text
    assert html.escape(nasty) in text  # in the table and (escaped by matplotlib) in the plots
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "<dt>&lt;k&gt;</dt>" in text
    # table, two legends, the segment axis and the scatter label each show the names as given: "$" does not
    # start mathtext, and a name starting with "_" (which matplotlib legends skip by default) keeps its entries
    assert text.count(">a$b$ &amp; \\c<") == 5
    assert text.count(">_hidden<") == 5


def test_written_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "report.html"
    target.write_text("old", encoding="utf-8")
    write_report(target, RESULTS[:1])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]  # no temp file left
    assert target.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")

    def failing_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    target.write_text("old", encoding="utf-8")
    monkeypatch.setattr(report.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        write_report(target, RESULTS)
    assert target.read_text(encoding="utf-8") == "old"  # the old report is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]  # and the temp file is gone


def test_missing_optional_pieces_omit_their_plots() -> None:
    bare = [{"recipe": "a", "metrics": {"ndcg@10": 0.1}}, {"recipe": "b", "metrics": {"ndcg@10": 0.2}}]
    text = render_report(bare)
    assert "<svg" not in text and "Plots" not in text and len(leaderboard_rows(text)) == 2
    assert "fit (s)" not in text

    no_segments = [{k: v for k, v in r.items() if k != "segments"} for r in RESULTS]
    text = render_report(no_segments)
    assert text.count("<svg") == 3 and "By user segment." not in text

    partial = [RESULTS[0], {"recipe": "lonely", "metrics": {"ndcg@10": 0.5}}]  # one recipe lacks every piece
    text = render_report(partial)
    assert text.count("<svg") == 4 and "lonely" in text


def test_curve_keys_survive_a_json_round_trip() -> None:
    rows = json.loads(json.dumps(RESULTS))  # int keys become strings
    assert render_report(rows).count("<svg") == 4


def test_output_is_deterministic() -> None:
    assert render_report(RESULTS, context={"seed": 1}) == render_report(RESULTS, context={"seed": 1})


@pytest.mark.parametrize(("rows", "kwargs", "message"), [
    ([], {}, "non-empty list"),
    ({"recipe": "a"}, {}, "non-empty list"),
    ([{"metrics": {"ndcg@10": 0.1}}], {}, "'recipe' name"),
    ([{"recipe": "a", "metrics": {}}], {}, "no result has any metrics"),
    ([{"recipe": "a", "metrics": {"ndcg@10": 0.1}}], {"primary": "map@10"}, "is in no result"),
    ([{"recipe": "a", "metrics": {"ndcg@10": "high"}}], {}, "must be a number"),
    ([{"recipe": "a", "metrics": {"ndcg@10": {"low": 1}}}], {}, "without 'mean'"),
    ([{"recipe": "a", "metrics": {"ndcg@10": 0.1}, "popularity_deciles": [1.0]}], {}, "10 shares"),
    ([{"recipe": "a", "metrics": {"ndcg@10": 0.1}}], {"reference_deciles": [1.0]}, "10 shares"),
])
def test_rejects_malformed_input(rows: object, kwargs: dict, message: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=message):
        write_report(tmp_path / "r.html", rows, **kwargs)
    assert not list(tmp_path.iterdir())


def test_importing_stays_light() -> None:
    code = ("import sys, recsmith.evaluation.report, recsmith.evaluation.analysis; "
            "sys.exit('matplotlib' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_end_to_end_from_a_real_evaluation(tmp_path: Path) -> None:
    from recsmith.evaluation.evaluate import evaluate_recipes
    from recsmith.evaluation.split import split_random
    from recsmith.recipes import create
    from recsmith.testing import synthetic_interactions

    train, test = split_random(synthetic_interactions(n_users=80, n_items=50, seed=3), test_fraction=0.3, seed=0)
    rows = evaluate_recipes({"popularity": create("popularity"), "item-knn": create("item-knn")}, train, test,
                            k=5, metrics=["ndcg@5", "recall@5"], depth=10, details=True)
    results = [report_entry(row, train, test) for row in rows]
    for entry in results:
        assert sum(entry["segments"][s]["count"] for s in entry["segments"]) == len(rows[0]["evaluated"])
        assert sum(entry["popularity_deciles"]) == pytest.approx(1.0)
        assert list(entry["curve"]["ndcg"]) == [1, 2, 3, 5, 10]
    path = write_report(tmp_path / "r.html", results, context={"dataset": "synthetic"},
                        reference_deciles=interaction_deciles(train.matrix))
    text = path.read_text(encoding="utf-8")
    assert text.count("<svg") == 4 and len(leaderboard_rows(text)) == 2
    assert np.isfinite([r["metrics"]["ndcg@5"] for r in results]).all()
