from pathlib import Path

import pytest

from recsmith.atomic import atomic_folder


def test_replaces_whole_folder_or_nothing(tmp_path: Path) -> None:
    target = tmp_path / "model"
    with atomic_folder(target) as tmp:
        (tmp / "a.txt").write_text("1")
    assert (target / "a.txt").read_text() == "1"
    with pytest.raises(RuntimeError), atomic_folder(target) as tmp:
        (tmp / "a.txt").write_text("2")
        raise RuntimeError("crash half-way")
    assert (target / "a.txt").read_text() == "1"
    with atomic_folder(target) as tmp:
        (tmp / "b.txt").write_text("3")
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no temporary folders left
