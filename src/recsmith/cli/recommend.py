"""``recsmith recommend`` and ``recsmith similar``: recommendations from a trained solution version."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from recsmith.cli.app import JsonOption, handle_errors, open_store, out, print_json
from recsmith.errors import ConfigError
from recsmith.settings import Settings

if TYPE_CHECKING:
    from recsmith.store.store import Store


def titled_rows(store: Store, group_id: int, scored: list[tuple[str, float, str]]) -> list[dict[str, Any]]:
    """Result rows (rank, item id, score, reason) with each item's title when its metadata has one."""
    metadata = store.read_items(group_id, [item_id for item_id, _, _ in scored])
    rows = []
    for rank, (item_id, score, reason) in enumerate(scored, start=1):
        row: dict[str, Any] = {"rank": rank, "item_id": item_id, "score": round(float(score), 6), "reason": reason}
        title = item_title(metadata.get(item_id))
        if title is not None:
            row["title"] = title
        rows.append(row)
    return rows


def item_title(metadata: dict[str, Any] | None) -> Any:
    """The value of an item's ``title`` field, whatever its case, or None."""
    return next((value for key, value in (metadata or {}).items() if key.lower() == "title"), None)


def recommendations_for(store: Store, version_id: int, user: str, num: int, *, filter_expression: str | None = None,
                        filter_values: dict[str, list[str]] | None = None) -> list[dict[str, Any]]:
    """Recommendations for one raw user id from a solution version, through the serving pipeline that HTTP
    answers with (live events, deletions, filters, padding, reasons), with item titles when known."""
    from recsmith.data.filters import parse_filter
    from recsmith.serving.campaign import CampaignRuntime, load_version

    deployed = load_version(store, version_id, encryption_key=Settings().encryption_key)
    parsed = None if filter_expression is None else parse_filter(filter_expression)
    answer = CampaignRuntime(store).answer(deployed, user_id=user, num_results=num, filter=parsed,
                                           filter_values=filter_values, log=False)
    return titled_rows(store, deployed.group_id,
                       [(item["item_id"], item["score"], item["reason"]) for item in answer["items"]])


@handle_errors
def recommend(
    solution_version: Annotated[int, typer.Option(help="Solution version id (from `recsmith train`).")],
    user: Annotated[str, typer.Option(help="Raw user id.")],
    num: Annotated[int, typer.Option(help="Number of items.")] = 10,
    filter_expression: Annotated[str | None, typer.Option(
        "--filter", help='A filter, e.g. \'EXCLUDE ItemID WHERE Items.GENRES IN ($G)\' (Personalize grammar).')] = None,
    filter_value: Annotated[list[str] | None, typer.Option(
        "--filter-value", help="$PARAM value NAME=VALUE; repeat for several values of one parameter.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Recommend items for a user from a trained solution version."""
    values: dict[str, list[str]] = {}
    for pair in filter_value or []:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"--filter-value {pair!r}: write NAME=VALUE, e.g. G=Comedy")
        values.setdefault(name.strip().lstrip("$"), []).append(value)
    if values and filter_expression is None:
        raise ConfigError("--filter-value needs a --filter")
    rows = recommendations_for(open_store(), solution_version, user, num, filter_expression=filter_expression,
                               filter_values=values)
    if as_json:
        print_json({"solution_version": solution_version, "user_id": user, "items": rows})
        return
    print_recommendations(rows, f"top {num} for user {user} (solution version {solution_version})")


def print_recommendations(rows: list[dict[str, Any]], title: str) -> None:
    """The recommendations table."""
    table = Table("#", "item", "title", "score", "reason", title=title)
    for row in rows:
        table.add_row(str(row["rank"]), row["item_id"], row.get("title", ""), f"{row['score']:.4f}", row["reason"])
    out.print(table)


@handle_errors
def similar(
    solution_version: Annotated[int, typer.Option(help="Solution version id of a recipe with item similarity.")],
    item: Annotated[str, typer.Option(help="Raw item id.")],
    num: Annotated[int, typer.Option(help="Number of items.")] = 10,
    as_json: JsonOption = False,
) -> None:
    """Items most similar to an item ("customers who liked this also liked"), through the serving pipeline
    that HTTP's related items answer with (deleted items left out)."""
    from recsmith.serving.campaign import CampaignRuntime, load_version

    store = open_store()
    deployed = load_version(store, solution_version, encryption_key=Settings().encryption_key)
    model = deployed.model
    if not model.recipe.tags.similar_items:
        raise ConfigError(f"solution version {solution_version} is a {model.recipe.name} model, which has no item "
                          "similarity; train a recipe that has it, such as item-knn, rp3beta, als or bpr")
    model.items.index(item)  # an unknown item is an error here (HTTP pads with popular ones)
    answer = CampaignRuntime(store).answer(deployed, item_id=item, num_results=num, log=False)
    rows = titled_rows(store, deployed.group_id, [(row["item_id"], row["score"], row["reason"])
                                                  for row in answer["items"] if row["reason"].startswith("similar")])
    if as_json:
        print_json({"solution_version": solution_version, "item_id": item, "items": rows})
        return
    source_title = item_title(store.read_items(deployed.group_id, [item]).get(item)) or item
    print_recommendations(rows, f"items similar to {source_title} (solution version {solution_version})")
