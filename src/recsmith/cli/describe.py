"""``recsmith describe``: what a dataset group holds."""

from __future__ import annotations

import time

from rich.table import Table

from recsmith.cli.app import GroupOption, JsonOption, handle_errors, open_store, out, print_json


@handle_errors
def describe(group: GroupOption, as_json: JsonOption = False) -> None:
    """Counts of users, items and interactions, event types, time range and sparsity."""
    store = open_store()
    stats = store.describe(store.get_dataset_group(group).id)
    if as_json:
        print_json(stats)
        return
    table = Table(title=f"dataset group {group}", show_header=False)
    for key, value in stats.items():
        if key == "event_types":
            value = ", ".join(f"{k or '(none)'}: {v:,}" for k, v in value.items()) or "(none)"
        elif key.endswith("timestamp") and value is not None:
            value = f"{value} ({time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(value))} UTC)"
        elif key == "sparsity" and value is not None:
            value = f"{value:.4%}"
        elif isinstance(value, int):
            value = f"{value:,}"
        table.add_row(key.replace("_", " "), str(value))
    out.print(table)
