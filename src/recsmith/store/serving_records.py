"""The store's serving records: filters, campaigns and API keys of dataset groups.

A mixin of :class:`recsmith.store.store.Store` (kept in its own module so the store's data half and its serving
half stay readable); it uses the store's ``engine``, ``begin``, ``get_dataset_group`` and ``get_dataset``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from recsmith.data.filters import Filter, check_filter_fields
from recsmith.errors import Advice, ConfigError, NotFoundError, advise
from recsmith.store import tables as t

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

ROLES = ("read", "write", "admin")
"""API key roles, weakest first: ``read`` (recommendations, ranking, listing), ``write`` (events, users,
items, and what read allows), ``admin`` (everything, campaigns, filters and keys included)."""

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
KEY_PREFIX = "rsk"


_now = t.utc_now
_utc = t.as_utc


def check_name(kind: str, name: str) -> str:
    """``name`` if it is a valid filter or campaign name, else a ConfigError saying what is allowed."""
    if not isinstance(name, str) or not NAME.match(name):
        raise ConfigError(f"invalid {kind} name {name!r}: use 1-128 letters, digits, '_', '.' or '-', starting "
                          "with a letter or digit")
    return name


def hash_secret(secret: str) -> str:
    """SHA-256 of a key's secret part (keys are 256-bit random, so a fast hash is enough; never stored plain)."""
    return hashlib.sha256(secret.encode()).hexdigest()


SEALING_CONTEXT = b"recsmith:sigv4-secrets"
"""What the erasure key is mixed with to give the key that seals API key secrets (:func:`seal_secret`)."""


def _sealing_key(erasure_key: bytes) -> bytes:
    return hmac.new(erasure_key, SEALING_CONTEXT, hashlib.sha256).digest()


def seal_secret(erasure_key: bytes, key_id: str, secret: str) -> str:
    """``secret`` sealed with AES-256-GCM under a key derived from ``erasure_key``, ``key_id`` as associated data
    (base64 of nonce | ciphertext | tag): what AWS Signature Version 4 needs the server to hold, since a signature
    is an HMAC keyed by the secret itself."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = secrets.token_bytes(12)
    sealed = AESGCM(_sealing_key(erasure_key)).encrypt(nonce, secret.encode(), key_id.encode())
    return base64.b64encode(nonce + sealed).decode()


def unseal_secret(erasure_key: bytes, key_id: str, sealed: str) -> str | None:
    """The secret :func:`seal_secret` sealed, or None when it does not open (another erasure key, or tampered)."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    try:
        raw = base64.b64decode(sealed)
        return AESGCM(_sealing_key(erasure_key)).decrypt(raw[:12], raw[12:], key_id.encode()).decode()
    except (InvalidTag, ValueError):
        return None


def split_key(key: str) -> tuple[str, str] | None:
    """``(key_id, secret)`` of a key shaped ``rsk_<key id>_<secret>``, or None."""
    prefix, _, rest = key.partition("_")
    key_id, _, secret = rest.partition("_")
    if prefix != KEY_PREFIX or not key_id or not secret:
        return None
    return key_id, secret


class ServingRecords:
    """Filters, campaigns and API keys (mixed into :class:`~recsmith.store.store.Store`)."""

    engine: Engine  # the rest it uses (begin, get_dataset_group, get_dataset) are Store's own methods

    # ------------------------------------------------------------------------------------------ filters
    def create_filter(self, group: str, name: str, expression: str) -> dict[str, Any]:
        """Store a filter; the expression must parse and name only fields of the group's schemas (the one check
        behind ``recsmith filter create`` and ``POST /v1/dataset-groups/{group}/filters``).

        Raises
        ------
        FilterSyntaxError
            If the expression does not parse (naming the position).
        FilterFieldError
            If it names a field the group's items or users schema lacks, or a dataset the group has no schema
            for (naming the position and the nearest field: :func:`~recsmith.data.filters.check_filter_fields`).
        ConfigError
            If the group already has a filter called ``name``.
        """
        group_id = self.get_dataset_group(group).id
        check_name("filter", name)
        self.check_filter(group, expression)
        with self.begin() as conn:
            f = t.filters
            if conn.execute(sa.select(f.c.id).where(f.c.dataset_group_id == group_id, f.c.name == name)).first():
                raise ConfigError(f"dataset group {group!r} already has a filter {name!r}; delete it first or "
                                  "choose another name")
            conn.execute(f.insert().values(dataset_group_id=group_id, name=name, expression=expression,
                                           created_at=_now()))
        return self.get_filter(group, name)

    def check_filter(self, group: str, expression: str) -> Filter:
        """Parse a filter expression and check it against the group's schemas, storing nothing: the check
        :meth:`create_filter` makes (the console runs it as the expression is typed, and before testing an unsaved
        expression).

        Returns
        -------
        Filter
            The parsed filter.

        Raises
        ------
        FilterSyntaxError
            If the expression does not parse (naming the position).
        FilterFieldError
            If it names a field the group's items or users schema lacks (naming the position and the nearest
            field).
        NotFoundError
            If there is no such dataset group.
        """
        return check_filter_fields(expression, self.schema_fields(self.get_dataset_group(group).id))

    def schema_fields(self, group_id: int) -> dict[str, list[str] | None]:
        """The field names of a group's items and users schemas (None for a dataset that has none)."""
        fields: dict[str, list[str] | None] = {}
        for kind in ("items", "users"):
            dataset = self.get_dataset(group_id, kind)
            fields[kind] = None if dataset is None else [str(f["name"]) for f in dataset.schema.get("fields", [])]
        return fields

    def get_filter(self, group: str, name: str) -> dict[str, Any]:
        """A filter by name (NotFoundError listing the group's filters)."""
        for record in self.list_filters(group):
            if record["name"] == name:
                return record
        names = ", ".join(r["name"] for r in self.list_filters(group)) or "(none)"
        raise NotFoundError(f"dataset group {group!r} has no filter {name!r}; its filters: {names}")

    def list_filters(self, group: str) -> list[dict[str, Any]]:
        """A group's filters, by name."""
        group_id = self.get_dataset_group(group).id
        f = t.filters
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(f.c.name, f.c.expression, f.c.created_at)
                                .where(f.c.dataset_group_id == group_id).order_by(f.c.name)).all()
        return [{"dataset_group": group, "name": r.name, "expression": r.expression,
                 "created_at": _utc(r.created_at)} for r in rows]

    def delete_filter(self, group: str, name: str) -> None:
        """Delete a filter (NotFoundError if there is none)."""
        self.get_filter(group, name)
        group_id = self.get_dataset_group(group).id
        with self.begin() as conn:
            conn.execute(t.filters.delete().where(t.filters.c.dataset_group_id == group_id, t.filters.c.name == name))

    # ---------------------------------------------------------------------------------------- campaigns
    def _check_version(self, conn: Connection, group_id: int, group: str, version_id: int) -> None:
        v, s = t.solution_versions, t.solutions
        row = conn.execute(sa.select(v.c.status, s.c.dataset_group_id).join(s, s.c.id == v.c.solution_id)
                           .where(v.c.id == version_id)).first()
        if row is None:
            raise advise(NotFoundError(f"no solution version {version_id}"),
                         Advice("no_solution_version", str(version_id), group=group),
                         "list them with `recsmith solution-versions list`")
        if row.dataset_group_id != group_id:
            raise ConfigError(f"solution version {version_id} belongs to another dataset group than {group!r}")
        if row.status != "ACTIVE":
            raise ConfigError(f"solution version {version_id} is {row.status}, not ACTIVE; only a finished "
                              "training can be deployed")

    def create_campaign(self, group: str, name: str, solution_version_id: int,
                        config: dict[str, Any] | None = None) -> dict[str, Any]:
        """Deploy a solution version of the group as a campaign.

        Raises
        ------
        ConfigError
            If the name is taken or invalid, or the version is not an ACTIVE version of this group.
        NotFoundError
            If the group or the version does not exist.
        """
        group_id = self.get_dataset_group(group).id
        check_name("campaign", name)
        c = t.campaigns
        with self.begin() as conn:
            if conn.execute(sa.select(c.c.id).where(c.c.dataset_group_id == group_id, c.c.name == name)).first():
                raise advise(ConfigError(f"dataset group {group!r} already has a campaign {name!r}"),
                             Advice("campaign_exists", name, group=group),
                             f"switch it to another version with `recsmith campaign update {name} "
                             "--solution-version V`")
            self._check_version(conn, group_id, group, solution_version_id)
            now = _now()
            conn.execute(c.insert().values(dataset_group_id=group_id, name=name,
                                           solution_version_id=solution_version_id,
                                           config=json.dumps(config or {}), created_at=now, updated_at=now))
        return self.get_campaign(group, name)

    def update_campaign(self, group: str, name: str, *, solution_version_id: int | None = None,
                        config: dict[str, Any] | None = None) -> dict[str, Any]:
        """Switch a campaign to another version of its group and/or replace its config."""
        group_id = self.get_dataset_group(group).id
        self.get_campaign(group, name)
        values: dict[str, Any] = {"updated_at": _now()}
        c = t.campaigns
        with self.begin() as conn:
            if solution_version_id is not None:
                self._check_version(conn, group_id, group, solution_version_id)
                values["solution_version_id"] = solution_version_id
            if config is not None:
                values["config"] = json.dumps(config)
            conn.execute(c.update().where(c.c.dataset_group_id == group_id, c.c.name == name).values(**values))
        return self.get_campaign(group, name)

    def _campaigns_query(self) -> sa.Select:
        c, g, v, s = t.campaigns, t.dataset_groups, t.solution_versions, t.solutions
        return (sa.select(c.c.id, g.c.name.label("dataset_group"), c.c.name, c.c.solution_version_id, c.c.config,
                          c.c.created_at, c.c.updated_at, s.c.recipe, s.c.name.label("solution"),
                          v.c.artifact_uri)
                .join(g, g.c.id == c.c.dataset_group_id).join(v, v.c.id == c.c.solution_version_id)
                .join(s, s.c.id == v.c.solution_id).order_by(g.c.name, c.c.name))

    @staticmethod
    def _campaign_dict(row: Any) -> dict[str, Any]:
        out = {key: _utc(value) for key, value in row._mapping.items()}
        out["config"] = json.loads(out["config"] or "{}")
        return out

    def list_campaigns(self, group: str | None = None) -> list[dict[str, Any]]:
        """Campaigns (of one group, or all), with their version's recipe and artifact."""
        query = self._campaigns_query()
        if group is not None:
            query = query.where(t.campaigns.c.dataset_group_id == self.get_dataset_group(group).id)
        with self.engine.connect() as conn:
            return [self._campaign_dict(row) for row in conn.execute(query).all()]

    def get_campaign(self, group: str, name: str) -> dict[str, Any]:
        """A campaign by name (NotFoundError listing the group's campaigns)."""
        campaigns = self.list_campaigns(group)
        for record in campaigns:
            if record["name"] == name:
                return record
        names = ", ".join(r["name"] for r in campaigns) or "(none)"
        raise NotFoundError(f"dataset group {group!r} has no campaign {name!r}; its campaigns: {names}")

    def delete_campaign(self, group: str, name: str) -> None:
        """Delete a campaign (its solution version stays)."""
        record = self.get_campaign(group, name)
        with self.begin() as conn:
            conn.execute(t.campaigns.delete().where(t.campaigns.c.id == record["id"]))

    # ----------------------------------------------------------------------------------------- API keys
    def create_api_key(self, role: str, group: str | None = None, name: str | None = None) -> dict[str, Any]:
        """Make an API key; the returned ``key`` is shown once. Its secret's hash is stored, and the secret sealed
        (:func:`seal_secret`) for AWS Signature Version 4.

        Parameters
        ----------
        role : {"read", "write", "admin"}
            What the key may do.
        group : str, optional
            The dataset group it works on; None: every group.
        name : str, optional
            A label to recognise it by.
        """
        if role not in ROLES:
            raise ConfigError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
        group_id = None if group is None else self.get_dataset_group(group).id
        key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32).replace("_", "-")
        with self.begin() as conn:
            conn.execute(t.api_keys.insert().values(key_id=key_id, secret_hash=hash_secret(secret),
                                                    dataset_group_id=group_id, role=role, name=name,
                                                    created_at=_now(),
                                                    sealed_secret=seal_secret(self.erasure_key, key_id, secret)))
        record = {"key_id": key_id, "role": role, "dataset_group": group, "name": name}
        return record | {"key": f"{KEY_PREFIX}_{key_id}_{secret}"}

    def _keys_query(self) -> sa.Select:
        k, g = t.api_keys, t.dataset_groups
        return (sa.select(k.c.key_id, k.c.secret_hash, k.c.role, k.c.name, k.c.created_at,
                          g.c.name.label("dataset_group"))
                .outerjoin(g, g.c.id == k.c.dataset_group_id).order_by(k.c.id))

    def list_api_keys(self) -> list[dict[str, Any]]:
        """Every key's id, role, group and name (never the secret or its hash)."""
        with self.engine.connect() as conn:
            rows = conn.execute(self._keys_query()).all()
        return [{"key_id": r.key_id, "role": r.role, "dataset_group": r.dataset_group, "name": r.name,
                 "created_at": _utc(r.created_at)} for r in rows]

    def count_api_keys(self) -> int:
        """How many keys exist."""
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(t.api_keys)).scalar_one())

    def signing_key(self, key_id: str) -> dict[str, Any] | None:
        """What AWS Signature Version 4 needs to check a request signed with access key ``key_id``: the key's
        ``{"key_id", "role", "dataset_group", "secret"}``, ``secret`` None for a key made before the secrets were
        sealed (such a key works with ``Authorization: Bearer`` only); None when there is no such key."""
        with self.engine.connect() as conn:
            row = conn.execute(self._keys_query().add_columns(t.api_keys.c.sealed_secret)
                               .where(t.api_keys.c.key_id == key_id)).first()
        if row is None:
            return None
        secret = None if row.sealed_secret is None else unseal_secret(self.erasure_key, key_id, row.sealed_secret)
        return {"key_id": row.key_id, "role": row.role, "dataset_group": row.dataset_group, "secret": secret}

    def verify_api_key(self, key: str) -> dict[str, Any] | None:
        """The key's ``{"key_id", "role", "dataset_group"}`` if ``key`` is a valid key, else None."""
        parts = split_key(key)
        if parts is None:
            return None
        key_id, secret = parts
        with self.engine.connect() as conn:
            row = conn.execute(self._keys_query().where(t.api_keys.c.key_id == key_id)).first()
        if row is None or not hmac.compare_digest(row.secret_hash, hash_secret(secret)):
            return None
        return {"key_id": row.key_id, "role": row.role, "dataset_group": row.dataset_group}

    def delete_api_key(self, key_id: str) -> None:
        """Revoke a key by its id (the part after ``rsk_``)."""
        with self.begin() as conn:  # its console sessions end with it (also where foreign keys are not enforced)
            conn.execute(t.console_sessions.delete().where(t.console_sessions.c.key_id == key_id))
            if conn.execute(t.api_keys.delete().where(t.api_keys.c.key_id == key_id)).rowcount == 0:
                raise NotFoundError(f"no API key {key_id!r}; list them with `recsmith keys list`")
