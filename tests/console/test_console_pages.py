"""Every console page, in a real browser: it renders with no console error and no failed request, every input
has a label, the keyboard reaches the navigation, and nothing is cut off on a phone-width screen."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser

PAGES = {
    "groups": "/console/groups",
    "overview": "/console/g/movies",
    "data": "/console/g/movies/data",
    "users": "/console/g/movies/users",
    "user": "/console/g/movies/users/1",
    "item": "/console/g/movies/items/1",
    "solutions": "/console/g/movies/solutions",
    "campaigns": "/console/g/movies/campaigns",
    "campaign": "/console/g/movies/campaigns/knn",
    "filters": "/console/g/movies/filters",
    "try": "/console/g/movies/try",
    "batch-jobs": "/console/g/movies/batch-jobs",
    "retraining": "/console/g/movies/retraining",
    "keys": "/console/keys",
}

UNLABELLED = """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
  .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.getAttribute('aria-labelledby'))
  .map(e => e.outerHTML.slice(0, 120))"""
OVERFLOW = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"


@pytest.mark.parametrize("name", list(PAGES))
def test_every_page_renders_cleanly_with_labels(open_console, name: str) -> None:
    tab = open_console()
    response = tab.goto(PAGES[name])
    assert response.status == 200, tab.page.content()[:2000]
    assert tab.page.title().endswith("recsmith console")
    assert tab.page.locator("h1").count() >= 1
    assert tab.page.evaluate(UNLABELLED) == []
    tab.screenshot(f"page-{name}")
    tab.assert_clean()


@pytest.mark.parametrize("name", ["overview", "user", "solutions", "campaign", "try", "keys"])
def test_pages_fit_a_phone_screen(open_console, name: str) -> None:
    tab = open_console(width=375, height=800)
    tab.goto(PAGES[name])
    tab.screenshot(f"phone-{name}")
    assert tab.page.evaluate(OVERFLOW) <= 1, "the page scrolls sideways at 375 px"
    tab.assert_clean()


def test_the_keyboard_reaches_the_content_and_the_navigation(open_console) -> None:
    tab = open_console()
    tab.goto("/console/g/movies")
    tab.page.keyboard.press("Tab")
    assert tab.page.evaluate("document.activeElement.textContent") == "Skip to content"
    tab.page.keyboard.press("Enter")
    assert tab.page.evaluate("document.activeElement.id") == "main"
    names = []
    tab.goto("/console/g/movies")
    for _ in range(14):
        tab.page.keyboard.press("Tab")
        names.append(tab.page.evaluate("document.activeElement.textContent.trim()"))
    assert {"Data", "Campaigns", "Try it"} <= set(names)
    tab.assert_clean()
