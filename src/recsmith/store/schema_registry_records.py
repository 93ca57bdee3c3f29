"""The store's records of Personalize's account-level resources: the schema registry (``aws_schemas``: a name, the
Avro JSON as it was received, a domain), the names of datasets and the schemas they were made from, and the names
of import jobs.

A dataset made from a registered schema (:meth:`SchemaRegistryRecords.create_named_dataset`) gets a copy of that
schema, as in Personalize. Its name and the registered schema's name are kept in the ``name`` column of the
group's own ``schemas`` row of the dataset (:data:`LINK`: ``<dataset name>/<schema name>``; both are Personalize
names, 63 characters at most and without ``/``, so the link fits the column's 128). Nothing else reads that
column. The link lasts while the dataset keeps that schema: an import job of the dataset keeps it (it validates
with the stored schema, and stores it unchanged); giving the dataset another schema by another way (``recsmith
import --schema``) makes a new ``schemas`` row, and the dataset is then one made outside Personalize's API
(:meth:`SchemaRegistryRecords.named_datasets` gives it no name and no registered schema).

A mixin of :class:`recsmith.store.store.Store` (it uses the store's ``engine``, ``begin``, ``get_dataset_group``,
``ensure_dataset``, ``list_dataset_groups``, ``get_import_job``, ``_secure_delete``, ``_bump_catalog`` and
``checkpoint``).
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from recsmith.data.schema import Schema
from recsmith.errors import ConfigError, ConflictError, NotFoundError, SchemaError
from recsmith.store import tables as t

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9\-_]{0,62}")
"""A Personalize resource name (botocore's ``Name`` shape: 1-63 characters), matched whole."""
DOMAINS = ("ECOMMERCE", "VIDEO_ON_DEMAND")
"""Personalize's domains of a schema (botocore's ``Domain`` shape)."""
LINK = "{dataset}/{schema}"
"""How a dataset's name and its registered schema's name are kept in its ``schemas`` row's ``name``."""
PERSONALIZE_DATASET_TYPES = ("interactions", "users", "items")
"""The dataset types a registered schema can make (recsmith's dataset types)."""


def check_personalize_name(kind: str, name: object) -> str:
    """``name`` if it is a valid Personalize name for a ``kind``, else a ConfigError saying what is allowed."""
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise ConfigError(f"invalid {kind} name {name!r}: use 1-63 letters, digits, '-' or '_', starting with a "
                          "letter or digit")
    return name


def parse_link(value: str | None) -> tuple[str, str] | None:
    """``(dataset name, schema name)`` of a ``schemas`` row's ``name`` that is a :data:`LINK`, else None (a
    dataset made outside Personalize's API: the name is its Avro record's)."""
    dataset, sep, schema = (value or "").partition("/")
    if not sep or not NAME.fullmatch(dataset) or not NAME.fullmatch(schema):
        return None
    return dataset, schema


def registered_schema(definition: str, where: str = "schema") -> Schema:
    """The Avro JSON text ``definition`` parsed by recsmith's schema parser (never read as a file's path).

    Raises
    ------
    SchemaError
        Naming ``where`` and the problem.
    """
    try:
        data = json.loads(definition)
    except ValueError as exc:
        raise SchemaError(f"{where}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise SchemaError(f"{where}: a schema must be a JSON object (an Avro record), got {type(data).__name__}")
    return Schema.from_json(data)


class SchemaRegistryRecords:
    """Mixin of :class:`recsmith.store.store.Store`: registered schemas, named datasets and named import jobs."""

    engine: Engine  # and Store's own begin, get_dataset_group, ensure_dataset...

    # ---------------------------------------------------------------------------------------- schemas
    @staticmethod
    def _aws_schema(row: Any) -> dict[str, Any]:
        return {"name": row.name, "definition": row.definition, "domain": row.domain,
                "created_at": t.as_utc(row.created_at)}

    def create_aws_schema(self, name: str, definition: str, domain: str | None = None) -> dict[str, Any]:
        """Register a schema: ``definition`` is Avro JSON text, checked by recsmith's schema parser and kept as it
        is.

        Raises
        ------
        ConfigError
            For an invalid name or domain.
        SchemaError
            For an invalid schema (naming ``schema`` and the problem).
        ConflictError
            If a schema has this name.
        """
        check_personalize_name("schema", name)
        if domain is not None and domain not in DOMAINS:
            raise ConfigError(f"unknown domain {domain!r}; use one of {', '.join(DOMAINS)}")
        registered_schema(definition)
        s = t.aws_schemas
        try:
            with self.begin() as conn:  # type: ignore[attr-defined]
                if conn.execute(sa.select(s.c.id).where(s.c.name == name)).first() is not None:
                    raise ConflictError(f"a schema named {name!r} exists already")
                conn.execute(s.insert().values(name=name, definition=definition, domain=domain,
                                               created_at=t.utc_now()))
        except sa.exc.IntegrityError:  # made meanwhile by another process
            raise ConflictError(f"a schema named {name!r} exists already") from None
        return self.get_aws_schema(name)

    def get_aws_schema(self, name: str) -> dict[str, Any]:
        """The registered schema ``name``: ``{"name", "definition", "domain", "created_at"}`` (NotFoundError)."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(t.aws_schemas).where(t.aws_schemas.c.name == name)).first()
        if row is None:
            raise NotFoundError(f"no schema {name!r}")
        return self._aws_schema(row)

    def list_aws_schemas(self) -> list[dict[str, Any]]:
        """Every registered schema, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(t.aws_schemas).order_by(t.aws_schemas.c.id)).all()
        return [self._aws_schema(row) for row in rows]

    def delete_aws_schema(self, name: str) -> None:
        """Delete the registered schema ``name``.

        Raises
        ------
        NotFoundError
            If there is none.
        ConflictError
            While a dataset made from it has it (naming the datasets).
        """
        self.get_aws_schema(name)
        users = [f"{d['name']} (dataset group {d['dataset_group']!r})" for d in self.named_datasets()
                 if d["schema"] == name]
        if users:
            raise ConflictError(f"schema {name!r} is used by the dataset(s) {', '.join(users)}: delete them first")
        with self.begin() as conn:  # type: ignore[attr-defined]
            if not conn.execute(t.aws_schemas.delete().where(t.aws_schemas.c.name == name)).rowcount:
                raise NotFoundError(f"no schema {name!r}")

    # --------------------------------------------------------------------------------------- datasets
    def _datasets_query(self) -> sa.Select:
        d, s, g = t.datasets, t.schemas, t.dataset_groups
        return (sa.select(g.c.name.label("dataset_group"), d.c.dataset_type, d.c.created_at, d.c.updated_at,
                          s.c.name.label("link"), s.c.definition)
                .join(s, s.c.id == d.c.schema_id).join(g, g.c.id == d.c.dataset_group_id)
                .order_by(d.c.id))

    def named_datasets(self, group: str | None = None) -> list[dict[str, Any]]:
        """Every dataset (or ``group``'s), oldest first: ``dataset_group``, ``dataset_type``, ``name`` and
        ``schema`` (the registered schema it was made from; both None for a dataset made outside Personalize's
        API, or given another schema since), ``definition`` (the schema it has, Avro JSON), ``created_at``,
        ``updated_at``."""
        query = self._datasets_query()
        if group is not None:
            query = query.where(t.dataset_groups.c.name == group)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        out = []
        for row in rows:
            link = parse_link(row.link)
            out.append({"dataset_group": row.dataset_group, "dataset_type": row.dataset_type,
                        "name": link[0] if link else None, "schema": link[1] if link else None,
                        "definition": row.definition, "created_at": t.as_utc(row.created_at),
                        "updated_at": t.as_utc(row.updated_at)})
        return out

    def create_named_dataset(self, group: str, dataset_type: str, name: str, schema: str) -> dict[str, Any]:
        """Make ``group``'s ``dataset_type`` dataset, called ``name``, with a copy of the registered ``schema``.

        Raises
        ------
        NotFoundError
            If there is no such group or registered schema.
        ConfigError
            For an invalid name or dataset type.
        SchemaError
            If the schema lacks what the dataset type needs.
        ConflictError
            If the group has a dataset of this type already, or a dataset has this name.
        """
        check_personalize_name("dataset", name)
        if dataset_type not in PERSONALIZE_DATASET_TYPES:
            raise ConfigError(f"unknown dataset type {dataset_type!r}; use one of "
                              f"{', '.join(PERSONALIZE_DATASET_TYPES)}")
        group_id = self.get_dataset_group(group).id  # type: ignore[attr-defined]
        parsed = registered_schema(self.get_aws_schema(schema)["definition"])
        parsed.validate_for(dataset_type)
        copy = parsed.to_dict()  # as an import stores it, so that imports keep this schema row (and its link)
        d = t.datasets
        with self.begin() as conn:  # type: ignore[attr-defined]
            if conn.execute(sa.select(d.c.id).where(d.c.dataset_group_id == group_id,
                                                    d.c.dataset_type == dataset_type)).first() is not None:
                raise ConflictError(f"dataset group {group!r} has a {dataset_type} dataset already: delete it "
                                    "first")
            taken = [row for row in conn.execute(self._datasets_query()).all()
                     if (parse_link(row.link) or ("",))[0] == name]
            if taken:
                raise ConflictError(f"a dataset named {name!r} exists already (the {taken[0].dataset_type} dataset "
                                    f"of dataset group {taken[0].dataset_group!r})")
            dataset = self.ensure_dataset(group_id, dataset_type, copy, conn=conn)  # type: ignore[attr-defined]
            schema_id = conn.execute(sa.select(d.c.schema_id).where(d.c.id == dataset.id)).scalar_one()
            conn.execute(t.schemas.update().where(t.schemas.c.id == schema_id)
                         .values(name=LINK.format(dataset=name, schema=schema)))
        return next(x for x in self.named_datasets(group) if x["dataset_type"] == dataset_type)

    def delete_dataset(self, group: str, dataset_type: str) -> dict[str, int]:
        """Delete ``group``'s ``dataset_type`` dataset, its schema and its data (interactions, users or items) in
        one transaction; the group's import jobs stay, as its history. On SQLite the deleted rows are overwritten
        and the write-ahead log checkpointed, as for a dataset group's deletion.

        Returns
        -------
        dict
            Rows deleted, by table.

        Raises
        ------
        NotFoundError
            If the group has no such dataset.
        ConflictError
            While an import job of the dataset, or a training of the group, has not ended.
        """
        group_id = self.get_dataset_group(group).id  # type: ignore[attr-defined]
        j, v, s = t.import_jobs, t.solution_versions, t.solutions
        data = {"interactions": t.interactions, "users": t.users, "items": t.items}.get(dataset_type)
        if data is None:
            raise ConfigError(f"unknown dataset type {dataset_type!r}; use one of "
                              f"{', '.join(PERSONALIZE_DATASET_TYPES)}")
        with self.begin() as conn:  # type: ignore[attr-defined]
            self._secure_delete(conn)  # type: ignore[attr-defined]
            running = [f"import job {i}" for i in conn.execute(sa.select(j.c.id).where(
                j.c.dataset_group_id == group_id, j.c.dataset_type == dataset_type,
                j.c.status.in_(t.UNFINISHED))).scalars()]
            running += [f"the training of solution version {i}" for i in conn.execute(sa.select(v.c.id).where(
                v.c.solution_id.in_(sa.select(s.c.id).where(s.c.dataset_group_id == group_id)),
                v.c.status.in_(t.UNFINISHED))).scalars()]
            if running:
                one = len(running) == 1
                raise ConflictError(f"the {dataset_type} dataset of dataset group {group!r} is in use: "
                                    f"{' and '.join(running)} {'has' if one else 'have'} not ended; delete the "
                                    f"dataset once {'it has' if one else 'they have'}")
            where = (t.datasets.c.dataset_group_id == group_id) & (t.datasets.c.dataset_type == dataset_type)
            rows = {"datasets": conn.execute(t.datasets.delete().where(where)).rowcount}
            if not rows["datasets"]:
                raise NotFoundError(f"dataset group {group!r} has no {dataset_type} dataset")
            rows["schemas"] = conn.execute(t.schemas.delete().where(
                t.schemas.c.dataset_group_id == group_id, t.schemas.c.dataset_type == dataset_type)).rowcount
            rows[data.name] = conn.execute(data.delete().where(data.c.dataset_group_id == group_id)).rowcount
            self._bump_catalog(conn, group_id)  # type: ignore[attr-defined]  # serving reloads its catalogue
        self._events_ready.pop(group_id, None)  # type: ignore[attr-defined]
        self.checkpoint()  # type: ignore[attr-defined]
        return {name: int(count) for name, count in rows.items()}

    # ------------------------------------------------------------------------------------ import jobs
    def name_import_job(self, job_id: int, name: str) -> None:
        """Give the import job ``job_id`` (just recorded, unnamed) the name ``name``; if another job has that name,
        the job ``job_id`` is deleted and ConflictError raised (it never ran: it was recorded for this name)."""
        check_personalize_name("import job", name)
        j = t.import_jobs
        try:
            with self.begin() as conn:  # type: ignore[attr-defined]
                taken = conn.execute(sa.select(j.c.id).where(j.c.name == name)).first() is not None
                if not taken:
                    conn.execute(j.update().where(j.c.id == job_id).values(name=name))
        except sa.exc.IntegrityError:  # named meanwhile by another process
            taken = True
        if taken:
            with self.begin() as conn:  # type: ignore[attr-defined]
                conn.execute(j.delete().where(j.c.id == job_id, j.c.name.is_(None)))
            raise ConflictError(f"an import job named {name!r} exists already")

    def import_job_named(self, name: str) -> dict[str, Any] | None:
        """The import job called ``name`` (as :meth:`~recsmith.store.store.Store.get_import_job` gives it, plus
        ``dataset_group``, its group's name), or None."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(t.import_jobs.c.id, t.dataset_groups.c.name)
                               .join(t.dataset_groups, t.dataset_groups.c.id == t.import_jobs.c.dataset_group_id)
                               .where(t.import_jobs.c.name == name)).first()
        if row is None:
            return None
        return self.get_import_job(int(row[0])) | {"dataset_group": row[1]}  # type: ignore[attr-defined]

    # ------------------------------------------------------------------------------ names in groups
    def groups_with(self, kind: str, name: str) -> list[str]:
        """The dataset groups that have a ``kind`` (``"filter"``, ``"campaign"`` or ``"solution"``) called
        ``name``, by name: Personalize's names are unique in an account, recsmith's in a group."""
        table = {"filter": t.filters, "campaign": t.campaigns, "solution": t.solutions}.get(kind)
        if table is None:
            raise ValueError(f"kind must be filter, campaign or solution, got {kind!r}")
        g = t.dataset_groups
        with self.engine.connect() as conn:
            return list(conn.execute(sa.select(g.c.name).join(table, table.c.dataset_group_id == g.c.id)
                                     .where(table.c.name == name).order_by(g.c.name)).scalars())
