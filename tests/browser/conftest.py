import os
from pathlib import Path

import pytest

# Playwright's sync API runs an event loop in this thread; the ORM calls the tests make
# around it are still plain synchronous code.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = os.environ.get("YOBIKAKE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def pytest_collection_modifyitems(items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def watched_page(context):
    """A new page of `context` whose `page.console_errors` collects every console error,
    failed static request and CSP violation."""
    page = context.new_page()
    page.console_errors = []
    page.on(
        "console",
        lambda m: page.console_errors.append(m.text) if m.type in ("error", "warning") else None,
    )
    page.on(
        "response",
        lambda r: (
            page.console_errors.append(f"{r.status} {r.url}")
            if r.status >= 400 and "/static/" in r.url
            else None
        ),
    )
    return page


@pytest.fixture
def page(browser):
    """A fresh page (see `watched_page`); the test fails if errors remain unexpected."""
    context = browser.new_context(locale="ja-JP", timezone_id="Asia/Tokyo")
    yield watched_page(context)
    context.close()
