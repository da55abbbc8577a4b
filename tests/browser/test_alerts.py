from playwright.sync_api import expect

from tests.browser.test_login_and_menus import log_in


def test_security_officer_acknowledges_an_alert_raised_by_denied_actions(
    live_server, world, browser, settings
):
    base = live_server.url
    # An operator goes looking where operators may not.
    operator = browser.new_context(locale="ja-JP").new_page()
    log_in(operator, base, world.operator)
    for _ in range(settings.YOBIKAKE_ALERT_DENIALS):
        response = operator.goto(base + "/insurers/")
        assert response.status == 403

    officer = browser.new_context(locale="ja-JP").new_page()
    log_in(officer, base, world.security)
    officer.get_by_role("link", name="アラート").click()
    row = officer.get_by_test_id("alerts").get_by_role("row").filter(has_text="拒否の繰り返し")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("operator")
    expect(row).to_contain_text("未対応")
    row.get_by_role("button", name="対応開始").click()
    expect(officer.get_by_text("対応中にしました。")).to_be_visible()
    expect(row).to_contain_text("対応中")

    # The acknowledgement is itself in the log, under the officer's name.
    officer.get_by_role("link", name="監査ログ").click()
    officer.get_by_label("タグ（前方一致）").fill("alert:record:acknowledge")
    officer.get_by_role("button", name="検索").click()
    events = officer.get_by_test_id("events").locator("tbody tr")
    expect(events).to_have_count(1)
    expect(events.first).to_contain_text("security")
    expect(events.first).to_contain_text("alert:record:acknowledge")
