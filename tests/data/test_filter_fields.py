"""check_filter_fields: a filter naming a field its group's schemas lack is refused at the field, with the nearest
name; and errors about filter values give advice in Python's terms."""

from __future__ import annotations

import pytest

from recsmith.data.filters import (
    FilterFieldError,
    FilterSyntaxError,
    ItemCatalog,
    check_filter_fields,
    compile_filter,
    error_span,
    parse_filter,
)
from recsmith.errors import Advice, FilterError, reworded

FIELDS = {"items": ["ITEM_ID", "GENRES", "PRICE"], "users": ["USER_ID", "TIER"]}


@pytest.mark.parametrize(("expression", "field", "suggestion"), [
    ("INCLUDE ItemID WHERE Items.GENRE IN ($G)", "GENRE", "GENRES"),
    ("INCLUDE ItemID WHERE Items .  genres IN ($G)", "genres", "GENRES"),  # field names keep their case
    ('EXCLUDE ItemID WHERE Items.GENRES IN ("x") AND Items.NOPE > 1', "NOPE", None),
    ("INCLUDE ItemID WHERE Items.PRICE < CurrentItem.PRICES", "PRICES", "PRICE"),
    ('INCLUDE ItemID WHERE Items.PRICE < 3 IF CurrentUser.TEIR = "gold"', "TEIR", "TIER"),
    ('EXCLUDE ItemID WHERE Items.PRICE > 9 | INCLUDE ItemID WHERE Items.GENRE IN ("x")', "GENRE", "GENRES"),
])
def test_an_unknown_field_is_refused_where_it_is_written(expression, field, suggestion):
    with pytest.raises(FilterFieldError) as info:
        check_filter_fields(expression, FIELDS)
    error = info.value
    position = expression.rindex(field)  # each case names its wrong field once
    assert (error.position, error.field, error.suggestion) == (position, field, suggestion)
    assert f"at position {position}\n  {expression}\n  {' ' * position}^" in str(error)
    assert (f"did you mean {suggestion}?" in str(error)) == (suggestion is not None)


def test_known_and_reserved_fields_pass_and_ids_do_not():
    text = ('EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("click") | INCLUDE ItemID WHERE Items.GENRES IN '
            'CurrentItem.GENRES IF CurrentUser.TIER = "gold"')
    assert str(check_filter_fields(text, FIELDS)).startswith("EXCLUDE ItemID WHERE Interactions.EVENT_TYPE")
    assert check_filter_fields('EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("x")', {"items": None,
                                                                                        "users": None})
    with pytest.raises(FilterFieldError, match="cannot filter on the item id Items.ITEM_ID"):
        check_filter_fields('EXCLUDE ItemID WHERE Items.ITEM_ID IN ("1")', FIELDS)
    with pytest.raises(FilterFieldError, match="no users schema yet"):
        check_filter_fields('INCLUDE ItemID WHERE Items.PRICE < 3 IF CurrentUser.TIER = "gold"',
                            {"items": FIELDS["items"], "users": None})


def test_a_missing_filter_value_is_advised_in_python_terms_and_reworded_by_others():
    catalog = ItemCatalog(["a", "b"], {"a": {"GENRES": "Drama"}})
    with pytest.raises(FilterError) as info:
        compile_filter("INCLUDE ItemID WHERE Items.GENRES IN ($G)", catalog)
    assert str(info.value).endswith("needs a value for $G; pass filter_values={'G': ...} (values= to compile_filter)")
    assert info.value.advice == Advice("filter_value", "G", names=("G",))  # type: ignore[attr-defined]
    assert reworded(info.value, lambda a: f"use --filter-value {a.name}=V").endswith("$G; use --filter-value G=V")
    assert reworded(info.value, lambda a: "").endswith("needs a value for $G")
    assert reworded(ValueError("plain"), lambda a: "never") == "plain"


@pytest.mark.parametrize(("expression", "token"), [
    ('INCLUDE ItemID WHER Items.GENRES IN ("x")', "WHER"),  # a word
    ('INCLUDE ItemID WHERE Items.GENRES IN ("x"', ""),  # something missing at the end
    ('INCLUDE ItemID WHERE Items.GENRES IN ("x" "y")', '"y"'),  # a string
    ('INCLUDE ItemID WHERE Items.GENRES ~ 3', "~"),  # the tokenizer stops at a character
    ('INCLUDE ItemID WHERE Items.GENRES IN ("x) ', '"'),  # an unterminated string: where it starts
])
def test_error_span_is_the_token_a_syntax_error_points_at(expression, token):
    with pytest.raises(FilterSyntaxError) as info:
        parse_filter(expression)
    start, end = error_span(expression, info.value.position)
    assert start == info.value.position and expression[start:end] == token
    assert "at position" not in info.value.problem and info.value.problem in str(info.value)


def test_a_field_error_carries_its_hint():
    with pytest.raises(FilterFieldError) as info:
        check_filter_fields("INCLUDE ItemID WHERE Items.GENRE IN ($G)", FIELDS)
    assert info.value.hint.startswith("the items schema has no field GENRE: did you mean GENRES?")
    assert str(info.value).endswith(info.value.hint)
