"""``recsmith recommend`` and ``recsmith similar``: recommendations from a trained solution version, through the
serving pipeline HTTP answers with (the same items, scores, reasons, filters and limits)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from recsmith.cli.app import JsonOption, err, handle_errors, open_store, out, print_json
from recsmith.errors import ConfigError
from recsmith.serving import MAX_RESULTS
from recsmith.settings import Settings

if TYPE_CHECKING:
    from recsmith.data.filters import Filter
    from recsmith.serving.campaign import LoadedCampaign
    from recsmith.store.store import Store

NumOption = Annotated[int, typer.Option(min=1, max=MAX_RESULTS,
                                        help=f"Number of items, 1-{MAX_RESULTS} (HTTP's num_results).")]
FilterOption = Annotated[str | None, typer.Option(
    "--filter", help="A stored filter of the version's dataset group, by name (`recsmith filter create|list`), as "
    "HTTP's \"filter\".")]
FilterExpressionOption = Annotated[str | None, typer.Option(
    "--filter-expression", help="A filter expression applied without storing it, e.g. 'EXCLUDE ItemID WHERE "
    "Items.GENRES IN ($G)' (Personalize grammar).")]
FilterValueOption = Annotated[list[str] | None, typer.Option(
    "--filter-value", help="$PARAM value NAME=VALUE; repeat for several values of one parameter, or write them "
    'in Personalize\'s quoted form: G=\'"Comedy","Drama"\'.')]

_EXPRESSION = re.compile(r"\s*(INCLUDE|EXCLUDE)\s", re.IGNORECASE)


def titled_rows(store: Store, group_id: int, scored: list[tuple[str, float, str]]) -> list[dict[str, Any]]:
    """Result rows (rank, item id, score, reason) with each item's title when its metadata has one; scores as
    HTTP returns them (not rounded)."""
    metadata = store.read_items(group_id, [item_id for item_id, _, _ in scored])
    rows = []
    for rank, (item_id, score, reason) in enumerate(scored, start=1):
        row: dict[str, Any] = {"rank": rank, "item_id": item_id, "score": float(score), "reason": reason}
        title = item_title(metadata.get(item_id))
        if title is not None:
            row["title"] = title
        rows.append(row)
    return rows


def item_title(metadata: dict[str, Any] | None) -> Any:
    """The value of an item's ``title`` field, whatever its case, or None."""
    return next((value for key, value in (metadata or {}).items() if key.lower() == "title"), None)


def request_filter(name: str | None, expression: str | None, values: list[str] | None
                   ) -> tuple[str | Filter | None, dict[str, str | list[str]]]:
    """The filter of ``--filter NAME`` (a stored filter's name, which the pipeline looks up in the version's group
    as HTTP does) or ``--filter-expression EXPR`` (parsed here), and the ``--filter-value`` bindings: a name given
    once binds its value (which may be in Personalize's quoted form, ``G="A","B"``), a name repeated the list of
    its values.

    ``--filter`` given an expression (what it took before; a filter's name holds no spaces, so the two never
    mix up) still applies it, with a note on stderr.

    Raises
    ------
    ConfigError
        Both options, ``--filter-value`` without a filter, or a value not written NAME=VALUE.
    FilterError
        An expression that does not parse (with the position).
    """
    from recsmith.data.filters import parse_filter

    if name is not None and expression is not None:
        raise ConfigError("give one of --filter NAME (a stored filter) and --filter-expression EXPR, not both")
    if name is not None and (_EXPRESSION.match(name) or any(c.isspace() for c in name)):
        err.print("note: --filter takes a stored filter's name (recsmith filter create NAME -g G --expression ...); "
                  "for an expression, write --filter-expression", highlight=False, soft_wrap=True)
        name, expression = None, name
    bound: dict[str, list[str]] = {}
    for pair in values or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--filter-value {pair!r}: write NAME=VALUE, e.g. G=Comedy")
        bound.setdefault(key.strip().lstrip("$"), []).append(value)
    if bound and name is None and expression is None:
        raise ConfigError("--filter-value needs a --filter NAME or --filter-expression EXPR")
    # a name given once is one value, so Personalize's quoted form ('G="Comedy","Drama"') is read as such (as the
    # GET route and the console bind NAME=VALUE texts); a name repeated is a list, each value bare
    bindings = {key: listed[0] if len(listed) == 1 else listed for key, listed in bound.items()}
    return (parse_filter(expression) if expression is not None else name), bindings


def recommendations_for(store: Store, version_id: int, user: str, num: int, *, filter: str | Filter | None = None,
                        filter_values: dict[str, str | list[str]] | None = None) -> list[dict[str, Any]]:
    """Recommendations for one raw user id from a solution version, through the serving pipeline that HTTP
    answers with (live events, deletions, filters, padding, reasons, the 1-500 limit), with item titles when
    known. ``filter`` names a stored filter of the version's group, or is a parsed one (:func:`request_filter`)."""
    from recsmith.serving.campaign import load_version

    deployed = load_version(store, version_id, encryption_key=Settings().encryption_key)
    return answer_rows(store, deployed, num, filter=filter, filter_values=filter_values, user_id=user)


def answer_rows(store: Store, deployed: LoadedCampaign, num: int, *, filter: str | Filter | None = None,
                filter_values: dict[str, str | list[str]] | None = None, **who: str) -> list[dict[str, Any]]:
    """:meth:`CampaignRuntime.answer` for ``who`` (``user_id=`` or ``item_id=``) from a loaded version, as titled
    rows (not written to the served-items ledger: no campaign served them)."""
    from recsmith.serving.campaign import CampaignRuntime

    answer = CampaignRuntime(store).answer(deployed, num_results=num, filter=filter, filter_values=filter_values,
                                           log=False, **who)
    return titled_rows(store, deployed.group_id, [(row["item_id"], row["score"], row["reason"])
                                                  for row in answer["items"]])


@handle_errors
def recommend(
    solution_version: Annotated[int, typer.Option(help="Solution version id (from `recsmith train`).")],
    user: Annotated[str, typer.Option(help="Raw user id.")],
    num: NumOption = 10,
    filter_name: FilterOption = None,
    filter_expression: FilterExpressionOption = None,
    filter_value: FilterValueOption = None,
    as_json: JsonOption = False,
) -> None:
    """Recommend items for a user from a trained solution version: the items, scores and reasons HTTP answers
    a campaign of that version with."""
    chosen, values = request_filter(filter_name, filter_expression, filter_value)
    rows = recommendations_for(open_store(), solution_version, user, num, filter=chosen, filter_values=values)
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
    num: NumOption = 10,
    filter_name: FilterOption = None,
    filter_expression: FilterExpressionOption = None,
    filter_value: FilterValueOption = None,
    as_json: JsonOption = False,
) -> None:
    """Items most similar to an item ("customers who liked this also liked"): HTTP's related items (deleted
    items left out; padded with popular ones, reason "popular", when too few pass the filter)."""
    from recsmith.serving.campaign import load_version

    chosen, values = request_filter(filter_name, filter_expression, filter_value)
    store = open_store()
    deployed = load_version(store, solution_version, encryption_key=Settings().encryption_key)
    model = deployed.model
    if not model.recipe.tags.similar_items:
        raise ConfigError(f"solution version {solution_version} is a {model.recipe.name} model, which has no item "
                          "similarity; train a recipe that has it, such as item-knn, rp3beta, als or bpr")
    model.items.index(item)  # an unknown item is an error here (HTTP answers it with popular items)
    rows = answer_rows(store, deployed, num, filter=chosen, filter_values=values, item_id=item)
    if as_json:
        print_json({"solution_version": solution_version, "item_id": item, "items": rows})
        return
    source_title = item_title(store.read_items(deployed.group_id, [item]).get(item)) or item
    print_recommendations(rows, f"items similar to {source_title} (solution version {solution_version})")
