"""The inquiry desk in a real browser: a desk user logs in with password and TOTP, opens
the desk from the menu, and answers two callers — one a leak included (the incident
named), one no leak did."""

import jaconv
from playwright.sync_api import expect

from tests.browser.test_login_and_menus import log_in
from tests.incidents import test_inquiry
from tests.incidents.test_inquiry import wareki

# The stored lists and the leaked file of the inquiry tests (a fixture of that module).
leak = test_inquiry.leak


def test_the_desk_answers_one_caller_affected_and_another_not(live_server, world, leak, page):
    incident, (person, _), _, others = leak
    log_in(page, live_server.url, world.desk)
    menu = page.get_by_role("navigation", name="メインメニュー")
    menu.get_by_role("link", name="問い合わせ窓口").click()
    expect(page.get_by_role("heading", name="問い合わせ窓口")).to_be_visible()

    # As the first caller says it: hiragana, a 和暦 date.
    page.get_by_label("カナ氏名").fill(jaconv.kata2hira(person.name_kana))
    page.get_by_label("生年月日").fill(wareki(person.birth_date))
    page.get_by_role("button", name="照会").click()
    expect(page.get_by_test_id("affected")).to_have_text(
        "次の事案で漏えいした情報に含まれています："
    )
    expect(page.get_by_test_id("incident")).to_have_text(
        f"事案「{incident.title}」（2026-11-26 把握）"
    )
    expect(page.get_by_test_id("leaked")).to_have_text(
        "テスト市A 令和3年度（FY2021）、令和4年度（FY2022）"
    )
    expect(page.get_by_test_id("items")).to_have_text(
        "漏えいした項目：氏名、氏名（カナ）、生年月日、電話番号、住所"
    )
    expect(page.get_by_test_id("answer")).not_to_contain_text(person.name_kanji)
    expect(page.get_by_label("カナ氏名")).to_have_value("")  # ready for the next caller

    # The second caller is stored, but the leaked file did not hold them.
    other = others[0]
    page.get_by_label("カナ氏名").fill(other.name_kana)
    page.get_by_label("電話番号").fill(other.phone)
    page.get_by_role("button", name="照会").click()
    expect(page.get_by_test_id("not-affected")).to_have_text(
        "範囲の特定が済んだ事案で漏えいが確認された情報には含まれていません。"
    )
    expect(page.get_by_test_id("affected")).to_have_count(0)
    assert page.console_errors == []
