"""Calling in a real browser: an operator works three calls with the keyboard alone, a
supervisor watches the funnel move on the live board, an insurer sees its campaign's
progress and another insurer does not.

The clock is on a calling day (`calling_day`, a Tuesday at 10:00 in Tokyo, ticking):
time_machine moves the clock of the whole process, so the live server's threads are on
that day too, and the campaign's calling window is open whatever the real date."""

import os
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import watched_page
from tests.browser.test_login_and_menus import log_in
from tests.calling import conftest as calling
from tests.calling.conftest import running_campaign
from tests.custody_helpers import open_sealed
from tests.pii import LOADED_PEOPLE
from yobikake.calling import services
from yobikake.calling.models import Attempt, CallTarget
from yobikake.custody.protocol import SealedRow
from yobikake.intake.services import load_target_list
from yobikake.synth.people import synthetic_people

# YOBIKAKE_SCREENSHOTS=docs/screenshots saves the operator's call and the board there.
SCREENSHOTS = os.environ.get("YOBIKAKE_SCREENSHOTS")
VIEWPORT = {"width": 1280, "height": 900}


# The calling tests' clock, here too (a fixture of that package's conftest).
calling_day = calling.calling_day


def screenshot(page, name):
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SCREENSHOTS) / name), full_page=True)


@pytest.fixture
def new_page(browser):
    """Pages in contexts of their own, like conftest's `page` (console errors collected
    in `page.console_errors`) at the size of the screenshots in docs/; closed after."""
    contexts = []

    def open_page():
        context = browser.new_context(locale="ja-JP", timezone_id="Asia/Tokyo", viewport=VIEWPORT)
        contexts.append(context)
        return watched_page(context)

    yield open_page
    for context in contexts:
        context.close()


def record_a_call(operator, code):
    """An operator's call, recorded through the services (as the operator's screen
    would); the call target."""
    checkout = services.next_call(operator=operator)
    services.record_outcome(actor=operator, call_target_id=checkout.call_target.pk, code=code)
    return checkout.call_target


def focus_by_tab(page, testid, limit=40):
    """Tab until the element with this test id has the focus."""
    for _ in range(limit):
        if page.evaluate("document.activeElement?.dataset?.testid") == testid:
            return
        page.keyboard.press("Tab")
    pytest.fail(f"Tab never reached {testid}")


# The keys pressed for the three calls, and the outcome each stands for.
KEYS = [("8", "busy"), ("1", "intends"), ("4", "declined")]


def test_an_operator_works_three_calls_with_the_keyboard_alone(
    calling_day, live_server, world, new_page
):
    campaign, target_list, people = running_campaign(
        world, count=12, seed=7, holdout_share=0, script="{氏名}様、{保険者}です。"
    )
    by_name = {p.name_kanji: p for p in people}
    assert len(by_name) == len(people)
    page = new_page()
    log_in(page, live_server.url, world.operator)
    page.goto(live_server.url + "/calls/")
    # From here on, keys only.
    expect(page.get_by_test_id("next-call")).to_be_focused()
    page.keyboard.press("Enter")

    notes = ["夕方以降なら在宅とのこと", "健診の日程を案内した", "今年は受けないとのこと"]
    seen = []
    for number, ((key, _), note) in enumerate(zip(KEYS, notes, strict=True), start=1):
        call = page.get_by_test_id("call")
        expect(call).to_be_visible()
        call_target = call.get_attribute("data-call-target")
        assert call_target not in seen
        seen.append(call_target)
        name = page.get_by_test_id("name").inner_text()
        digits = "".join(c for c in by_name[name].phone if c.isdigit())
        expect(page.get_by_test_id("tel")).to_have_attribute("href", f"tel:{digits}")
        expect(page.get_by_test_id("script")).to_have_text(f"{name}様、テスト市Aです。")
        expect(page.get_by_test_id("history")).to_be_visible()

        focus_by_tab(page, "note")
        page.keyboard.type(note)
        page.keyboard.press("Escape")
        expect(page.get_by_test_id("note")).not_to_be_focused()
        if number == 1:
            screenshot(page, "operator-call.png")
        page.keyboard.press(key)
        # The outcome is stored and the next call is on the screen, in one round trip.
        expect(page.get_by_test_id("call")).not_to_have_attribute("data-call-target", call_target)

    attempts = list(
        Attempt.objects.filter(call_target__campaign=campaign)
        .select_related("disposition", "call_target")
        .order_by("pk")
    )
    assert [a.disposition.code for a in attempts] == [code for _, code in KEYS]
    assert [str(a.call_target_id) for a in attempts] == seen
    assert {a.operator_id for a in attempts} == {world.operator.pk}
    # Each note is stored sealed to the list's public key: not in the clear, and the
    # custodian opens it to what was typed.
    for attempt, note in zip(attempts, notes, strict=True):
        assert isinstance(attempt.note, bytes) and note.encode() not in attempt.note
        row = SealedRow(
            target_list.pk, target_list.insurer_id, Attempt._meta.db_table, attempt.pk,
            {"note": bytes(attempt.note)},
        )  # fmt: skip
        assert open_sealed([row], ["note"])[attempt.pk]["note"] == note
    # The fourth call is already checked out to the operator (the form's then=next).
    fourth = CallTarget.objects.get(state=CallTarget.State.CHECKED_OUT)
    assert fourth.checked_out_by_id == world.operator.pk and str(fourth.pk) not in seen
    assert page.get_by_test_id("call").get_attribute("data-call-target") == str(fourth.pk)
    assert page.console_errors == []


def test_the_supervisor_sees_the_funnel_move_without_reloading(
    calling_day, live_server, world, new_page
):
    campaign, _, _ = running_campaign(world, count=20, seed=3)
    record_a_call(world.operator, "no_answer")
    page = new_page()
    log_in(page, live_server.url, world.supervisor)
    page.locator('nav a[href="/campaigns/board/"]').click()
    expect(page).to_have_url(live_server.url + "/campaigns/board/")
    funnel = page.get_by_test_id(f"funnel-{campaign.pk}")
    attempted = funnel.get_by_test_id("funnel-attempted")
    reached = funnel.get_by_test_id("funnel-reached")
    expect(attempted).to_have_text("1")
    expect(reached).to_have_text("0")
    page.evaluate("window.stillTheSamePage = true")

    # An operator's calls, recorded while the board is open.
    record_a_call(world.operator, "intends")
    record_a_call(world.operator, "busy")
    expect(attempted).to_have_text("3", timeout=12_000)
    expect(reached).to_have_text("1")
    expect(funnel.get_by_test_id("funnel-intends")).to_have_text("1")
    expect(page.get_by_test_id("operators")).to_contain_text(world.operator.username)
    assert page.evaluate("window.stillTheSamePage") is True
    screenshot(page, "supervisor-board.png")
    assert page.console_errors == []


def test_an_insurer_sees_its_own_progress_and_not_another_insurers(
    calling_day, live_server, world, new_page
):
    campaign, _, _ = running_campaign(world, count=10, seed=4, holdout_share=0)
    record_a_call(world.operator, "intends")
    record_a_call(world.operator, "no_answer")
    # Insurer B has a campaign of its own.
    people_b = synthetic_people(6, seed=5, fiscal_year=2022)
    LOADED_PEOPLE.extend(people_b)
    list_b = load_target_list(
        actor=world.staff_b, insurer=world.insurer_b, fiscal_year=2022, people=people_b
    )
    campaign_b = services.create_campaign(
        actor=world.supervisor, insurer=world.insurer_b, fiscal_year=2022, lists=[list_b]
    )
    campaign_b = services.start_campaign(actor=world.supervisor, campaign=campaign_b, seed=5)
    base = live_server.url

    own = new_page()
    log_in(own, base, world.staff_a)
    own.locator('nav a[href="/campaigns/"]').click()
    index = own.get_by_test_id("campaigns")
    expect(index).to_contain_text(campaign.name)
    expect(index).not_to_contain_text(campaign_b.name)
    index.get_by_role("link", name=campaign.name).click()
    expect(own).to_have_url(f"{base}/campaigns/{campaign.pk}/")
    expect(own.get_by_test_id("campaign-name")).to_have_text(campaign.name)
    funnel = own.get_by_test_id(f"funnel-{campaign.pk}")
    expect(funnel.get_by_test_id("funnel-targets")).to_have_text("10")
    expect(funnel.get_by_test_id("funnel-attempted")).to_have_text("2")
    expect(funnel.get_by_test_id("funnel-reached")).to_have_text("1")
    expect(funnel.get_by_test_id("funnel-intends")).to_have_text("1")
    expect(own.get_by_test_id("outcome-count-intends")).to_have_text("1")
    expect(own.get_by_test_id("outcome-count-no_answer")).to_have_text("1")
    assert own.console_errors == []

    other = new_page()
    log_in(other, base, world.staff_b)
    other.locator('nav a[href="/campaigns/"]').click()
    index = other.get_by_test_id("campaigns")
    expect(index).to_contain_text(campaign_b.name)
    expect(index).not_to_contain_text("テスト市A")
    not_yours = other.goto(f"{base}/campaigns/{campaign.pk}/")
    not_yours_text = other.locator("main").inner_text()
    missing = other.goto(f"{base}/campaigns/999999/")
    assert not_yours.status == missing.status == 404
    assert not_yours_text == other.locator("main").inner_text()
    expect(other.get_by_role("heading", name="見つかりません")).to_be_visible()
    assert "テスト市A" not in not_yours_text


def test_the_supervisor_closes_a_campaign_and_the_operator_has_nothing_to_call(
    calling_day, live_server, world, new_page
):
    campaign, _, _ = running_campaign(world, count=8, seed=6, holdout_share=0)
    record_a_call(world.operator, "busy")
    page = new_page()
    log_in(page, live_server.url, world.supervisor)
    page.goto(f"{live_server.url}/campaigns/{campaign.pk}/")
    page.get_by_test_id("close").click()
    expect(page.get_by_test_id("closed-at")).to_be_visible()
    expect(page.locator("main")).to_contain_text("キャンペーンを終了しました")
    expect(page.get_by_test_id("close")).to_have_count(0)
    campaign.refresh_from_db()
    assert campaign.state == "closed"
    operator = new_page()
    log_in(operator, live_server.url, world.operator)
    operator.goto(live_server.url + "/calls/")
    operator.get_by_test_id("next-call").click()
    expect(operator.locator("main")).to_contain_text("今は架電できる対象者がいません")
    assert CallTarget.objects.filter(state=CallTarget.State.CHECKED_OUT).count() == 0
    assert page.console_errors == [] and operator.console_errors == []
