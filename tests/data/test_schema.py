import json

import pytest

from recsmith.data.schema import Schema
from recsmith.errors import ConfigError, SchemaError

PERSONALIZE_ITEMS = {
    "type": "record", "name": "Items", "namespace": "com.amazonaws.personalize.schema",
    "fields": [
        {"name": "ITEM_ID", "type": "string"},
        {"name": "GENRES", "type": ["null", "string"], "categorical": True},
        {"name": "PRICE", "type": "float"},
        {"name": "IN_STOCK", "type": "boolean"},
        {"name": "DESCRIPTION", "type": ["null", "string"], "textual": True},
    ],
    "version": "1.0",
}


def test_personalize_schema_parses_and_round_trips(tmp_path) -> None:
    path = tmp_path / "items.json"
    path.write_text(json.dumps(PERSONALIZE_ITEMS))
    schema = Schema.from_json(path)
    assert schema.names == ["ITEM_ID", "GENRES", "PRICE", "IN_STOCK", "DESCRIPTION"]
    genres = schema.field("GENRES")
    assert genres.categorical and genres.nullable and not genres.textual
    assert schema.field("DESCRIPTION").textual and schema.field("PRICE").numeric
    schema.validate_for("items")
    assert Schema.from_json(schema.to_dict()) == schema
    assert Schema.from_json(json.dumps(PERSONALIZE_ITEMS)) == schema


def test_default_interactions_schema() -> None:
    schema = Schema.default("interactions")
    assert schema.names == ["USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE", "EVENT_VALUE"]
    schema.validate_for("interactions")


@pytest.mark.parametrize(("change", "message"), [
    ({"type": "enum"}, "Avro record"),
    ({"fields": []}, "non-empty"),
    ({"fields": [{"name": "ITEM_ID", "type": "string"}, {"name": "ITEM_ID", "type": "string"}]}, "duplicate"),
    ({"fields": [{"name": "ITEM_ID", "type": "decimal"}]}, "unknown type 'decimal'"),
    ({"fields": [{"name": "ITEM_ID", "type": "string"}, {"name": "N", "type": "int", "categorical": True}]},
     "must be strings"),
    ({"fields": [{"name": "1bad", "type": "string"}]}, "invalid field name"),
    ({"fields": [{"name": "TIMESTAMP", "type": "string"}]}, "TIMESTAMP must be of type"),
])
def test_invalid_schemas(change, message) -> None:
    with pytest.raises(SchemaError, match=message):
        Schema.from_json(PERSONALIZE_ITEMS | change)


def test_required_fields_per_dataset_type() -> None:
    with pytest.raises(SchemaError, match="USER_ID"):
        Schema.from_json(PERSONALIZE_ITEMS).validate_for("interactions")
    with pytest.raises(ConfigError, match="purchases"):
        Schema.default("purchases")


def test_unreadable_schema_file(tmp_path) -> None:
    with pytest.raises(SchemaError, match="does not exist"):
        Schema.from_json(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(SchemaError, match="bad.json: not valid JSON"):
        Schema.from_json(bad)
