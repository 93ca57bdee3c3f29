"""Personalize filter expressions: parsing, compiling to item masks, binding, errors and the mask cache."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from recsmith.data.filters import (
    Condition,
    FilterCache,
    FilterSyntaxError,
    ItemCatalog,
    Literal,
    compile_filter,
    parse_filter,
)
from recsmith.data.vocabulary import Vocabulary
from recsmith.errors import FilterError, UnknownIdError

ITEMS = ["i1", "i2", "i3", "i4", "i5", "i6", "i7", "i8"]
METADATA: dict[str, dict[str, Any]] = {
    "i1": {"GENRE": "Comedy", "PRICE": 5, "KIDS": "true"},
    "i2": {"GENRE": "Comedy|Drama", "PRICE": 12.5, "KIDS": "false"},
    "i3": {"GENRE": "Drama", "PRICE": 20, "STUDIO": "A"},
    "i4": {"GENRE": "Horror", "PRICE": 8.0, "STUDIO": "B"},
    "i5": {"GENRE": "Horror|Comedy", "PRICE": 30, "STUDIO": "A"},
    "i6": {"GENRE": "Action", "PRICE": "15", "KIDS": True},  # a number written as text, a real bool
    "i7": {"GENRE": None, "PRICE": 10},  # no genre
    # i8 has no metadata at all
}
ALL = set(ITEMS)
CLICKS = {"click": {0, 3}, "purchase": {1}}  # dense indices: i1, i4 clicked; i2 bought


@pytest.fixture(scope="module")
def catalog() -> ItemCatalog:
    return ItemCatalog(Vocabulary(ITEMS), METADATA)


def allowed(catalog: ItemCatalog, expression: str, **request: Any) -> set[str]:
    mask = compile_filter(parse_filter(expression), catalog, **request)
    assert mask.dtype == bool and mask.shape == (len(ITEMS),)
    return {ITEMS[i] for i in np.flatnonzero(mask)}


W = "INCLUDE ItemID WHERE "
X = "EXCLUDE ItemID WHERE "
CASES = [
    # (name, expression, request kwargs, allowed raw ids)
    ("in", W + 'Items.GENRE IN ("Drama")', {}, {"i2", "i3"}),
    ("in-several", W + 'Items.GENRE IN ("Drama", "Action")', {}, {"i2", "i3", "i6"}),
    ("multi-valued categorical", W + 'Items.GENRE IN ("Horror")', {}, {"i4", "i5"}),
    ("not-in (missing field fails)", W + 'Items.GENRE NOT IN ("Comedy")', {}, {"i3", "i4", "i6"}),
    ("exclude-in", X + 'Items.GENRE IN ("Comedy")', {}, ALL - {"i1", "i2", "i5"}),
    ("equals", W + 'Items.STUDIO = "A"', {}, {"i3", "i5"}),
    ("less", W + "Items.PRICE < 10", {}, {"i1", "i4"}),
    ("greater (numeric, not text)", W + "Items.PRICE > 12", {}, {"i2", "i3", "i5", "i6"}),
    ("less-equal", W + "Items.PRICE <= 10", {}, {"i1", "i4", "i7"}),
    ("greater-equal", W + "Items.PRICE >= 20", {}, {"i3", "i5"}),
    ("number in list", W + "Items.PRICE IN (5, 8)", {}, {"i1", "i4"}),
    ("string literal vs number field", W + 'Items.PRICE = "20"', {}, {"i3"}),
    ("number literal vs text number", W + "Items.PRICE = 15", {}, {"i6"}),
    ("boolean as text", W + 'Items.KIDS = "true"', {}, {"i1", "i6"}),
    ("and", W + 'Items.GENRE IN ("Comedy") AND Items.PRICE > 10', {}, {"i2", "i5"}),
    ("or", W + 'Items.GENRE IN ("Action") OR Items.STUDIO = "B"', {}, {"i4", "i6"}),
    ("and binds tighter than or",
     W + 'Items.GENRE IN ("Action") OR Items.GENRE IN ("Comedy") AND Items.PRICE > 20', {}, {"i5", "i6"}),
    ("parentheses",
     W + '(Items.GENRE IN ("Action") OR Items.GENRE IN ("Comedy")) AND Items.PRICE > 20', {}, {"i5"}),
    ("case-insensitive keywords",
     'include itemid where items.GENRE in ("Drama") | exclude ItemId Where ITEMS.PRICE >= 20', {}, {"i2"}),
    ("interactions include", W + 'Interactions.EVENT_TYPE IN ("click")', {"interactions": CLICKS}, {"i1", "i4"}),
    ("interactions exclude", X + 'Interactions.EVENT_TYPE IN ("click", "purchase")', {"interactions": CLICKS},
     ALL - {"i1", "i2", "i4"}),
    ("interactions, no history", X + 'Interactions.EVENT_TYPE IN ("click")', {}, ALL),
    ("interactions by parameter", X + "Interactions.EVENT_TYPE IN ($EVENTS)",
     {"interactions": CLICKS, "values": {"EVENTS": ["purchase"]}}, ALL - {"i2"}),
    ("param list", W + "Items.GENRE IN ($G)", {"values": {"G": ["Drama", "Action"]}}, {"i2", "i3", "i6"}),
    ("param bare", W + "Items.GENRE IN $G", {"values": {"G": "Horror"}}, {"i4", "i5"}),
    ("param text compared as number", W + "Items.PRICE <= $MAX", {"values": {"MAX": "10"}}, {"i1", "i4", "i7"}),
    ("param omitted in exclude disables that part",
     W + 'Items.PRICE < 25 | EXCLUDE ItemID WHERE Items.GENRE IN ($G)', {}, ALL - {"i5", "i8"}),
    ("param bound in exclude", W + 'Items.PRICE < 25 | EXCLUDE ItemID WHERE Items.GENRE IN ($G)',
     {"values": {"G": ["Comedy"]}}, {"i3", "i4", "i6", "i7"}),
    ("param bound to empty list matches nothing", X + "Items.GENRE IN ($G)", {"values": {"G": []}}, ALL),
    ("if true", X + 'Items.GENRE IN ("Horror") IF CurrentUser.AGE < 18', {"user": {"AGE": 12}}, ALL - {"i4", "i5"}),
    ("if false", X + 'Items.GENRE IN ("Horror") IF CurrentUser.AGE < 18', {"user": {"AGE": 30}}, ALL),
    ("if, no user metadata", X + 'Items.GENRE IN ("Horror") IF CurrentUser.AGE < 18', {}, ALL),
    ("if with parameter, holds", W + 'Items.KIDS = "true" IF CurrentUser.SEGMENT = $SEG',
     {"user": {"SEGMENT": "kids"}, "values": {"SEG": "kids"}}, {"i1", "i6"}),
    ("if with parameter, fails: include part inactive", W + 'Items.KIDS = "true" IF CurrentUser.SEGMENT = $SEG',
     {"user": {"SEGMENT": "adult"}, "values": {"SEG": "kids"}}, ALL),
    ("if extended with and", X + 'Items.GENRE IN ("Horror") IF CurrentUser.AGE < 18 AND CurrentUser.COUNTRY = "FR"',
     {"user": {"AGE": 12, "COUNTRY": "DE"}}, ALL),
    ("if param omitted in exclude", X + 'Items.GENRE IN ("Horror") IF CurrentUser.AGE = $AGE',
     {"user": {"AGE": 12}}, ALL),
    ("current item in list", W + "Items.GENRE IN (CurrentItem.GENRE)", {"current_item": "i2"},
     {"i1", "i2", "i3", "i5"}),
    ("current item bare and compared (guide example)",
     W + "Items.PRICE < CurrentItem.PRICE AND Items.GENRE IN CurrentItem.GENRE", {"current_item": "i5"},
     {"i1", "i2", "i4"}),
    ("current item lacks the field", W + "Items.GENRE IN (CurrentItem.GENRE)", {"current_item": "i8"}, set()),
    ("include | exclude", W + 'Items.GENRE IN ("Comedy") | EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("click")',
     {"interactions": CLICKS}, {"i2", "i5"}),
    ("include | include is a union",
     W + 'Items.GENRE IN ("Action") | INCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("click")',
     {"interactions": CLICKS}, {"i1", "i4", "i6"}),
    ("exclude | exclude is a union", X + 'Items.GENRE IN ("Comedy") | EXCLUDE ItemID WHERE Items.PRICE < 10', {},
     {"i3", "i6", "i7", "i8"}),
    ("(A or B) - (C or D), any order",
     X + 'Items.PRICE > 25 | INCLUDE ItemID WHERE Items.GENRE IN ("Comedy") | EXCLUDE ItemID WHERE Items.STUDIO = "A"'
     ' | INCLUDE ItemID WHERE Items.GENRE IN ("Horror")', {}, {"i1", "i2", "i4"}),
]


@pytest.mark.parametrize(("expression", "request_", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_allowed_items(catalog: ItemCatalog, expression: str, request_: dict[str, Any], expected: set[str]) -> None:
    assert allowed(catalog, expression, **request_) == expected


def test_raw_id_list_and_string_expression_are_accepted() -> None:
    catalog = ItemCatalog(ITEMS, METADATA)
    assert compile_filter('INCLUDE ItemID WHERE Items.STUDIO = "B"', catalog).tolist() == [
        False, False, False, True, False, False, False, False]


def test_include_parameter_omitted_is_an_error(catalog: ItemCatalog) -> None:
    with pytest.raises(FilterError, match=r"\$GENRE"):
        compile_filter(parse_filter(W + "Items.GENRE IN ($GENRE)"), catalog)
    with pytest.raises(FilterError, match=r"\$SEG"):  # a parameter of the IF condition counts too
        compile_filter(parse_filter(W + 'Items.KIDS = "true" IF CurrentUser.SEGMENT = $SEG'), catalog,
                       user={"SEGMENT": "kids"})


def test_values_are_data_not_text(catalog: ItemCatalog) -> None:
    evil = '") OR Items.PRICE > 0 OR Items.GENRE IN ("'
    assert allowed(catalog, W + "Items.GENRE IN ($G)", values={"G": evil}) == set()


@pytest.mark.parametrize(("request_", "error", "match"), [
    ({}, FilterError, "current_item"),
    ({"current_item": "nope"}, UnknownIdError, "nope"),
])
def test_current_item_errors(catalog: ItemCatalog, request_: dict[str, Any], error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        compile_filter(parse_filter(W + "Items.GENRE IN (CurrentItem.GENRE)"), catalog, **request_)


@pytest.mark.parametrize(("expression", "values", "match"), [
    (W + 'Items.NOPE IN ("a")', {}, "Items.NOPE"),
    (W + "Items.PRICE < $MAX", {"MAX": "cheap"}, "not a number"),
    (W + "Items.PRICE < $MAX", {"MAX": [1, 2]}, "one value"),
])
def test_compile_errors(catalog: ItemCatalog, expression: str, values: dict[str, Any], match: str) -> None:
    with pytest.raises(FilterError, match=match):
        compile_filter(parse_filter(expression), catalog, values=values)


MALFORMED = [
    # (name, expression, position, fragment of the message)
    ("empty", "", 0, "expected INCLUDE or EXCLUDE"),
    ("no include/exclude", 'ItemID WHERE Items.GENRE IN ("a")', 0, "expected INCLUDE or EXCLUDE"),
    ("missing WHERE", 'INCLUDE ItemID Items.GENRE IN ("a")', 15, "expected WHERE after ItemID"),
    ("user filter", 'INCLUDE UserID WHERE Users.AGE IN ("a")', 8, "only ItemID"),
    ("Users not allowed", 'INCLUDE ItemID WHERE Users.AGE IN ("a")', 21, "unknown element Users.AGE"),
    ("CurrentUser in WHERE", 'INCLUDE ItemID WHERE CurrentUser.AGE = 3', 21, "only be used after IF"),
    ("CurrentItem on the left", 'INCLUDE ItemID WHERE CurrentItem.GENRE IN ("a")', 21, "right-hand side"),
    ("unclosed value list", 'INCLUDE ItemID WHERE Items.GENRE IN ("a"', 40, "expected , or )"),
    ("unclosed group", 'INCLUDE ItemID WHERE (Items.GENRE IN ("a")', 42, "expected ) to close the ( at position 21"),
    ("unclosed quote", 'INCLUDE ItemID WHERE Items.GENRE IN ("a)', 37, "unterminated string"),
    ("empty IN list", "INCLUDE ItemID WHERE Items.GENRE IN ()", 37, "at least one value"),
    ("IN without list", 'INCLUDE ItemID WHERE Items.GENRE IN "a"', 36, "expected ( and a list"),
    ("trailing garbage", 'INCLUDE ItemID WHERE Items.GENRE IN ("a") foo', 42, "expected | or the end"),
    ("trailing pipe", 'INCLUDE ItemID WHERE Items.GENRE IN ("a") |', 43, "expected INCLUDE or EXCLUDE"),
    ("bad operator !=", 'INCLUDE ItemID WHERE Items.GENRE != "a"', 33,
     "expected IN, NOT IN or a comparison (=, <, >, <=, >=) after Items.GENRE"),
    ("bad operator LIKE", 'INCLUDE ItemID WHERE Items.GENRE LIKE "a"', 33, "expected IN, NOT IN or a comparison"),
    ("NOT without IN", 'INCLUDE ItemID WHERE Items.GENRE NOT ("a")', 37, "expected IN after NOT"),
    ("$ without a name", "INCLUDE ItemID WHERE Items.GENRE IN ($)", 37, "parameter name after $"),
    ("missing field name", "INCLUDE ItemID WHERE Items. = 3", 28, "field name after Items."),
    ("missing value", "INCLUDE ItemID WHERE Items.PRICE <", 34, "expected a value"),
    ("unexpected character", "INCLUDE ItemID WHERE Items.PRICE < @", 35, "unexpected character '@'"),
    ("mixed datasets", 'INCLUDE ItemID WHERE Items.GENRE IN ("a") AND Interactions.EVENT_TYPE IN ("click")', 46,
     "dataset of the first condition (Items)"),
    ("interactions field", 'EXCLUDE ItemID WHERE Interactions.TIMESTAMP IN ("1")', 21,
     "only be filtered by EVENT_TYPE"),
    ("interactions operator", 'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE NOT IN ("a")', 21, "supports only IN"),
    ("IF needs CurrentUser", 'EXCLUDE ItemID WHERE Items.GENRE IN ("a") IF Items.AGE = 3', 45, "CurrentUser.FIELD"),
    ("CurrentItem in IF", 'EXCLUDE ItemID WHERE Items.GENRE IN ("a") IF CurrentUser.G = CurrentItem.G', 61,
     "only be compared with Items"),
]


@pytest.mark.parametrize(("expression", "position", "fragment"), [m[1:] for m in MALFORMED],
                         ids=[m[0] for m in MALFORMED])
def test_malformed_expressions(expression: str, position: int, fragment: str) -> None:
    with pytest.raises(FilterError) as caught:
        parse_filter(expression)
    error = caught.value
    assert isinstance(error, FilterSyntaxError) and isinstance(error, ValueError)
    assert error.position == position
    message = str(error)
    assert fragment in message and f"at position {position}" in message
    assert message.splitlines()[-1] == "  " + " " * position + "^"  # the caret sits under the problem


ROUND_TRIP = [
    'INCLUDE ItemID WHERE Items.GENRE IN ("Comedy", "Drama")',
    'exclude itemid where items.GENRE not in ($G)   AND Items.PRICE>=-2.5 if currentuser.AGE < 18 and '
    'CurrentUser.TIER IN ("gold", $T)',
    'INCLUDE ItemID WHERE (Items.A = "x" OR Items.B = 1) AND Items.C IN CurrentItem.C | '
    'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("click", $EV)',
    'INCLUDE ItemID WHERE Items.A = "x" OR Items.B = 1 AND Items.C < CurrentItem.C',
    r'INCLUDE ItemID WHERE Items.TITLE = "say \"hi\" \\ bye"',
]


@pytest.mark.parametrize("expression", ROUND_TRIP)
def test_round_trip(expression: str) -> None:
    parsed = parse_filter(expression)
    printed = str(parsed)
    assert parse_filter(printed) == parsed
    assert str(parse_filter(printed)) == printed


def test_ast_and_parameters() -> None:
    parsed = parse_filter(X + 'Items.GENRE IN ($G, "x") IF CurrentUser.AGE = $AGE | '
                          'INCLUDE ItemID WHERE Items.PRICE < $MAX AND Items.GENRE IN ($G)')
    assert parsed.parameters == ("G", "AGE", "MAX")
    assert parsed.expressions[1].parameters == ("MAX", "G")
    first = parsed.expressions[0].where
    assert isinstance(first, Condition) and first.values[1] == Literal("x") and first.op == "IN"
    assert parsed.user_fields == ("AGE",) and not parsed.uses_interactions
    with pytest.raises(AttributeError):  # immutable
        parsed.expressions = ()  # type: ignore[misc]
    assert str(parse_filter(W + "Items.GENRE IN CurrentItem.GENRE")) == W + "Items.GENRE IN CurrentItem.GENRE"


def test_cache_reuses_masks_for_equal_keys(catalog: ItemCatalog) -> None:
    cache = FilterCache(maxsize=2)
    text = W + "Items.GENRE IN ($G) | EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ($EV)"
    first = cache.get(text, catalog, values={"G": ["Comedy"], "EV": "click"}, interactions=CLICKS)
    variant = "include itemid where Items.GENRE in ($G)|exclude itemid where Interactions.EVENT_TYPE in ($EV)"
    history = {"click": [3, 0], "purchase": [1]}
    again = cache.get(parse_filter(variant), catalog, values={"G": ("Comedy",), "EV": ["click"]}, interactions=history)
    assert again is first and cache.hits == 1  # same canonical text, values and history
    assert {ITEMS[i] for i in np.flatnonzero(first)} == {"i2", "i5"}
    assert not first.flags.writeable
    other = cache.get(text, catalog, values={"G": ["Drama"], "EV": "click"}, interactions=CLICKS)
    assert other is not first and {ITEMS[i] for i in np.flatnonzero(other)} == {"i2", "i3"}
    history = cache.get(text, catalog, values={"G": ["Comedy"], "EV": "click"}, interactions={"click": {1}})
    assert history is not first and {ITEMS[i] for i in np.flatnonzero(history)} == {"i1", "i5"}
    assert len(cache) == 2  # LRU bound
    user = W + 'Items.KIDS = "true" IF CurrentUser.SEGMENT = "kids"'
    kid = cache.get(user, catalog, user={"SEGMENT": "kids", "NAME": "a"})
    assert cache.get(user, catalog, user={"SEGMENT": "kids", "NAME": "b"}) is kid  # only referenced fields count
    assert cache.get(user, catalog, user={"SEGMENT": "adult"}) is not kid
    cache.clear()
    assert len(cache) == 0


def test_cache_distinguishes_catalogues() -> None:
    cache = FilterCache()
    a, b = ItemCatalog(ITEMS, METADATA), ItemCatalog(ITEMS, METADATA)
    text = W + 'Items.STUDIO = "A"'
    assert cache.get(text, a) is not cache.get(text, b)


def test_a_large_catalogue_compiles_to_the_right_mask() -> None:
    rng = np.random.default_rng(0)
    n = 100_000
    genres = np.array(["Comedy", "Drama", "Horror", "Action", "Comedy|Drama", "Horror|Comedy"])
    ids = [f"item{i}" for i in range(n)]
    picks, prices = rng.integers(0, len(genres), n), rng.uniform(1, 100, n)
    metadata = {ids[i]: {"GENRE": genres[picks[i]], "PRICE": float(prices[i])} for i in range(n)}
    catalog = ItemCatalog(ids, metadata)
    history = {"click": set(rng.integers(0, n, 200).tolist())}
    expression = parse_filter(W + 'Items.GENRE IN ($G) AND Items.PRICE < 50 OR Items.GENRE = "Action" '
                              '| EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("click")')
    mask = compile_filter(expression, catalog, values={"G": ["Comedy", "Horror"]}, interactions=history)
    comedy_or_horror = np.isin(picks, [0, 2, 4, 5])
    expected = (comedy_or_horror & (prices < 50)) | (picks == 3)
    expected[list(history["click"])] = False
    assert np.array_equal(mask, expected)
