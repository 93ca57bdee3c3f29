"""What the console's Filters and Try it pages read that no other store method gives: the item fields a response
can carry.

A mixin of :class:`recsmith.store.store.Store` (it uses the store's ``get_dataset_group`` and ``schema_fields``).
"""

from __future__ import annotations


class FiltersRecords:
    """Mixin of :class:`recsmith.store.store.Store`: reads for filters and tries (it uses Store's own
    ``get_dataset_group`` and ``ServingRecords.schema_fields``)."""

    def item_fields(self, group: str) -> list[str]:
        """The fields of a group's items schema, in schema order, without the id: what a filter's ``Items.FIELD``
        may name and a request's ``metadata_columns`` may ask for (empty when the group has no items schema).

        Raises
        ------
        NotFoundError
            If there is no such dataset group.
        """
        group_id = self.get_dataset_group(group).id  # type: ignore[attr-defined]
        fields = self.schema_fields(group_id).get("items") or []  # type: ignore[attr-defined]
        return [name for name in fields if name != "ITEM_ID"]
