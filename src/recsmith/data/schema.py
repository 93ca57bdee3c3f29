"""Personalize-compatible dataset schemas (Avro ``record`` JSON with ``fields``).

A schema lists the fields of a dataset. Interactions need ``USER_ID``, ``ITEM_ID`` and ``TIMESTAMP`` and
may have ``EVENT_TYPE``, ``EVENT_VALUE`` and context fields; users need ``USER_ID``; items need
``ITEM_ID``. Other fields are categorical strings (``"categorical": true``, several values joined with
``|``), numbers, booleans (written as the strings ``true``/``false``) or text (``"textual": true``).

Examples
--------
>>> Schema.from_json({"type": "record", "name": "Items", "fields": [
...     {"name": "ITEM_ID", "type": "string"},
...     {"name": "GENRES", "type": ["null", "string"], "categorical": True}]}).names
['ITEM_ID', 'GENRES']
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recsmith.errors import ConfigError, SchemaError

KINDS = ("string", "int", "long", "float", "double", "boolean")
NUMERIC_KINDS = ("int", "long", "float", "double")
RESERVED = {"USER_ID": ("string",), "ITEM_ID": ("string",), "TIMESTAMP": ("long", "int"),
            "EVENT_TYPE": ("string",), "EVENT_VALUE": ("float", "double", "int", "long")}
REQUIRED = {"interactions": ("USER_ID", "ITEM_ID", "TIMESTAMP"), "users": ("USER_ID",), "items": ("ITEM_ID",)}
FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,149}$")


@dataclass(frozen=True)
class SchemaField:
    """One field of a schema.

    Attributes
    ----------
    name : str
        Field name (Avro naming: letters, digits, ``_``).
    kind : str
        One of ``string``, ``int``, ``long``, ``float``, ``double``, ``boolean``.
    nullable : bool
        Whether the field may be empty (Avro union with ``"null"``).
    categorical : bool
        A categorical string (values may be joined with ``|``).
    textual : bool
        Free text (e.g. a description).
    """

    name: str
    kind: str
    nullable: bool = False
    categorical: bool = False
    textual: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise SchemaError(f"field {self.name}: unknown type {self.kind!r}; use one of {', '.join(KINDS)}")
        if (self.categorical or self.textual) and self.kind != "string":
            raise SchemaError(f"field {self.name}: categorical and textual fields must be strings, not {self.kind!r}")

    @property
    def numeric(self) -> bool:
        """Whether the field holds numbers."""
        return self.kind in NUMERIC_KINDS

    def to_dict(self) -> dict[str, Any]:
        """The field as Avro JSON."""
        out: dict[str, Any] = {"name": self.name, "type": ["null", self.kind] if self.nullable else self.kind}
        if self.categorical:
            out["categorical"] = True
        if self.textual:
            out["textual"] = True
        return out


@dataclass
class Schema:
    """A dataset schema: an ordered list of fields.

    Parameters
    ----------
    fields : list of SchemaField
        The fields, in order (any iterable is accepted and stored as a list).
    name : str
        The record name (``Interactions``, ``Users``, ``Items`` in Personalize).

    Raises
    ------
    SchemaError
        If there are no fields or two fields share a name.
    """

    fields: list[SchemaField]
    name: str = "Schema"

    def __post_init__(self) -> None:
        self.fields = list(self.fields)
        if not self.fields:
            raise SchemaError("a schema needs at least one field")
        seen: set[str] = set()
        for index, spec in enumerate(self.fields):
            if not isinstance(spec, SchemaField):
                raise SchemaError(f"schema field {index}: expected a SchemaField, got {spec!r}")
            if spec.name in seen:
                raise SchemaError(f"schema field {index}: duplicate field name {spec.name!r}")
            seen.add(spec.name)

    @property
    def names(self) -> list[str]:
        """Field names in order."""
        return [f.name for f in self.fields]

    def field(self, name: str) -> SchemaField | None:
        """The field called ``name``, or None."""
        return next((f for f in self.fields if f.name == name), None)

    @classmethod
    def from_json(cls, source: str | Path | dict[str, Any]) -> Schema:
        """Parse and validate an Avro schema from a dict, JSON text or a path to a JSON file.

        Parameters
        ----------
        source : dict, str or Path
            The schema as a dict, as JSON text, or the path of a ``.json`` file holding it.

        Returns
        -------
        Schema

        Raises
        ------
        SchemaError
            Naming the problem and the field (its index and name) where it is.
        """
        if isinstance(source, dict):
            data: Any = source
            where = "schema"
        else:
            text = str(source)
            where = "schema"
            if isinstance(source, Path) or not text.lstrip().startswith(("{", "[")):
                path = Path(text)
                if not path.is_file():
                    raise SchemaError(f"schema file {path} does not exist")
                where = str(path)
                text = path.read_text(encoding="utf-8")
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                raise SchemaError(
                    f"{where}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from exc
        if not isinstance(data, dict):
            raise SchemaError(f"{where}: a schema must be a JSON object (an Avro record), got {type(data).__name__}")
        if data.get("type") != "record":
            raise SchemaError(f'{where}: "type" is {data.get("type")!r}; a schema must be an Avro record: '
                              f'{{"type": "record", "fields": [...]}}')
        raw_fields = data.get("fields")
        if not isinstance(raw_fields, list) or not raw_fields:
            raise SchemaError(f"{where}: 'fields' must be a non-empty list of fields, got {raw_fields!r}")
        fields: list[SchemaField] = []
        seen: set[str] = set()
        for index, raw in enumerate(raw_fields):
            fields.append(_parse_field(raw, f"{where}: field {index}"))
            if fields[-1].name in seen:
                raise SchemaError(f"{where}: field {index}: duplicate field name {fields[-1].name!r}")
            seen.add(fields[-1].name)
        return cls(fields, name=str(data.get("name", "Schema")))

    def to_dict(self) -> dict[str, Any]:
        """The schema as Personalize/Avro JSON."""
        return {"type": "record", "name": self.name, "namespace": "com.amazonaws.personalize.schema",
                "fields": [f.to_dict() for f in self.fields], "version": "1.0"}

    def validate_for(self, dataset_type: str) -> None:
        """Check the schema has what a dataset of this type needs.

        Raises
        ------
        ConfigError
            For an unknown dataset type.
        SchemaError
            For a missing required field.
        """
        if dataset_type not in REQUIRED:
            raise ConfigError(f"unknown dataset type {dataset_type!r}; use one of {', '.join(REQUIRED)}")
        missing = [name for name in REQUIRED[dataset_type] if self.field(name) is None]
        if missing:
            raise SchemaError(f"a {dataset_type} schema needs field(s) {', '.join(missing)}; it has {self.names}")

    @classmethod
    def default(cls, dataset_type: str) -> Schema:
        """The schema used when none is given."""
        if dataset_type == "interactions":
            return cls([SchemaField("USER_ID", "string"), SchemaField("ITEM_ID", "string"),
                        SchemaField("TIMESTAMP", "long"), SchemaField("EVENT_TYPE", "string", nullable=True),
                        SchemaField("EVENT_VALUE", "float", nullable=True)], name="Interactions")
        if dataset_type == "users":
            return cls([SchemaField("USER_ID", "string")], name="Users")
        if dataset_type == "items":
            return cls([SchemaField("ITEM_ID", "string")], name="Items")
        raise ConfigError(f"unknown dataset type {dataset_type!r}; use one of {', '.join(REQUIRED)}")


def _parse_field(raw: Any, where: str) -> SchemaField:
    if not isinstance(raw, dict) or "name" not in raw or "type" not in raw:
        raise SchemaError(f"{where}: each field needs 'name' and 'type', got {raw!r}")
    name = raw["name"]
    if not isinstance(name, str) or not FIELD_NAME.match(name):
        raise SchemaError(f"{where}: invalid field name {name!r} (letters, digits and '_', not starting with a digit)")
    kind_spec = _primitive(raw["type"])
    nullable = False
    if isinstance(kind_spec, list):
        kinds = [_primitive(k) for k in kind_spec if k != "null"]
        nullable = len(kinds) < len(kind_spec)
        if len(kinds) != 1:
            raise SchemaError(f"{where} ({name}): a union type must be one type plus 'null', got {kind_spec!r}")
        kind_spec = kinds[0]
    if kind_spec not in KINDS:
        raise SchemaError(f"{where} ({name}): unknown type {kind_spec!r}; use one of {', '.join(KINDS)}")
    categorical, textual = bool(raw.get("categorical", False)), bool(raw.get("textual", False))
    if (categorical or textual) and kind_spec != "string":
        raise SchemaError(f"{where} ({name}): categorical and textual fields must be strings, not {kind_spec!r}")
    if categorical and textual:
        raise SchemaError(f"{where} ({name}): a field cannot be both categorical and textual")
    if name in RESERVED and kind_spec not in RESERVED[name]:
        raise SchemaError(f"{where}: reserved field {name} must be of type {' or '.join(RESERVED[name])}, "
                          f"not {kind_spec!r}")
    return SchemaField(name, kind_spec, nullable, categorical, textual)


def _primitive(spec: Any) -> Any:
    """``{"type": "string"}`` (Avro's long form of a primitive type) as ``"string"``; other specs unchanged."""
    if isinstance(spec, dict) and set(spec) <= {"type", "logicalType"} and isinstance(spec.get("type"), str):
        return spec["type"]
    return spec
