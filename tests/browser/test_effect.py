"""The effect page in a real browser: the insurer opens its campaign's effect from the
progress page and sees the chart drawn (server-rendered SVG, no script)."""

from playwright.sync_api import expect

from tests.browser.conftest import watched_page
from tests.browser.test_login_and_menus import log_in
from tests.calling import conftest as calling
from tests.calling.conftest import running_campaign
from yobikake.synth.results import plant_checkup_results

calling_day = calling.calling_day


def test_the_effect_page_renders_its_chart(calling_day, live_server, world, browser):
    campaign, _, _ = running_campaign(world, count=60, seed=11, holdout_share=0.4)
    plant_checkup_results(campaign, p0=0.3, effect=0.2, seed=3)
    context = browser.new_context(locale="ja-JP")
    page = watched_page(context)
    log_in(page, live_server.url, world.staff_a)
    page.goto(f"{live_server.url}/campaigns/{campaign.pk}/")
    page.get_by_test_id("effect-link").click()
    chart = page.get_by_test_id("effect-chart")
    expect(chart).to_be_visible()
    bar = page.get_by_test_id("bar-all-called")
    assert bar.bounding_box()["height"] > 10
    expect(page.get_by_test_id("biased")).to_be_visible()
    assert page.console_errors == []
    context.close()
