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


def test_a_minted_session_is_ended_and_the_officer_sees_custody_s_alert(
    live_server, world, browser, settings
):
    """The insider's session for the federation admin, written with SECRET_KEY: the
    browser holding it is sent to log in, and custody's alert is on the officer's page
    even with the application's alert table emptied."""
    from django.db import connection

    from tests.accounts.test_sessions import minted
    from yobikake.audit.models import Alert

    base = live_server.url
    stolen = minted(world.fed_admin).cookies[settings.SESSION_COOKIE_NAME].value
    insider = browser.new_context(locale="ja-JP")
    insider.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": stolen, "url": base}])
    page = insider.new_page()
    page.goto(base + "/accounts/role-requests/")
    expect(page).to_have_url(base + "/login/")
    expect(page.get_by_text("ログインの記録がないため、終了しました")).to_be_visible()

    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM audit_alert")
    assert not Alert.objects.exists()
    officer = browser.new_context(locale="ja-JP").new_page()
    log_in(officer, base, world.security)
    officer.get_by_role("link", name="アラート").click()
    custody = officer.get_by_test_id("custody-alerts")
    expect(
        custody.get_by_role("row").filter(has_text="ログインの記録がないセッション")
    ).to_have_count(1)
