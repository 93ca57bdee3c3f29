"""Personalize-compatible schemas: parsing, validation, defaults."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from recsmith.data.schema import Schema, SchemaField
from recsmith.errors import ConfigError, DataError, SchemaError

PERSONALIZE_INTERACTIONS: dict[str, Any] = {
    "type": "record",
    "name": "Interactions",
    "namespace": "com.amazonaws.personalize.schema",
    "fields": [
        {"name": "USER_ID", "type": "string"},
        {"name": "ITEM_ID", "type": "string"},
        {"name": "TIMESTAMP", "type": "long"},
        {"name": "EVENT_TYPE", "type": "string"},
        {"name": "EVENT_VALUE", "type": ["null", "float"]},
        {"name": "GENRES", "type": ["null", "string"], "categorical": True},
        {"name": "DESCRIPTION", "type": ["null", "string"], "textual": True},
    ],
    "version": "1.0",
}


def _record(*fields: dict[str, Any]) -> dict[str, Any]:
    return {"type": "record", "name": "Items", "fields": list(fields)}


def test_parses_a_personalize_schema_and_round_trips() -> None:
    schema = Schema.from_json(PERSONALIZE_INTERACTIONS)
    assert schema.names == ["USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE", "EVENT_VALUE", "GENRES", "DESCRIPTION"]
    assert isinstance(schema.fields, list)
    assert schema.field("TIMESTAMP") == SchemaField("TIMESTAMP", "long")
    assert schema.field("EVENT_VALUE") == SchemaField("EVENT_VALUE", "float", nullable=True)
    genres = schema.field("GENRES")
    assert genres is not None and genres.categorical and genres.nullable and not genres.textual
    description = schema.field("DESCRIPTION")
    assert description is not None and description.textual
    assert schema.field("NOPE") is None
    assert schema.to_dict() == PERSONALIZE_INTERACTIONS
    assert Schema.from_json(schema.to_dict()) == schema
    schema.validate_for("interactions")


def test_from_json_text_and_path(tmp_path: Path) -> None:
    text = json.dumps(PERSONALIZE_INTERACTIONS)
    path = tmp_path / "schema.json"
    path.write_text(text, encoding="utf-8")
    expected = Schema.from_json(PERSONALIZE_INTERACTIONS)
    assert Schema.from_json(text) == expected
    assert Schema.from_json(path) == expected
    assert Schema.from_json(str(path)) == expected


def test_union_order_and_long_form_types() -> None:
    schema = Schema.from_json(_record({"name": "ITEM_ID", "type": {"type": "string"}},
                                      {"name": "PRICE", "type": ["double", "null"]},
                                      {"name": "IN_STOCK", "type": "boolean"}))
    assert schema.field("ITEM_ID") == SchemaField("ITEM_ID", "string")
    assert schema.field("PRICE") == SchemaField("PRICE", "double", nullable=True)
    assert schema.field("IN_STOCK") == SchemaField("IN_STOCK", "boolean")
    assert schema.field("PRICE").numeric and not schema.field("IN_STOCK").numeric  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("data", "needles"),
    [
        ({"type": "enum", "fields": []}, ["'enum'", "record"]),
        ([1, 2], ["JSON object", "list"]),
        ({"type": "record", "fields": []}, ["fields", "non-empty"]),
        ({"type": "record"}, ["fields"]),
        (_record({"name": "ITEM_ID", "type": "string"}, {"name": "ITEM_ID", "type": "string"}),
         ["field 1", "duplicate", "ITEM_ID"]),
        (_record({"name": "ITEM_ID", "type": "string"}, {"name": "PRICE", "type": "decimal"}),
         ["field 1", "PRICE", "unknown type", "'decimal'"]),
        (_record({"name": "ITEM_ID", "type": "string"}, {"name": "SIZE", "type": "int", "categorical": True}),
         ["field 1", "SIZE", "categorical", "'int'"]),
        (_record({"name": "ITEM_ID", "type": "string"}, {"name": "2BAD", "type": "string"}),
         ["field 1", "'2BAD'", "invalid field name"]),
        (_record({"name": "ITEM_ID", "type": "string"}, {"name": "has space", "type": "string"}),
         ["field 1", "'has space'"]),
        (_record({"name": "ITEM_ID"}), ["field 0", "'name' and 'type'"]),
        (_record({"name": "ITEM_ID", "type": ["null", "string", "int"]}), ["field 0", "union"]),
        (_record({"name": "TIMESTAMP", "type": "string"}), ["field 0", "TIMESTAMP", "long"]),
    ],
)
def test_invalid_schemas_name_the_problem(data: Any, needles: list[str]) -> None:
    with pytest.raises(SchemaError) as info:
        Schema.from_json(data)
    for needle in needles:
        assert needle in str(info.value)
    assert isinstance(info.value, DataError)


def test_bad_json_text_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match="not valid JSON"):
        Schema.from_json('{"type": "record", ')
    with pytest.raises(SchemaError, match="does not exist"):
        Schema.from_json(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(SchemaError, match="bad.json: not valid JSON"):
        Schema.from_json(bad)


def test_defaults() -> None:
    interactions = Schema.default("interactions")
    assert interactions.names == ["USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE", "EVENT_VALUE"]
    assert interactions.field("EVENT_TYPE").nullable  # type: ignore[union-attr]
    assert interactions.field("EVENT_VALUE") == SchemaField("EVENT_VALUE", "float", nullable=True)
    assert interactions.field("TIMESTAMP") == SchemaField("TIMESTAMP", "long")
    assert Schema.default("users").names == ["USER_ID"]
    assert Schema.default("items").names == ["ITEM_ID"]
    for kind in ("interactions", "users", "items"):
        Schema.default(kind).validate_for(kind)
    with pytest.raises(ConfigError, match="'ratings'"):
        Schema.default("ratings")


def test_validate_for() -> None:
    items = Schema.from_json(_record({"name": "ITEM_ID", "type": "string"}))
    items.validate_for("items")
    with pytest.raises(SchemaError, match="USER_ID"):
        items.validate_for("users")
    with pytest.raises(SchemaError, match="USER_ID, TIMESTAMP"):
        items.validate_for("interactions")
    with pytest.raises(ConfigError, match="unknown dataset type 'events'"):
        items.validate_for("events")


def test_direct_construction_is_checked() -> None:
    with pytest.raises(SchemaError, match="unknown type 'str'"):
        SchemaField("X", "str")
    with pytest.raises(SchemaError, match="duplicate"):
        Schema([SchemaField("ITEM_ID", "string"), SchemaField("ITEM_ID", "string")])
    with pytest.raises(SchemaError, match="at least one field"):
        Schema([])
