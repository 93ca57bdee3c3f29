"""Filter parameter values in both forms callers send: bare, and Amazon Personalize's quoted form ``"A","B"``."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from recsmith.data.filters import (
    FILTER_MAX_VALUES,
    FilterCache,
    FilterValueError,
    ItemCatalog,
    check_filter_values,
    compile_filter,
    parse_filter,
    parse_filter_value,
)
from recsmith.errors import FilterError

ITEMS = ["i1", "i2", "i3", "i4", "i5"]
METADATA: dict[str, dict[str, Any]] = {
    "i1": {"GENRE": "Comedy", "PRICE": 5, "TITLE": 'say "hi"'},
    "i2": {"GENRE": "Comedy|Drama", "PRICE": 12.5, "TITLE": "back\\slash"},
    "i3": {"GENRE": "Drama", "PRICE": 20, "TITLE": "a, b"},
    "i4": {"GENRE": "Science Fiction", "PRICE": "10"},
    "i5": {"GENRE": '"Quoted"', "PRICE": 30},  # a genre that starts with a quote: only the quoted form reaches it
}
GENRE = 'INCLUDE ItemID WHERE Items.GENRE IN ($GENRE)'


@pytest.fixture(scope="module")
def catalog() -> ItemCatalog:
    return ItemCatalog(ITEMS, METADATA)


def allowed(catalog: ItemCatalog, expression: str, values: dict[str, Any]) -> set[str]:
    mask = compile_filter(parse_filter(expression), catalog, values=values)
    return {ITEMS[i] for i in np.flatnonzero(mask)}


PARSED = [
    # (name, value, the values it binds)
    ("quoted single", '"Comedy"', ["Comedy"]),
    ("quoted several", '"Comedy","Drama"', ["Comedy", "Drama"]),
    ("quoted several with spaces", '  "Comedy" ,\t"Drama"  ,  "Science Fiction" ',
     ["Comedy", "Drama", "Science Fiction"]),
    ("spaces inside a quoted value kept", '" Comedy "', [" Comedy "]),
    ("comma inside a quoted value", '"a, b"', ["a, b"]),
    ("escaped quote", r'"say \"hi\""', ['say "hi"']),
    ("escaped backslash", r'"back\\slash"', ["back\\slash"]),
    ("escaped quote as a whole value", r'"\"Quoted\""', ['"Quoted"']),
    ("other backslash kept", r'"a\nb"', ["a\\nb"]),
    ("one empty among values", '"", "Comedy"', ["", "Comedy"]),
    ("bare", "Comedy", ["Comedy"]),
    ("bare keeps its spaces", " Science Fiction ", [" Science Fiction "]),
    ("bare with a quote inside", 'say "hi"', ['say "hi"']),
    ("bare with commas", "Comedy,Drama", ["Comedy,Drama"]),
    ("list", ["Comedy", "Drama"], ["Comedy", "Drama"]),
    ("list elements taken bare", ['"Comedy"', "Drama"], ['"Comedy"', "Drama"]),
    ("empty list", [], []),
    ("tuple", ("Comedy",), ["Comedy"]),
    ("bare number text", "10", ["10"]),
    ("int", 10, [10]),
    ("float", 3.5, [3.5]),
    ("bool", True, [True]),
]


@pytest.mark.parametrize(("value", "expected"), [c[1:] for c in PARSED], ids=[c[0] for c in PARSED])
def test_parse_filter_value(value: Any, expected: list[Any]) -> None:
    assert parse_filter_value(value, "GENRE") == expected


def test_parsing_is_idempotent() -> None:
    for _, value, expected in PARSED:
        assert parse_filter_value(parse_filter_value(value, "GENRE"), "GENRE") == expected


MALFORMED = [
    # (name, value, position, words in the problem)
    ("unterminated", '"Comedy', 0, "unterminated"),
    ("unterminated second", '"Comedy", "Drama', 10, "unterminated"),
    ("escaped closing quote", r'"Comedy\"', 0, "unterminated"),
    ("unterminated after spaces", '   "Comedy', 3, "unterminated"),
    ("no comma between", '"Comedy" "Drama"', 9, "expected ,"),
    ("adjacent", '"Comedy""Drama"', 8, "expected ,"),
    ("text after", '"Comedy" and more', 9, "expected ,"),
    ("trailing comma", '"Comedy",', 8, "trailing comma"),
    ("trailing comma and spaces", '"Comedy" ,  ', 9, "trailing comma"),
    ("bare value after comma", '"Comedy", Drama', 10, "expected a double-quoted value"),
    ("two commas", '"Comedy",,"Drama"', 9, "expected a double-quoted value"),
    ("bare value starting with a quote", '"Weird" Al', 8, "expected ,"),
]


@pytest.mark.parametrize(("value", "position", "problem"), [c[1:] for c in MALFORMED], ids=[c[0] for c in MALFORMED])
def test_malformed_quoted_form_names_parameter_value_and_position(value: str, position: int, problem: str) -> None:
    with pytest.raises(FilterValueError) as info:
        parse_filter_value(value, "GENRE")
    error = info.value
    assert isinstance(error, FilterError)
    assert (error.parameter, error.value, error.position) == ("GENRE", value, position)
    message = str(error)
    assert "$GENRE" in message and f"at position {position}" in message and problem in message, message
    lines = message.splitlines()  # the value, and a caret under the position
    assert lines[1] == f"  {value}" and lines[2] == "  " + " " * position + "^", message


@pytest.mark.parametrize("value", ["", '""', ' "" ', '"",""', [""], ["", ""]])
def test_only_empty_values_are_refused(value: Any) -> None:
    with pytest.raises(FilterValueError, match=r"\$GENRE .*empty"):
        parse_filter_value(value, "GENRE")


ALLOWED = [
    # (name, expression, values, allowed items)
    ("quoted single is the bare value", GENRE, {"GENRE": '"Comedy"'}, {"i1", "i2"}),
    ("bare", GENRE, {"GENRE": "Comedy"}, {"i1", "i2"}),
    ("quoted several is the list", GENRE, {"GENRE": '"Comedy", "Science Fiction"'}, {"i1", "i2", "i4"}),
    ("list", GENRE, {"GENRE": ["Comedy", "Science Fiction"]}, {"i1", "i2", "i4"}),
    ("escaped quotes reach a value holding quotes", GENRE, {"GENRE": r'"\"Quoted\""'}, {"i5"}),
    ("list elements are bare", GENRE, {"GENRE": ['"Quoted"']}, {"i5"}),
    ("escaped quote in an = comparison", 'INCLUDE ItemID WHERE Items.TITLE = $T', {"T": r'"say \"hi\""'}, {"i1"}),
    ("escaped backslash", 'INCLUDE ItemID WHERE Items.TITLE = $T', {"T": r'"back\\slash"'}, {"i2"}),
    ("comma inside a quoted value", 'INCLUDE ItemID WHERE Items.TITLE IN ($T)', {"T": '"a, b"'}, {"i3"}),
    ("bare number text compared", "INCLUDE ItemID WHERE Items.PRICE <= $MAX", {"MAX": "10"}, {"i1", "i4"}),
    ("bare decimal compared", "INCLUDE ItemID WHERE Items.PRICE > $MIN", {"MIN": "12.5"}, {"i3", "i5"}),
    ("quoted number compared", "INCLUDE ItemID WHERE Items.PRICE >= $MIN", {"MIN": '"12.5"'}, {"i2", "i3", "i5"}),
    ("bare number text equal", "INCLUDE ItemID WHERE Items.PRICE IN ($P)", {"P": "10"}, {"i4"}),
    ("number equal", "INCLUDE ItemID WHERE Items.PRICE IN ($P)", {"P": 20}, {"i3"}),
    ("quoted numbers in a list", "INCLUDE ItemID WHERE Items.PRICE IN ($P)", {"P": '"5", "20"'}, {"i1", "i3"}),
    ("quoted in an exclude", "EXCLUDE ItemID WHERE Items.GENRE IN ($G)", {"G": '"Drama"'}, {"i1", "i4", "i5"}),
]


@pytest.mark.parametrize(("expression", "values", "expected"), [c[1:] for c in ALLOWED], ids=[c[0] for c in ALLOWED])
def test_values_bind_in_both_forms(catalog: ItemCatalog, expression: str, values: dict[str, Any],
                                   expected: set[str]) -> None:
    assert allowed(catalog, expression, values) == expected


def test_a_quoted_value_matches_more_than_nothing(catalog: ItemCatalog) -> None:
    # before the quoted form was read, '"Comedy"' was taken with its quotes: no item, silently
    assert allowed(catalog, GENRE, {"GENRE": '"Comedy"'}) == allowed(catalog, GENRE, {"GENRE": "Comedy"}) != set()


@pytest.mark.parametrize("value", ['"Comedy', '"Comedy",', "", '""'])
def test_compile_filter_and_the_cache_refuse_bad_values(catalog: ItemCatalog, value: str) -> None:
    with pytest.raises(FilterValueError, match=r"\$GENRE"):
        compile_filter(GENRE, catalog, values={"GENRE": value})
    with pytest.raises(FilterValueError, match=r"\$GENRE"):
        check_filter_values({"GENRE": value})
    cache = FilterCache()
    with pytest.raises(FilterValueError, match=r"\$GENRE"):
        cache.get(GENRE, catalog, values={"GENRE": value})
    assert len(cache) == 0


def test_a_bad_value_is_refused_even_where_the_parameter_is_unused(catalog: ItemCatalog) -> None:
    with pytest.raises(FilterValueError, match=r"\$OTHER"):
        compile_filter(GENRE, catalog, values={"GENRE": "Comedy", "OTHER": '"x'})


def test_bad_value_in_an_if_condition_is_refused(catalog: ItemCatalog) -> None:
    expression = 'EXCLUDE ItemID WHERE Items.GENRE IN ("Drama") IF CurrentUser.SEGMENT = $SEG'
    assert allowed(catalog, expression, {"SEG": '"kids"'}) == set(ITEMS)  # no user: the part is off
    mask = compile_filter(expression, catalog, values={"SEG": '"kids"'}, user={"SEGMENT": "kids"})
    assert {ITEMS[i] for i in np.flatnonzero(mask)} == {"i1", "i4", "i5"}
    with pytest.raises(FilterValueError, match=r"\$SEG"):
        compile_filter(expression, catalog, values={"SEG": '"kids'}, user={"SEGMENT": "kids"})


def test_quoted_and_bare_forms_share_a_cache_entry(catalog: ItemCatalog) -> None:
    cache = FilterCache()
    bare = cache.get(GENRE, catalog, values={"GENRE": ["Comedy", "Drama"]})
    quoted = cache.get(GENRE, catalog, values={"GENRE": '"Comedy", "Drama"'})
    assert quoted is bare and (cache.hits, cache.misses, len(cache)) == (1, 1, 1)


def test_quoted_values_count_against_the_limit() -> None:
    check_filter_values({"GENRE": ",".join(f'"g{n}"' for n in range(FILTER_MAX_VALUES))})
    with pytest.raises(FilterError, match=rf"\$GENRE holds {FILTER_MAX_VALUES + 1} quoted values"):
        check_filter_values({"GENRE": ",".join(f'"g{n}"' for n in range(FILTER_MAX_VALUES + 1))})
