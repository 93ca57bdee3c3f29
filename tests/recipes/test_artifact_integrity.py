"""Trained artifacts carry a SHA-256 per file, checked at load (a truncated or altered file is refused, naming it),
and are encrypted at rest with AES-256-GCM when ``RECSMITH_ENCRYPTION_KEY`` is set."""

from __future__ import annotations

import base64
import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from recsmith.data.interactions import Interactions
from recsmith.data.schema import Schema
from recsmith.datasets.synthetic import synthetic_frame
from recsmith.errors import ArtifactIntegrityError, ArtifactKeyError, ConfigError, NotFoundError, RecsmithError
from recsmith.jobs.training import train_solution_version
from recsmith.recipes import create
from recsmith.recipes.bundle import MAGIC, TrainedModel, artifact_key
from recsmith.serving.campaign import CampaignRuntime
from recsmith.settings import Settings
from recsmith.store.store import Store

KEY = base64.b64encode(bytes(range(32))).decode()
OTHER_KEY = bytes(range(1, 33)).hex()
GROUP = "shop"


@pytest.fixture(scope="module")
def model() -> TrainedModel:
    frame = synthetic_frame(300, 120, 6000, seed=3)
    data = Interactions.from_frame(frame, user="USER_ID", item="ITEM_ID")
    recipe = create("item-knn", neighbors=20).fit(data)
    return TrainedModel.from_fit(recipe, data, {"solution_version": 1, "recipe": "item-knn"})


def _top(model: TrainedModel) -> np.ndarray:
    return model.recipe.recommend(np.arange(5, dtype=np.int32), 10).ids


def _files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_meta_json_holds_a_sha256_of_every_file_and_a_clean_artifact_loads(model: TrainedModel, tmp_path: Path
                                                                          ) -> None:
    path = model.save(tmp_path / "artifact")
    meta = json.loads((path / "meta.json").read_text())
    assert sorted(meta["checksums"]) == [name for name in _files(path) if name != "meta.json"]
    assert "model/arrays/train_data.npy" in meta["checksums"] and meta["encryption"] is None
    assert all(len(digest) == 64 for digest in meta["checksums"].values())
    for mmap in (False, True):
        loaded = TrainedModel.load(path, mmap=mmap)
        assert loaded.meta == model.meta  # the checksums are the file's business, not the model's
        np.testing.assert_array_equal(_top(loaded), _top(model))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["artifact"]  # no temporary folder left


@pytest.mark.parametrize("mmap", [False, True])
def test_a_truncated_array_is_refused_naming_the_file(model: TrainedModel, tmp_path: Path, mmap: bool) -> None:
    path = model.save(tmp_path / "artifact")
    damaged = path / "model" / "arrays" / "train_indices.npy"
    damaged.write_bytes(damaged.read_bytes()[:-40])
    with pytest.raises(ArtifactIntegrityError, match="train_indices.npy does not match the SHA-256") as caught:
        TrainedModel.load(path, mmap=mmap)
    assert isinstance(caught.value, RecsmithError) and str(damaged) in str(caught.value)


def test_an_altered_byte_a_missing_file_and_an_extra_file_are_refused(model: TrainedModel, tmp_path: Path) -> None:
    path = model.save(tmp_path / "artifact")
    pristine = tmp_path / "pristine"
    shutil.copytree(path, pristine)
    popularity = path / "popularity.npy"
    data = bytearray(popularity.read_bytes())
    data[-1] ^= 0xFF  # same size, one value changed
    popularity.write_bytes(bytes(data))
    with pytest.raises(ArtifactIntegrityError, match="popularity.npy does not match"):
        TrainedModel.load(path)

    shutil.rmtree(path)
    shutil.copytree(pristine, path)
    (path / "users.npy").unlink()
    with pytest.raises(ArtifactIntegrityError, match="users.npy is missing"):
        TrainedModel.load(path)

    shutil.rmtree(path)
    shutil.copytree(pristine, path)
    np.save(path / "model" / "arrays" / "state_extra.npy", np.zeros(3))
    with pytest.raises(ArtifactIntegrityError, match="state_extra.npy: a file the artifact's meta.json does not list"):
        TrainedModel.load(path)


def test_an_artifact_written_before_checksums_still_loads_with_a_note(model: TrainedModel, tmp_path: Path,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    path = model.save(tmp_path / "artifact")
    meta = json.loads((path / "meta.json").read_text())
    del meta["checksums"], meta["encryption"]
    (path / "meta.json").write_text(json.dumps(meta))
    with caplog.at_level(logging.INFO, logger="recsmith.recipes.bundle"):
        loaded = TrainedModel.load(path, mmap=True)
    np.testing.assert_array_equal(_top(loaded), _top(model))
    assert "has no checksums" in caplog.text


def test_encrypted_artifacts_hold_no_plaintext_and_load_with_the_key(model: TrainedModel, tmp_path: Path) -> None:
    path = model.save(tmp_path / "artifact", encryption_key=KEY)
    for name in _files(path):
        assert (path / name).read_bytes().startswith(MAGIC), name
    users = (path / "users.npy").read_bytes()
    assert str(model.users.ids[0]).encode() not in users and b"NUMPY" not in users
    assert b"item-knn" not in (path / "meta.json").read_bytes()
    for mmap in (False, True):  # mmap is ignored: the arrays are decrypted into memory
        loaded = TrainedModel.load(path, mmap=mmap, encryption_key=KEY)
        np.testing.assert_array_equal(_top(loaded), _top(model))
        assert not isinstance(loaded.recipe.train_matrix_.data, np.memmap)
        assert list(loaded.users.ids) == list(model.users.ids)
    # the same key written in hex, and as raw bytes, is the same key
    assert artifact_key(bytes(range(32)).hex()) == artifact_key(KEY) == bytes(range(32))
    TrainedModel.load(path, encryption_key=bytes(range(32)))


def test_a_missing_or_wrong_key_is_a_clear_error_naming_the_setting(model: TrainedModel, tmp_path: Path) -> None:
    path = model.save(tmp_path / "artifact", encryption_key=KEY)
    with pytest.raises(ArtifactKeyError, match="is encrypted; set RECSMITH_ENCRYPTION_KEY"):
        TrainedModel.load(path)
    with pytest.raises(ArtifactKeyError, match="RECSMITH_ENCRYPTION_KEY is not the key the artifact was written"):
        TrainedModel.load(path, encryption_key=OTHER_KEY)
    for bad in ("tooshort", "z" * 64, base64.b64encode(os.urandom(16)).decode()):
        with pytest.raises(ConfigError, match="RECSMITH_ENCRYPTION_KEY must be 32 bytes") as caught:
            TrainedModel.load(path, encryption_key=bad)
        assert bad not in str(caught.value)  # the message never echoes the key


def test_encrypted_files_cannot_be_swapped_cut_or_replaced_by_plaintext(model: TrainedModel, tmp_path: Path) -> None:
    path = model.save(tmp_path / "artifact", encryption_key=KEY)
    pristine = tmp_path / "pristine"
    shutil.copytree(path, pristine)
    users, items = (path / "users.npy").read_bytes(), (path / "items.npy").read_bytes()
    (path / "users.npy").write_bytes(items)  # the path is associated data: a moved file does not decrypt
    (path / "items.npy").write_bytes(users)
    with pytest.raises(ArtifactKeyError, match="cannot decrypt .*(users|items).npy"):
        TrainedModel.load(path, encryption_key=KEY)

    shutil.rmtree(path)
    shutil.copytree(pristine, path)
    target = path / "model" / "arrays" / "train_data.npy"
    target.write_bytes(target.read_bytes()[:-100])
    with pytest.raises(RecsmithError, match="train_data.npy"):
        TrainedModel.load(path, encryption_key=KEY)

    shutil.rmtree(path)
    shutil.copytree(pristine, path)
    np.save(path / "popularity.npy", np.ones(len(model.items), dtype=np.float32))
    with pytest.raises(ArtifactIntegrityError, match="popularity.npy is not encrypted"):
        TrainedModel.load(path, encryption_key=KEY)


def test_an_unencrypted_artifact_loads_when_a_key_is_set(model: TrainedModel, tmp_path: Path,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    path = model.save(tmp_path / "artifact")
    with caplog.at_level(logging.WARNING, logger="recsmith.recipes.bundle"):
        loaded = TrainedModel.load(path, encryption_key=KEY)
    np.testing.assert_array_equal(_top(loaded), _top(model))
    assert "is not encrypted" in caplog.text


@pytest.mark.parametrize("key", [None, KEY])
def test_a_campaign_keeps_serving_when_the_next_version_is_damaged(tmp_path: Path, key: str | None) -> None:
    settings = Settings(home=tmp_path / "home", encryption_key=key)
    store = Store.from_settings(settings)
    store.migrate()
    group = store.create_dataset_group(GROUP)
    store.write_interactions(group.id, synthetic_frame(200, 80, 4000, seed=5),
                             schema=Schema.default("interactions").to_dict())
    first = train_solution_version(store, settings, GROUP, "item-knn", with_metrics=False)
    second = train_solution_version(store, settings, GROUP, "item-knn", with_metrics=False)
    if key:
        assert (Path(first["artifact_uri"]) / "meta.json").read_bytes().startswith(MAGIC)
    store.create_campaign(GROUP, "main", first["id"])
    runtime = CampaignRuntime(store, encryption_key=settings.encryption_key)
    runtime.sync()
    user = str(store.read_interactions(group.id)["user_id"][0])
    assert runtime.recommend(GROUP, "main", user_id=user, num_results=5)["items"]

    damaged = Path(second["artifact_uri"]) / "model" / "arrays" / "train_indptr.npy"
    damaged.write_bytes(damaged.read_bytes()[: len(damaged.read_bytes()) // 2])
    store.update_campaign(GROUP, "main", solution_version_id=second["id"])
    runtime.sync()  # the load fails; the campaign goes on with the first version
    assert runtime.get(GROUP, "main").version_id == first["id"]
    assert runtime.recommend(GROUP, "main", user_id=user, num_results=5)["items"]
    errors = [entry["error"] for entry in runtime.status() if "error" in entry]
    assert len(errors) == 1 and "train_indptr.npy" in errors[0]

    if key:  # without the key, the server cannot read its encrypted versions: a clear error, no crash
        keyless = CampaignRuntime(store)
        keyless.sync()
        with pytest.raises(NotFoundError, match="failed to load: .*RECSMITH_ENCRYPTION_KEY"):
            keyless.get(GROUP, "main")
    store.close()


def test_every_file_and_folder_is_fsynced_before_the_rename_and_the_parent_after(
        model: TrainedModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[tuple[str, str]] = []
    real_fsync, real_replace, real_open = os.fsync, os.replace, os.open
    opened: dict[int, str] = {}

    def tracking_open(path, flags, *args, **kwargs):
        fd = real_open(path, flags, *args, **kwargs)
        opened[fd] = str(path)
        return fd

    def tracking_fsync(fd: int) -> None:
        events.append(("fsync", opened.get(fd, "?")))
        real_fsync(fd)

    def tracking_replace(source, target) -> None:
        events.append(("replace", f"{source} -> {target}"))
        real_replace(source, target)

    monkeypatch.setattr(os, "open", tracking_open)
    monkeypatch.setattr(os, "fsync", tracking_fsync)
    monkeypatch.setattr(os, "replace", tracking_replace)
    target = tmp_path / "artifact"
    model.save(target, encryption_key=KEY)
    final = [i for i, (kind, what) in enumerate(events) if kind == "replace" and what.endswith(f"-> {target}")]
    assert len(final) == 1
    before, after = events[:final[0]], events[final[0] + 1:]

    def inside_temp(what: str) -> str | None:  # the path inside the temporary folder, or None
        parts = Path(what).relative_to(tmp_path).parts if what.startswith(f"{tmp_path}/") else ()
        return "/".join(parts[1:]) or "." if parts and parts[0].startswith(".artifact.") else None

    last_write = {inside_temp(what.split(" -> ")[1]): i for i, (kind, what) in enumerate(before) if kind == "replace"}
    synced = {inside_temp(what): i for i, (kind, what) in enumerate(before) if kind == "fsync"}
    for name in [*_files(target), "model", "model/arrays", "."]:  # every file as finally written, every folder
        assert name in synced, name
        assert synced[name] > last_write.get(name, -1), f"{name} was fsynced before its last write"
    assert ("fsync", str(tmp_path)) in after  # the rename itself is on disk


def test_the_cli_trains_encrypted_and_recommends_only_with_the_key(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from recsmith.cli.main import app

    data = tmp_path / "interactions.csv"
    synthetic_frame(200, 80, 4000, seed=7).to_csv(data, index=False)
    monkeypatch.setenv("RECSMITH_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("RECSMITH_DATABASE_URL", raising=False)
    runner = CliRunner()

    def run(*args: str, key: str | None) -> object:
        if key is None:
            monkeypatch.delenv("RECSMITH_ENCRYPTION_KEY", raising=False)
        else:
            monkeypatch.setenv("RECSMITH_ENCRYPTION_KEY", key)
        return runner.invoke(app, list(args))

    assert run("import", "interactions", str(data), "-g", GROUP, key=None).exit_code == 0
    bad = run("train", "-g", GROUP, "--recipe", "item-knn", "--no-metrics", key="not-a-key")
    assert bad.exit_code == 1 and "RECSMITH_ENCRYPTION_KEY must be 32 bytes" in bad.output
    assert "not-a-key" not in bad.output
    trained = run("train", "-g", GROUP, "--recipe", "item-knn", "--no-metrics", "--json", key=KEY)
    assert trained.exit_code == 0, trained.output
    version = json.loads(trained.stdout)
    assert (Path(version["artifact_uri"]) / "users.npy").read_bytes().startswith(MAGIC)
    user = str(synthetic_frame(200, 80, 4000, seed=7)["USER_ID"][0])
    answer = run("recommend", "--solution-version", str(version["id"]), "--user", user, "--json", key=KEY)
    assert answer.exit_code == 0, answer.output
    assert json.loads(answer.stdout)["items"]
    refused = run("recommend", "--solution-version", str(version["id"]), "--user", user, key=None)
    assert refused.exit_code == 1 and "is encrypted; set RECSMITH_ENCRYPTION_KEY" in refused.output
