"""The Filters page: the list, the create form's check as the expression is typed (a parse error shown at the
parser's position), testing an unsaved expression on a user, creating and deleting a filter, and what a read key
may not do (refused by the server, not only hidden)."""

from __future__ import annotations

import html
import re
import uuid
from typing import Any

import pytest

from recsmith.data.filters import FilterSyntaxError, parse_filter

pytestmark = pytest.mark.browser

FILTERS = "/console/g/movies/filters"
MARK_OFFSET = """code => {
  let offset = 0;
  for (const node of code.childNodes) {
    if (node.nodeName === "MARK") return [offset, node.textContent];
    offset += node.textContent.length;
  }
  return null;
}"""
"""Where the ``<mark>`` is in the shown expression: the characters before it, and its text."""


def _type_expression(tab: Any, text: str) -> Any:
    """Type ``text`` into the expression (a keyup sends it to the check) and return the check's answer."""
    from playwright.sync_api import expect

    box = tab.page.get_by_label("Expression")
    box.fill(text)
    box.press("End")  # the keyup the check listens to
    check = tab.page.locator("#expression-check")
    expect(check.locator("[role=alert], [role=status]")).to_have_count(1)
    expect(check.locator("pre code, code.canonical")).to_contain_text(text[-12:])
    return check


def _position(text: str) -> int:
    with pytest.raises(FilterSyntaxError) as caught:
        parse_filter(text)
    return caught.value.position


def test_the_list_shows_each_filter_with_its_parameters(open_console, console_server) -> None:
    tab = open_console(console_server.admin_key, landing=FILTERS)
    row = tab.page.locator("#filters tr", has_text="genre")
    assert "INCLUDE ItemID WHERE Items.GENRES IN ($GENRE)" in row.inner_text()
    assert "$GENRE" in row.locator("td").nth(1).inner_text()
    assert tab.page.get_by_label("Expression").is_visible()
    tab.screenshot("filters")
    tab.assert_clean()


@pytest.mark.parametrize("text", ['INCLUDE ItemID WHERE Items.GENRES IN ("Comedy"',
                                  'INCLUDE ItemID WHER Items.GENRES IN ("x")'])
def test_a_parse_error_is_marked_where_the_parser_says(open_console, console_server, text) -> None:
    tab = open_console(console_server.admin_key, landing=FILTERS)
    check = _type_expression(tab, text)
    alert = check.get_by_role("alert")
    position = _position(text)
    offset, marked = check.locator("pre.filter-expr code").evaluate(MARK_OFFSET)
    assert offset == position
    if position == len(text):  # something is missing at the end: the mark stands after the expression
        assert not marked.strip() and "the end of the expression" in alert.inner_text()
    else:
        assert marked == "WHER" and text[position:].startswith(marked)
    assert f"offset {position}" in alert.inner_text()
    tab.screenshot("filters-parse-error-" + ("at-end" if position == len(text) else "keyword"))
    tab.assert_clean()


def test_an_unknown_field_is_marked_with_the_nearest_field(open_console, console_server) -> None:
    tab = open_console(console_server.admin_key, width=375, height=800, landing=FILTERS)
    text = 'EXCLUDE ItemID WHERE Items.GENRE IN ("Horror")'
    check = _type_expression(tab, text)
    alert = check.get_by_role("alert")
    assert "did you mean GENRES?" in alert.inner_text()
    offset, marked = check.locator("pre.filter-expr code").evaluate(MARK_OFFSET)
    assert (offset, marked) == (text.index("GENRE IN"), "GENRE")
    tab.screenshot("filters-unknown-field-375")
    tab.assert_clean()


def test_an_unsaved_expression_is_tested_on_a_user(open_console, console_server) -> None:
    from playwright.sync_api import expect

    tab = open_console(console_server.admin_key, landing=FILTERS)
    _type_expression(tab, "INCLUDE ItemID WHERE Items.GENRES IN ($G)")
    tab.page.get_by_label("User id").fill("1")
    tab.page.get_by_label("Parameter values").fill("G=Comedy")
    tab.page.get_by_role("button", name="Test", exact=True).click()
    expect(tab.page.locator("#filter-test #results")).to_be_visible()
    genres = tab.page.locator("#filter-test #results tbody tr td:nth-child(4)").all_inner_texts()
    assert len(genres) == 10 and all("Comedy" in g for g in genres), genres
    assert re.search(r"\(\d{4}\)", tab.page.locator("#filter-test #results").inner_text())
    assert "unsaved expression" in tab.page.locator("#filter-test").inner_text()
    assert all(f["name"] != "G" for f in console_server.store.list_filters("movies"))  # nothing stored
    tab.screenshot("filters-test")
    tab.assert_clean()


def test_create_then_delete_a_filter_with_audit_entries(open_console, console_server) -> None:
    from playwright.sync_api import expect

    name = f"comedies-{uuid.uuid4().hex[:8]}"
    tab = open_console(console_server.admin_key, landing=FILTERS)
    tab.page.get_by_label("Name").fill(name)
    _type_expression(tab, 'INCLUDE ItemID WHERE Items.GENRES IN ("Comedy")')
    expect(tab.page.locator("#expression-check").get_by_role("status")).to_contain_text("Valid")
    tab.page.get_by_role("button", name="Create filter").click()
    tab.page.wait_for_load_state("networkidle")
    assert tab.page.get_by_role("status").first.inner_text() == f"Filter {name} created."
    assert tab.page.locator("#filters tr", has_text=name).count() == 1
    tab.page.once("dialog", lambda dialog: dialog.accept())
    tab.page.get_by_role("button", name=f"Delete filter {name}").click()
    expect(tab.page.locator("#filters tr.deleted")).to_contain_text(f"Filter {name} deleted.")
    assert name not in [f["name"] for f in console_server.store.list_filters("movies")]
    assert "genre" in [f["name"] for f in console_server.store.list_filters("movies")]
    entries = {(e["action"], e["resource"]) for e in console_server.store.audit_entries(action="filter.")
               if e["detail"].get("via") == "console"}
    resource = f"dataset-groups/movies/filters/{name}"
    assert {("filter.create", resource), ("filter.delete", resource)} <= entries
    tab.assert_clean()


def test_a_bad_expression_on_submit_shows_the_form_again(open_console, console_server) -> None:
    tab = open_console(console_server.admin_key, landing=FILTERS)
    tab.expected_statuses.add(400)
    name = f"broken-{uuid.uuid4().hex[:8]}"
    text = 'INCLUDE ItemID WHERE Items.GENRES IN ("Comedy"'
    tab.page.get_by_label("Name").fill(name)
    tab.page.get_by_label("Expression").fill(text)  # no keyup: the submit's own check answers
    tab.page.get_by_role("button", name="Create filter").click()
    tab.page.wait_for_load_state("networkidle")
    alert = tab.page.locator("#expression-check").get_by_role("alert")
    assert "expected , or )" in alert.inner_text()
    offset, _ = alert.locator("pre.filter-expr code").evaluate(MARK_OFFSET)
    assert offset == _position(text)
    assert tab.page.get_by_label("Expression").input_value() == text  # the form keeps what was typed
    assert tab.page.get_by_label("Name").input_value() == name
    assert name not in [f["name"] for f in console_server.store.list_filters("movies")]
    tab.assert_clean()


def test_a_taken_name_is_refused_on_the_form(console_server, console_http) -> None:
    signed = console_http(console_server.admin_key)
    taken = signed.client.post(FILTERS, data={"name": "genre", "csrf_token": signed.csrf_token,
                                              "expression": 'INCLUDE ItemID WHERE Items.GENRES IN ("x")'})
    assert taken.status_code == 400 and "already has a filter 'genre'" in html.unescape(taken.text)
    assert console_server.store.get_filter("movies", "genre")["expression"] == \
        "INCLUDE ItemID WHERE Items.GENRES IN ($GENRE)"


def test_a_read_key_sees_no_forms_and_the_server_refuses_its_posts(open_console, console_server,
                                                                     console_http) -> None:
    tab = open_console(console_server.read_key, landing=FILTERS)
    assert "genre" in tab.page.locator("#filters").inner_text()
    assert tab.page.locator("form#create-filter").count() == 0
    assert tab.page.get_by_role("button", name="Delete filter genre").count() == 0
    assert "needs an admin key" in tab.page.locator("main").inner_text()
    tab.screenshot("filters-read-key")
    tab.assert_clean()
    name = f"not-made-{uuid.uuid4().hex[:8]}"
    good = 'INCLUDE ItemID WHERE Items.GENRES IN ("Comedy")'
    signed = console_http(console_server.read_key)
    for path, data in [(FILTERS, {"name": name, "expression": good}),
                       (f"{FILTERS}/check", {"expression": good}),
                       (f"{FILTERS}/test", {"expression": good, "campaign": "knn", "user_id": "1"}),
                       (f"{FILTERS}/genre/delete", {})]:
        refused = signed.client.post(path, data={**data, "csrf_token": signed.csrf_token})
        assert refused.status_code == 403 and "needs role admin" in refused.text, (path, refused.text)
    names = [f["name"] for f in console_server.store.list_filters("movies")]
    assert "genre" in names and name not in names
