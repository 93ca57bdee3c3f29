"""Dataset export jobs: interactions, users and items to Parquet, atomically, read back by the import."""

from __future__ import annotations

import json
from pathlib import Path

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from recsmith.errors import ConfigError, DataError
from recsmith.jobs.export import export_dataset
from recsmith.jobs.importing import import_dataset
from recsmith.store.store import Store

INTERACTIONS_SCHEMA = {"type": "record", "name": "Interactions", "fields": [
    {"name": "USER_ID", "type": "string"}, {"name": "ITEM_ID", "type": "string"},
    {"name": "TIMESTAMP", "type": "long"}, {"name": "EVENT_TYPE", "type": ["null", "string"]},
    {"name": "EVENT_VALUE", "type": ["null", "float"]}, {"name": "DEVICE", "type": ["null", "string"]}]}
ITEMS_SCHEMA = {"type": "record", "name": "Items", "fields": [
    {"name": "ITEM_ID", "type": "string"}, {"name": "GENRES", "type": ["null", "string"], "categorical": True},
    {"name": "PRICE", "type": ["null", "double"]}, {"name": "STOCK", "type": ["null", "int"]}]}


@pytest.fixture
def shop(store: Store, tmp_path: Path) -> Store:
    """A group with interactions (event types, values, a context field), items and users."""
    (tmp_path / "events.csv").write_text(
        "USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE,EVENT_VALUE,DEVICE\n"
        "u1,i1,100,view,,phone\nu1,i2,200,purchase,9.5,web\nu2,i1,300,view,,\nu3,i3,400,click,1,phone\n"
        "u2,i2,500,view,2,web\n")
    (tmp_path / "items.csv").write_text("ITEM_ID,GENRES,PRICE,STOCK\ni1,Comedy|Drama,9.99,3\ni2,Horror,,\ni3,,1.5,0\n")
    (tmp_path / "users.csv").write_text("USER_ID,AGE\nu1,31\nu2,\nu3,45\n")
    import_dataset(store, "shop", "interactions", str(tmp_path / "events.csv"), schema=json.dumps(INTERACTIONS_SCHEMA))
    import_dataset(store, "shop", "items", str(tmp_path / "items.csv"), schema=json.dumps(ITEMS_SCHEMA))
    import_dataset(store, "shop", "users", str(tmp_path / "users.csv"), infer_schema=True)
    return store


def test_interactions_export_has_the_schema_columns_and_every_row(shop: Store, tmp_path: Path) -> None:
    report = export_dataset(shop, "shop", str(tmp_path / "out" / "interactions.parquet"))
    table = pq.read_table(tmp_path / "out" / "interactions.parquet")
    assert report.rows == table.num_rows == 5
    assert table.column_names == report.columns == ["USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE", "EVENT_VALUE",
                                                    "DEVICE"]
    assert table.schema.field("TIMESTAMP").type == pa.int64() and table.schema.field("EVENT_VALUE").type == pa.float32()
    rows = table.to_pylist()
    assert rows[1] == {"USER_ID": "u1", "ITEM_ID": "i2", "TIMESTAMP": 200, "EVENT_TYPE": "purchase",
                       "EVENT_VALUE": 9.5, "DEVICE": "web"}
    assert rows[0]["EVENT_VALUE"] is None and rows[2]["DEVICE"] is None


def test_export_round_trips_through_the_import(shop: Store, tmp_path: Path) -> None:
    for dataset in ("interactions", "items", "users"):
        export_dataset(shop, "shop", str(tmp_path / f"{dataset}.parquet"), dataset=dataset)
        import_dataset(shop, "copy", dataset, str(tmp_path / f"{dataset}.parquet"),
                       schema=json.dumps(shop.get_dataset(shop.get_dataset_group("shop").id, dataset).schema))
    original, copy = shop.get_dataset_group("shop").id, shop.get_dataset_group("copy").id
    first, second = shop.read_interactions(original), shop.read_interactions(copy)
    for name in ("user_id", "item_id", "timestamp", "event_type", "context"):
        assert list(first[name]) == list(second[name]), name
    np.testing.assert_array_equal(first["event_value"], second["event_value"])
    assert shop.read_items(copy) == shop.read_items(original)
    assert shop.read_users(copy) == shop.read_users(original)
    items = pq.read_table(tmp_path / "items.parquet")
    assert items.column_names == ["ITEM_ID", "GENRES", "PRICE", "STOCK"]
    assert items.schema.field("STOCK").type == pa.int32() and items.num_rows == 3


def test_export_to_an_fsspec_url(shop: Store) -> None:
    report = export_dataset(shop, "shop", "memory://exports/shop/users.parquet", dataset="users")
    fs = fsspec.filesystem("memory")
    with fs.open("/exports/shop/users.parquet", "rb") as handle:
        table = pq.read_table(handle)
    assert report.rows == table.num_rows == 3 and table.column_names[0] == "USER_ID"
    assert fs.ls("/exports/shop", detail=False) == ["/exports/shop/users.parquet"]  # no upload left beside it


def test_a_failed_export_leaves_nothing(shop: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "exports" / "interactions.parquet"
    target.parent.mkdir()
    target.write_bytes(b"the previous export")

    def broken(table: pa.Table, where: object) -> None:
        Path(str(where)).write_bytes(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", broken)
    with pytest.raises(ConfigError, match="cannot write the interactions export to .*disk full"):
        export_dataset(shop, "shop", str(target))
    assert target.read_bytes() == b"the previous export" and sorted(target.parent.iterdir()) == [target]


def test_bad_exports_are_refused(shop: Store, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="ending in .parquet"):
        export_dataset(shop, "shop", str(tmp_path / "x.csv"))
    with pytest.raises(ConfigError, match="unknown dataset 'ratings'"):
        export_dataset(shop, "shop", str(tmp_path / "x.parquet"), dataset="ratings")
    import_dataset(shop, "bare", "interactions", str(tmp_path / "events.csv"),
                   schema=json.dumps(INTERACTIONS_SCHEMA))
    with pytest.raises(DataError, match="no items dataset to export"):
        export_dataset(shop, "bare", str(tmp_path / "x.parquet"), dataset="items")
    assert not (tmp_path / "x.parquet").exists()
