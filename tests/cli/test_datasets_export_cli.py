"""`recsmith datasets export`: the bundled files, with their licence, copied for a user to try imports on."""

from pathlib import Path

from typer.testing import CliRunner

from recsmith.cli.main import app


def test_export_copies_the_bundled_files_with_the_licence(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["datasets", "export", "ml-latest-small", str(tmp_path / "ml")])
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in (tmp_path / "ml").iterdir())
    assert {"README.txt", "movies.csv", "ratings.csv"} <= set(names)
    assert (tmp_path / "ml" / "ratings.csv").read_text().startswith("userId,movieId,rating,timestamp")
    assert str(tmp_path / "ml" / "ratings.csv") in result.output


def test_export_refuses_a_dataset_that_is_not_bundled(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["datasets", "export", "ml-100k", str(tmp_path / "x")])
    assert result.exit_code != 0
    assert "not shipped" in result.output and "ml-latest-small" in result.output
    assert not (tmp_path / "x").exists()
