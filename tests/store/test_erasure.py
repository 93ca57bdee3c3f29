"""Erasure of a user, each place it is kept: the store (SQLite and PostgreSQL), its files, Redis, trained
artifacts; and the keyed-hash tombstones."""

from __future__ import annotations

import json
import os
import stat
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from recsmith.datasets.synthetic import synthetic_frame
from recsmith.jobs.erasure import DELETED, purge_models
from recsmith.jobs.training import train_solution_version
from recsmith.recipes.bundle import TrainedModel
from recsmith.serving.campaign import CampaignRuntime
from recsmith.serving.ledger import DatabaseLedger
from recsmith.settings import Settings
from recsmith.store import tables as t
from recsmith.store.live_records import Served
from recsmith.store.store import Store

VICTIM = "victim-4f1c9e"
SESSION = "sess-victim-77ab"
EMAIL = "victim.4f1c9e@example.com"
REDIS_URL = os.environ.get("RECSMITH_TEST_REDIS_URL")


def _event(user: str | None, session: str, item: str, n: int, **extra: object) -> dict:
    return {"event_id": uuid.uuid4().hex, "user_id": user or session, "session_id": session, "item_id": item,
            "timestamp": 1764064800 + n, **extra}


def _victim_and_bystander(store: Store, group_id: int) -> None:
    """The victim browses anonymously (events under the session id, one property holding their email), then
    signs in on that session; a bystander has events of their own, one in a shared session."""
    store.write_events(group_id, [
        _event(None, SESSION, "a", 0, context={"email": EMAIL}),
        _event(None, SESSION, "b", 1),
        _event(VICTIM, SESSION, "c", 2, recommendation_id="rec-victim-1"),
        _event(VICTIM, "sess-victim-other", "d", 3),
        _event("bystander", "sess-bystander", "a", 4),
        _event("bystander", SESSION, "e", 5),  # in a linked session: erased too
    ])
    now = time.time()
    store.write_served([
        Served("rec-victim-1", group_id, "c", VICTIM, ("c", "d"), now),
        Served("rec-session-1", group_id, "c", SESSION, ("a",), now),
        Served("rec-bystander", group_id, "c", "bystander", ("a",), now),
    ])


def _rows(store: Store, table: sa.Table) -> list[dict]:
    with store.engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(sa.select(table))]


def test_deleting_a_user_erases_their_linked_sessions_ledger_rows_and_raw_id(store: Store) -> None:
    group = store.create_dataset_group("g")
    _victim_and_bystander(store, group.id)
    removed = store.delete_user(group.id, VICTIM)
    assert removed.counts() == {"interactions": 5, "records": 0, "sessions": 2, "served": 2}
    assert set(removed.ids) == {VICTIM, SESSION, "sess-victim-other"}
    interactions = _rows(store, t.interactions)
    assert [(r["user_id"], r["session_id"]) for r in interactions] == [("bystander", "sess-bystander")]
    assert not any(EMAIL in (r["context"] or "") for r in interactions)
    assert [r["recommendation_id"] for r in _rows(store, t.served_items)] == ["rec-bystander"]
    tombstones = _rows(store, t.deletions)
    assert len(tombstones) == 2  # a session without anonymous events is in no model: nothing to hide
    assert all(len(r["entity_id"]) == 64 and VICTIM not in r["entity_id"] and SESSION not in r["entity_id"]
               for r in tombstones)
    assert {r["entity_id"] for r in tombstones} == {store.entity_hash(VICTIM), store.entity_hash(SESSION)}
    deleted = store.deletions(group.id, "user")
    assert VICTIM in deleted and SESSION in deleted and "bystander" not in deleted
    assert store.user_history(group.id, SESSION) == [] and store.user_history(group.id, "bystander") == ["a"]


def test_ledger_entries_served_before_a_deletion_and_written_after_it_are_refused(store: Store) -> None:
    group = store.create_dataset_group("g")
    _victim_and_bystander(store, group.id)
    served_before = time.time()
    pending = DatabaseLedger(store)  # another process's ledger, flushing after the deletion
    pending.record(Served("rec-late", group.id, "c", VICTIM, ("x",), served_before))
    pending.record(Served("rec-late-bystander", group.id, "c", "bystander", ("x",), served_before))
    mine = DatabaseLedger(store)
    mine.record(Served("rec-mine", group.id, "c", VICTIM, ("x",), served_before))
    runtime = CampaignRuntime(store, ledger=mine)
    runtime.delete_user("g", group.id, VICTIM)
    assert mine.flush() == 0  # this process's pending entry for them is dropped
    pending.flush()
    assert {r["recommendation_id"] for r in _rows(store, t.served_items)} == {"rec-bystander", "rec-late-bystander"}
    # served again afterwards (a new user with that id): recorded as anyone else
    store.write_served([Served("rec-new", group.id, "c", VICTIM, ("x",), time.time() + 1)])
    assert "rec-new" in {r["recommendation_id"] for r in _rows(store, t.served_items)}


def test_an_item_put_again_lifts_its_hashed_tombstone(store: Store) -> None:
    import pandas as pd

    from recsmith.data.schema import Schema

    group = store.create_dataset_group("g")
    store.delete_item(group.id, "item-1")
    assert [r["entity_id"] for r in _rows(store, t.deletions)] == [store.entity_hash("item-1")]
    store.upsert_entities(group.id, "items", pd.DataFrame({"ITEM_ID": ["item-1"]}),
                          Schema.default("items").to_dict())
    assert _rows(store, t.deletions) == []


def test_the_sqlite_files_hold_no_trace_of_a_deleted_user(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    store.migrate()
    group = store.create_dataset_group("g")
    _victim_and_bystander(store, group.id)
    import pandas as pd

    from recsmith.data.schema import Schema

    store.write_users(group.id, pd.DataFrame({"USER_ID": [VICTIM, "bystander"]}),
                      schema=Schema.default("users").to_dict())

    def files() -> bytes:
        return b"".join(path.read_bytes() for path in tmp_path.iterdir() if path.name.startswith("store.db"))

    assert VICTIM.encode() in files() and EMAIL.encode() in files()  # the check below can fail
    store.delete_user(group.id, VICTIM)
    assert (tmp_path / "store.db-wal").stat().st_size == 0  # checkpointed and truncated
    content = files()
    for trace in (VICTIM, SESSION, EMAIL):
        assert trace.encode() not in content, trace
    assert b"bystander" in content
    store.close()


def test_migration_0007_hashes_the_raw_tombstones_stored_before(store: Store) -> None:
    group = store.create_dataset_group("g")
    store.migrate("0006")  # a store made when tombstones held raw ids
    with store.begin() as conn:
        for kind, entity_id in (("user", VICTIM), ("item", "item-9")):
            conn.execute(t.deletions.insert().values(dataset_group_id=group.id, kind=kind, entity_id=entity_id,
                                                     watermark=3, deleted_at=t.utc_now()))
    store.migrate()
    assert {r["entity_id"] for r in _rows(store, t.deletions)} == {store.entity_hash(VICTIM),
                                                                   store.entity_hash("item-9")}
    assert store.deletions(group.id, "user").get(VICTIM) == 3 and "item-9" in store.deletions(group.id, "item")


def test_the_erasure_key_comes_from_the_setting_or_a_private_file_made_once(tmp_path: Path) -> None:
    assert Settings(home=tmp_path, erasure_key="k" * 16).resolved_erasure_key() == b"k" * 16
    with pytest.raises(ValueError, match="erasure_key"):
        Settings(home=tmp_path, erasure_key="short")
    first = Settings(home=tmp_path / "h").resolved_erasure_key()
    path = tmp_path / "h" / "erasure.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(first) == 64
    assert Settings(home=tmp_path / "h").resolved_erasure_key() == first
    assert Settings(home=tmp_path / "other").resolved_erasure_key() != first
    a = Store(f"sqlite:///{tmp_path / 'a.db'}")
    a.erasure_settings = Settings(home=tmp_path / "h")
    assert a.entity_hash(VICTIM) != Store.entity_hash(_with_key(tmp_path / "other"), VICTIM)
    a.close()


def _with_key(home: Path) -> Store:
    store = Store("sqlite://")
    store.erasure_settings = Settings(home=home)
    return store


# ------------------------------------------------------------------------------------------- Redis
@pytest.mark.redis
@pytest.mark.skipif(not REDIS_URL, reason="RECSMITH_TEST_REDIS_URL unset")
def test_deleting_a_user_leaves_no_redis_key_or_value_naming_them(tmp_path: Path) -> None:
    from recsmith.serving.ledger import RedisLedger
    from recsmith.serving.live import RedisLive, connect_redis

    client = connect_redis(REDIS_URL)
    prefix = f"erase-{uuid.uuid4().hex[:10]}"
    store = Store(f"sqlite:///{tmp_path / 'r.db'}")
    store.migrate()
    try:
        group = store.create_dataset_group("g")
        live, ledger = RedisLive(store, client, prefix=prefix), RedisLedger(client, prefix=prefix)
        for user, session in ((None, SESSION), (VICTIM, SESSION), ("bystander", "sess-bystander")):
            rows = [_event(user, session, "a", 0), _event(user, session, "b", 1)]
            live.events_written(group.id, rows, store.record_events(group.id, rows))
        for rec, user in (("rec-v", VICTIM), ("rec-s", SESSION), ("rec-b", "bystander")):
            ledger.record(Served(rec, group.id, "c", user, ("a",), time.time()))

        def values() -> dict[str, str]:
            out = {}
            for key in client.scan_iter(f"{prefix}:*"):
                kind = client.type(key).decode()
                if kind == "string":
                    value = [client.get(key)]
                elif kind == "list":
                    value = client.lrange(key, 0, -1)
                else:
                    value = client.zrange(key, 0, -1)
                out[key.decode()] = b" ".join(value).decode()
            return out

        before = values()
        assert any(VICTIM in k or VICTIM in v for k, v in before.items())  # the check below can fail
        removed = CampaignRuntime(store, live=live, ledger=ledger).delete_user("g", group.id, VICTIM)
        assert removed["keys"] == 6  # two event lists, two served sets, two per-response keys
        after = values()
        for trace in (VICTIM, SESSION):
            assert not [k for k, v in after.items() if trace in k or trace in v], trace
        assert any("bystander" in k for k in after)
    finally:
        for key in client.scan_iter(f"{prefix}:*"):
            client.delete(key)
        client.close()
        store.close()


# ------------------------------------------------------------------------------- trained artifacts
def _load_synthetic(store: Store, group_id: int) -> None:
    frame = synthetic_frame(n_users=40, n_items=30, n_interactions=1200, seed=3)
    rows = [_event(str(r.USER_ID), f"s-{r.USER_ID}", str(r.ITEM_ID), n) for n, r in enumerate(frame.itertuples())]
    rows += [_event(None, SESSION, "i1", 9000), _event(None, SESSION, "i2", 9001)]
    rows += [_event(VICTIM, SESSION, item, 9002 + n) for n, item in enumerate(["i1", "i3", "i4", "i5"])]
    store.write_events(group_id, rows)


def _traces(folder: Path, ids: tuple[str, ...]) -> list[str]:
    """Files under ``folder`` holding one of ``ids``, in UTF-8 or as numpy stores strings (UTF-32)."""
    found = []
    for path in folder.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for value in ids:
                if value.encode() in data or value.encode("utf-32-le") in data:
                    found.append(f"{path.relative_to(folder)}: {value}")
    return found


def test_purge_models_rewrites_deleted_users_out_of_every_artifact_and_deletes_superseded_ones(
        store: Store, settings: Settings) -> None:
    store.erasure_settings = settings
    group = store.create_dataset_group("g")
    _load_synthetic(store, group.id)
    trained = {recipe: train_solution_version(store, settings, "g", recipe, params, with_metrics=False)
               for recipe, params in (("als", {"factors": 4, "epochs": 2}), ("svd", {"factors": 4, "epochs": 2}),
                                      ("user-knn", {}), ("hybrid", {}), ("item-knn", {}))}
    old_als = trained["als"]
    newer_als = train_solution_version(store, settings, "g", "als", {"factors": 4, "epochs": 2}, with_metrics=False)
    store.create_campaign("g", "c", newer_als["id"])
    artifacts = Path(settings.resolved_artifact_dir())
    assert _traces(artifacts, (VICTIM, SESSION))  # the check below can fail
    store.delete_user(group.id, VICTIM)
    runtime = CampaignRuntime(store)
    runtime.sync()
    loaded = runtime.get("g", "c")
    assert loaded.artifact_uri == newer_als["artifact_uri"] and VICTIM in loaded.model.users
    report = purge_models(store, Settings(home=settings.home, artifact_retention_days=0, artifact_keep_versions=1),
                          "g", now=datetime.now(UTC) + timedelta(seconds=1))
    assert report.deleted == [old_als["id"]]  # superseded: not serving, not the newest of its solution
    assert set(report.rewritten) == {v["id"] for v in trained.values() if v is not old_als} | {newer_als["id"]}
    assert set(report.rewritten.values()) == {2} and report.needs_retraining == []
    assert _traces(artifacts, (VICTIM, SESSION)) == []
    assert store.get_solution_version(old_als["id"])["status"] == DELETED
    assert not Path(old_als["artifact_uri"]).exists()
    users_before = newer_als["num_users"]
    for version_id in report.rewritten:
        version = store.get_solution_version(version_id)
        assert version["artifact_uri"].endswith("-r1") and version["num_users"] == users_before - 2
        model = TrainedModel.load(version["artifact_uri"])
        assert VICTIM not in model.users and len(model.users) == users_before - 2
        served = model.recipe.recommend(np.arange(len(model.users)), 3)  # it still serves every user left
        assert served.ids.shape == (len(model.users), 3)
        assert json.loads((Path(version["artifact_uri"]) / "meta.json").read_text())["erased_users"] == 2
    runtime.sync()  # a running campaign loads the version's rewritten artifact
    assert runtime.get("g", "c").artifact_uri.endswith("-r1") and VICTIM not in runtime.get("g", "c").model.users
    answer = runtime.recommend("g", "c", user_id=VICTIM, num_results=3)
    assert {item["reason"] for item in answer["items"]} == {"popular"}
    # a deleted item: hidden through its hashed tombstone at once
    top = answer["items"][0]["item_id"]
    store.delete_item(group.id, top)
    runtime.catalog_changed("g", group.id)
    assert top not in [item["item_id"] for item in runtime.recommend("g", "c", user_id=VICTIM)["items"]]
    # a second run finds nothing left to do
    again = purge_models(store, settings, "g")
    assert again.rewritten == {} and again.deleted == []


def test_a_recipe_purge_cannot_rewrite_is_marked_as_needing_retraining(store: Store, settings: Settings,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import recsmith.jobs.erasure as erasure

    store.erasure_settings = settings
    group = store.create_dataset_group("g")
    _load_synthetic(store, group.id)
    version = train_solution_version(store, settings, "g", "popularity", with_metrics=False)
    store.delete_user(group.id, VICTIM)
    monkeypatch.setattr(erasure, "BUILTIN", {})  # as if the recipe came from another package
    report = purge_models(store, settings, "g")
    assert report.needs_retraining == [version["id"]] and report.rewritten == {}
    stored = store.get_solution_version(version["id"])
    assert stored["status"] == "ACTIVE" and stored["error"].startswith("needs retraining")
    assert stored["artifact_uri"] == version["artifact_uri"]  # untouched: campaigns keep hiding the user


def test_purge_models_keeps_encrypted_artifacts_encrypted(store: Store, settings: Settings) -> None:
    key = "ab" * 32  # RECSMITH_ENCRYPTION_KEY as 64 hex digits
    encrypted = Settings(home=settings.home, encryption_key=key)
    store.erasure_settings = encrypted
    group = store.create_dataset_group("g")
    _load_synthetic(store, group.id)
    version = train_solution_version(store, encrypted, "g", "als", {"factors": 4, "epochs": 2}, with_metrics=False)
    assert VICTIM in TrainedModel.load(version["artifact_uri"], encryption_key=key).users
    store.delete_user(group.id, VICTIM)
    report = purge_models(store, encrypted, "g")
    assert report.rewritten == {version["id"]: 2}  # the victim and their anonymous session
    rewritten = store.get_solution_version(version["id"])["artifact_uri"]
    assert (Path(rewritten) / "meta.json").read_bytes().startswith(b"RSMAES1\n")  # written encrypted again
    assert VICTIM not in TrainedModel.load(rewritten, encryption_key=key).users
