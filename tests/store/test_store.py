"""The store on SQLite and PostgreSQL: migrations, CRUD, bulk loads, atomicity."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from recsmith.data.schema import Schema
from recsmith.errors import ConfigError, DataError, NotFoundError
from recsmith.store.store import Store
from recsmith.store.tables import VERSION_TABLE, metadata

SCHEMA = Schema.default("interactions").to_dict()


def frame(n: int = 3, offset: int = 0) -> pd.DataFrame:
    return pd.DataFrame({
        "USER_ID": [f"u{i % 2}" for i in range(offset, offset + n)],
        "ITEM_ID": [f"i{i}" for i in range(offset, offset + n)],
        "TIMESTAMP": np.arange(offset, offset + n, dtype=np.int64) + 1000,
        "EVENT_TYPE": ["click", None, "buy"][:n] + ["click"] * max(0, n - 3),
        "EVENT_VALUE": [1.5, np.nan, 3.0][:n] + [1.0] * max(0, n - 3),
    })


def ours(name: str | None, type_: str, parent: dict) -> bool:
    """The store's own tables (Optuna may keep studies in the same database)."""
    return type_ != "table" or name in metadata.tables


def test_migrations_are_idempotent_and_match_the_tables(store: Store) -> None:
    store.migrate()
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"include_name": ours}), metadata)
        assert set(sa.inspect(conn).get_table_names()) >= {VERSION_TABLE, *metadata.tables}
    assert diff == []


def test_a_store_made_with_the_default_version_table_is_adopted(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    store = Store(url)
    store.migrate()
    store.create_dataset_group("kept")
    with store.engine.begin() as conn:  # as stores made before VERSION_TABLE kept their revision
        revision = conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar_one()
        conn.execute(sa.text(f"ALTER TABLE {VERSION_TABLE} RENAME TO alembic_version"))
        conn.execute(sa.text("INSERT INTO alembic_version VALUES ('optunas-own')"))
    store.migrate()  # would fail with "table already exists" if the revision were not adopted
    assert store.get_dataset_group("kept").name == "kept"
    with store.engine.connect() as conn:
        assert conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar_one() == revision
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all() == ["optunas-own"]
    store.close()


def test_dataset_groups(store: Store) -> None:
    group = store.create_dataset_group("shop-1")
    assert store.get_dataset_group("shop-1") == group
    assert store.get_or_create_dataset_group("shop-1") == group
    with pytest.raises(ConfigError, match="already exists"):
        store.create_dataset_group("shop-1")
    with pytest.raises(ConfigError, match="invalid dataset group name"):
        store.create_dataset_group("no spaces")
    with pytest.raises(NotFoundError, match="shop-1"):  # lists the existing ones
        store.get_dataset_group("shop-2")
    store.delete_dataset_group("shop-1")
    assert store.list_dataset_groups() == []


def test_interactions_round_trip_with_nulls_and_context(store: Store) -> None:
    group = store.create_dataset_group("g")
    data = frame()
    data["DEVICE"] = ["ios", None, "web"]
    assert store.write_interactions(group.id, data, schema=SCHEMA) == 3
    columns = store.read_interactions(group.id)
    assert columns["user_id"].tolist() == ["u0", "u1", "u0"]
    assert columns["timestamp"].dtype == np.int64 and columns["timestamp"].tolist() == [1000, 1001, 1002]
    assert columns["event_type"].tolist() == ["click", None, "buy"]
    assert columns["event_value"][0] == 1.5 and np.isnan(columns["event_value"][1])
    assert store.user_history(group.id, "u0") == ["i0", "i2"]
    with store.engine.connect() as conn:
        contexts = [r[0] for r in conn.exec_driver_sql("SELECT context FROM interactions ORDER BY id")]
    assert contexts == ['{"DEVICE": "ios"}', None, '{"DEVICE": "web"}']
    assert store.get_dataset(group.id, "interactions").schema == SCHEMA


def test_full_replaces_incremental_appends(store: Store) -> None:
    group = store.create_dataset_group("g")
    store.write_interactions(group.id, frame(3), schema=SCHEMA)
    store.write_interactions(group.id, frame(2, offset=10), mode="full")
    assert store.count_interactions(group.id) == 2
    store.write_interactions(group.id, frame(3, offset=20), mode="incremental")
    assert store.count_interactions(group.id) == 5


def test_failed_write_changes_nothing(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    group = store.create_dataset_group("g")
    store.write_interactions(group.id, frame(3), schema=SCHEMA)
    real_insert = store._bulk_insert

    def insert_then_fail(*args, **kwargs):  # the old rows are deleted and new ones written, then it breaks
        real_insert(*args, **kwargs)
        raise OSError("disk full")

    monkeypatch.setattr(store, "_bulk_insert", insert_then_fail)
    with pytest.raises(OSError, match="disk full"):
        store.write_interactions(group.id, frame(5, offset=10), mode="full")
    with pytest.raises(OSError, match="disk full"):
        store.write_items(group.id, pd.DataFrame({"ITEM_ID": ["x"]}), schema=Schema.default("items").to_dict())
    assert store.read_interactions(group.id)["item_id"].tolist() == ["i0", "i1", "i2"]
    assert store.count_items(group.id) == 0
    assert store.get_dataset(group.id, "items") is None


def test_null_ids_are_refused(store: Store) -> None:
    group = store.create_dataset_group("g")
    data = frame(3)
    data["USER_ID"] = data["USER_ID"].astype(object)
    data.loc[1, "USER_ID"] = None
    with pytest.raises(DataError, match="row 1: USER_ID is empty"):
        store.write_interactions(group.id, data, schema=SCHEMA)
    assert store.count_interactions(group.id) == 0


def test_items_upsert_and_metadata(store: Store) -> None:
    group = store.create_dataset_group("g")
    items = pd.DataFrame({"ITEM_ID": ["a", "b"], "TITLE": ["Alpha", "Beta"], "PRICE": [1.5, np.nan]})
    store.write_items(group.id, items, schema=Schema.default("items").to_dict())
    store.write_items(group.id, pd.DataFrame({"ITEM_ID": ["b", "c"], "TITLE": ["Beta 2", "Gamma"],
                                              "PRICE": [2.0, 3.0]}), mode="incremental")
    assert store.read_items(group.id) == {"a": {"TITLE": "Alpha", "PRICE": 1.5},
                                          "b": {"TITLE": "Beta 2", "PRICE": 2.0},
                                          "c": {"TITLE": "Gamma", "PRICE": 3.0}}
    assert store.read_items(group.id, ["c"]) == {"c": {"TITLE": "Gamma", "PRICE": 3.0}}
    store.write_users(group.id, pd.DataFrame({"USER_ID": ["u1"], "AGE": [33]}),
                      schema=Schema.default("users").to_dict())
    assert store.read_users(group.id) == {"u1": {"AGE": 33}}


def test_describe(store: Store) -> None:
    group = store.create_dataset_group("g")
    store.write_interactions(group.id, frame(3), schema=SCHEMA)
    stats = store.describe(group.id)
    assert (stats["num_users"], stats["num_items"], stats["num_interactions"]) == (2, 3, 3)
    assert stats["event_types"] == {"click": 1, "buy": 1, "": 1}
    assert (stats["min_timestamp"], stats["max_timestamp"]) == (1000, 1002)
    assert stats["sparsity"] == pytest.approx(0.5)


def test_import_job_and_solution_version_lifecycle(store: Store) -> None:
    group = store.create_dataset_group("g")
    job = store.create_import_job(group.id, "interactions", "x.csv", "full")
    assert store.get_import_job(job)["status"] == "CREATE_IN_PROGRESS"
    store.finish_import_job(job, status="ACTIVE", rows_read=3, rows_loaded=3, rows_rejected=0,
                            duration_seconds=0.1, report={"ok": True})
    done = store.list_import_jobs(group.id)[0]
    assert (done["status"], done["rows_loaded"], done["report"]) == ("ACTIVE", 3, {"ok": True})
    solution = store.get_or_create_solution(group.id, "knn", "item-knn", {"neighbors": 5}, {})
    with pytest.raises(ConfigError, match="item-knn"):
        store.get_or_create_solution(group.id, "knn", "popularity", {}, {})
    version = store.create_solution_version(solution["id"], {"neighbors": 5}, {})
    store.update_solution_version(version, status="ACTIVE", metrics={"ndcg@10": 0.3}, fit_seconds=1.5)
    stored = store.get_solution_version(version)
    assert (stored["status"], stored["metrics"], stored["recipe"], stored["dataset_group"]) == (
        "ACTIVE", {"ndcg@10": 0.3}, "item-knn", "g")
    assert [v["id"] for v in store.list_solution_versions(group.id)] == [version]
    with pytest.raises(NotFoundError, match="999"):
        store.get_solution_version(999)


def test_migration_0006_gives_stored_import_jobs_the_job_run_statuses(store: Store) -> None:
    group = store.create_dataset_group("g")
    old = ("running", "succeeded", "failed")
    store.migrate("0005")  # a store made when import jobs had their own words
    with store.engine.begin() as conn:
        for word in old:
            conn.execute(sa.text(
                "INSERT INTO import_jobs (dataset_group_id, dataset_type, source, mode, status, report, created_at) "
                "VALUES (:g, 'interactions', 'x.csv', 'full', :status, :report, CURRENT_TIMESTAMP)"),
                {"g": group.id, "status": word, "report": f'{{"status": "{word}", "rows_read": 3}}'})
    store.migrate()
    new = [("CREATE_IN_PROGRESS",) * 2, ("ACTIVE",) * 2, ("CREATE_FAILED",) * 2]
    assert [(j["status"], j["report"]["status"]) for j in store.list_import_jobs(group.id)] == new
    assert store.list_import_jobs(group.id)[0]["report"]["rows_read"] == 3
    job = store.create_import_job(group.id, "items", "y.csv", "full")  # 18 characters fit the widened column
    assert store.get_import_job(job)["status"] == "CREATE_IN_PROGRESS"
    with store.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM import_jobs WHERE id = :id"), {"id": job})
    store.migrate("0005")
    with store.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT status, report FROM import_jobs ORDER BY id")).all()
    assert [(status, json.loads(report)["status"]) for status, report in rows] == [(w, w) for w in old]
    store.migrate()


def test_no_blocking_reads_refuses_a_connection_and_leaves_the_store_usable(store: Store) -> None:
    """The async routes answer on the event loop inside no_blocking_reads and go to a thread on this error."""
    from recsmith.store.store import BlockingReadError, no_blocking_reads

    group = store.create_dataset_group("g")
    with no_blocking_reads(), pytest.raises(BlockingReadError):
        store.live_state(group.id)
    assert store.live_state(group.id).last_event_id == 0
    assert store.user_events(group.id, "nobody") == []
