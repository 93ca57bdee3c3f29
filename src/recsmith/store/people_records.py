"""Users and items as the console looks them up: id prefix search, a user's interactions page by page, and
interaction counts.

A mixin of :class:`recsmith.store.store.Store` (it uses the store's ``engine`` and ``is_sqlite``). A group's
users are those with interactions or a user record, its items those with interactions or an item record (as
:meth:`~recsmith.store.store.Store.present_users` counts them).

Cost: user searches and a user's interactions read the ``(dataset_group_id, user_id)`` index of
``interactions`` and the primary keys of ``users`` and ``items``. Interactions have no index by item, so an item
search and an item's count read the group's interactions once (~10 ms for 100,000 rows on SQLite).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

import sqlalchemy as sa

from recsmith.store import tables as t

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

SEARCH_LIMIT = 20
"""How many ids a search returns unless told otherwise."""
MAX_SEARCH_LIMIT = 200
MAX_PAGE = 500
"""The most interactions one page returns."""
_LAST_CODE_POINT = 0x10FFFF
_SURROGATES = range(0xD800, 0xE000)


class IdMatch(NamedTuple):
    """One id a search found: its interactions in the group and whether it has a user or item record."""

    id: str
    interactions: int
    has_record: bool


def _next_prefix(prefix: str) -> str | None:
    """The smallest string greater than every string that starts with ``prefix`` (code point order, which is
    SQLite's BINARY collation of UTF-8 text); None when there is none (the prefix is all U+10FFFF)."""
    for end in range(len(prefix) - 1, -1, -1):
        code = ord(prefix[end]) + 1
        if code in _SURROGATES:
            code = _SURROGATES.stop
        if code <= _LAST_CODE_POINT:
            return prefix[:end] + chr(code)
    return None


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class PeopleRecords:
    """Mixin of :class:`recsmith.store.store.Store`: users and items looked up by id for the console."""

    engine: Engine
    is_sqlite: bool

    def _starts_with(self, column: sa.ColumnElement[str], prefix: str) -> sa.ColumnElement[bool]:
        """``column`` starts with ``prefix``, written so the index on ``column`` serves it: a range on SQLite
        (exact for its BINARY collation), ``LIKE 'prefix%'`` on PostgreSQL (an index range under the C collation,
        a scan of the group's index entries under others, correct under every collation)."""
        if not self.is_sqlite:
            return column.like(_escape_like(prefix) + "%", escape="\\")
        upper = _next_prefix(prefix)
        lower = column >= prefix
        return lower if upper is None else sa.and_(lower, column < upper)

    def _search(self, records: sa.Table, column: str, group_id: int, prefix: str, limit: int) -> list[IdMatch]:
        """The first ``limit`` ids (in code point order) of the group's interactions and ``records`` that start
        with ``prefix``: each source's first ``limit`` from the database, merged."""
        if not prefix:
            return []
        limit = max(1, min(int(limit), MAX_SEARCH_LIMIT))
        i = t.interactions
        key = i.c[column]
        counted = (sa.select(key, sa.func.count())
                   .where(i.c.dataset_group_id == group_id, self._starts_with(key, prefix))
                   .group_by(key).order_by(key).limit(limit))
        own = records.c[column]
        listed = (sa.select(own).where(records.c.dataset_group_id == group_id, self._starts_with(own, prefix))
                  .order_by(own).limit(limit))
        with self.engine.connect() as conn:
            counts = {str(row[0]): int(row[1]) for row in conn.execute(counted)}
            with_record = {str(value) for value in conn.execute(listed).scalars()}
            first = sorted(counts.keys() | with_record)[:limit]
            missing = [name for name in first if name in with_record and name not in counts]
            if missing and len(counts) >= limit and not self.is_sqlite:
                # under a collation other than code point order the first query's limit may cut off a record's
                # id that has interactions (on SQLite, and with fewer matches than the limit, it cannot)
                counts.update(self._counts(conn, key, group_id, missing))
        return [IdMatch(name, counts.get(name, 0), name in with_record) for name in first]

    @staticmethod
    def _counts(conn: Any, key: sa.Column, group_id: int, ids: list[str]) -> dict[str, int]:
        i = t.interactions
        rows = conn.execute(sa.select(key, sa.func.count())
                            .where(i.c.dataset_group_id == group_id, key.in_(ids)).group_by(key))
        return {str(row[0]): int(row[1]) for row in rows}

    def search_users(self, group_id: int, prefix: str, limit: int = SEARCH_LIMIT) -> list[IdMatch]:
        """The group's users whose id starts with ``prefix`` (an exact id first: it sorts before its extensions).

        Parameters
        ----------
        group_id : int
            The dataset group.
        prefix : str
            The start of the id (case-sensitive); empty finds nothing.
        limit : int
            At most this many (1 to 200).

        Returns
        -------
        list of IdMatch
            In code point order of the id, with each user's number of interactions and whether they have a user
            record.
        """
        return self._search(t.users, "user_id", group_id, prefix, limit)

    def search_items(self, group_id: int, prefix: str, limit: int = SEARCH_LIMIT) -> list[IdMatch]:
        """The group's items whose id starts with ``prefix``: :meth:`search_users` for items (those with
        interactions or an item record)."""
        return self._search(t.items, "item_id", group_id, prefix, limit)

    def user_interactions(self, group_id: int, user_id: str, *, offset: int = 0,
                          limit: int = 50) -> list[dict[str, Any]]:
        """A page of a user's stored interactions, newest first (by timestamp, then the order stored).

        Returns
        -------
        list of dict
            ``{"item_id", "event_type", "event_value", "timestamp", "session_id", "recommendation_id"}``; at most
            ``limit`` (up to 500) from position ``offset``.
        """
        i = t.interactions
        query = (sa.select(i.c.item_id, i.c.event_type, i.c.event_value, i.c.timestamp, i.c.session_id,
                           i.c.recommendation_id)
                 .where(i.c.dataset_group_id == group_id, i.c.user_id == user_id)
                 .order_by(i.c.timestamp.desc(), i.c.id.desc())
                 .offset(max(0, int(offset))).limit(max(1, min(int(limit), MAX_PAGE))))
        with self.engine.connect() as conn:
            return [{**row._mapping, "timestamp": int(row.timestamp)} for row in conn.execute(query)]

    def count_user_interactions(self, group_id: int, user_id: str) -> int:
        """How many interactions the group stores for the user (reads the user's index entries)."""
        i = t.interactions
        return self._count_where(i.c.dataset_group_id == group_id, i.c.user_id == user_id)

    def count_item_interactions(self, group_id: int, item_id: str) -> int:
        """How many interactions the group stores for the item (reads the group's interactions: there is no
        index by item)."""
        i = t.interactions
        return self._count_where(i.c.dataset_group_id == group_id, i.c.item_id == item_id)

    def _count_where(self, *conditions: sa.ColumnElement[bool]) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(t.interactions)
                                    .where(*conditions)).scalar_one())
