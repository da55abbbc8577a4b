import pytest
from playwright.sync_api import expect

from tests.accounts.test_pages import MENUS
from tests.conftest import PASSWORD, current_code, totp_device


def log_in(page, base_url, user):
    device = totp_device(user)
    page.goto(base_url + "/")
    expect(page).to_have_url(base_url + "/login/?next=%2F")
    page.get_by_label("ユーザー名").fill(user.username)
    page.get_by_label("パスワード").fill(PASSWORD)
    page.get_by_role("button", name="次へ").click()
    expect(page.get_by_role("heading", name="2段階認証")).to_be_visible()
    page.get_by_label("6桁の確認コード").fill(current_code(device))
    page.get_by_role("button", name="確認").click()
    expect(page.get_by_role("heading", name="ホーム")).to_be_visible()


@pytest.mark.parametrize("role", list(MENUS))
def test_each_role_logs_in_with_password_and_totp_and_sees_its_menu(live_server, world, page, role):
    user = world.users()[role]
    log_in(page, live_server.url, user)
    menu = page.get_by_role("navigation", name="メインメニュー").get_by_role("link")
    expect(menu).to_have_text(["ホーム", *MENUS[role]])
    expect(page.get_by_test_id("roles")).to_have_text(str(role.label))
    assert page.console_errors == []


def test_a_wrong_code_is_refused_in_the_browser(live_server, world, page):
    totp_device(world.staff_a)
    page.goto(live_server.url + "/login/")
    page.get_by_label("ユーザー名").fill("staff-a")
    page.get_by_label("パスワード").fill(PASSWORD)
    page.get_by_role("button", name="次へ").click()
    code = current_code(totp_device(world.staff_a))
    page.get_by_label("6桁の確認コード").fill(f"{(int(code) + 1) % 1_000_000:06d}")
    page.get_by_role("button", name="確認").click()
    expect(page.get_by_text("確認コードが違うか、期限切れです。")).to_be_visible()
    page.goto(live_server.url + "/")
    expect(page).to_have_url(live_server.url + "/login/?next=%2F")


def test_other_insurers_page_is_404_like_a_missing_one(live_server, world, page):
    log_in(page, live_server.url, world.staff_b)
    page.get_by_role("link", name="自保険者").click()
    expect(page.get_by_test_id("insurer-name")).to_have_text("テスト町B")

    not_yours = page.goto(f"{live_server.url}/insurers/{world.insurer_a.pk}/")
    not_yours_text = page.locator("main").inner_text()
    missing = page.goto(f"{live_server.url}/insurers/999999/")
    assert not_yours.status == missing.status == 404
    assert not_yours_text == page.locator("main").inner_text()
    expect(page.get_by_role("heading", name="見つかりません")).to_be_visible()
    assert "テスト市A" not in not_yours_text


def test_federation_admin_sees_the_participation_matrix(live_server, world, page):
    log_in(page, live_server.url, world.fed_admin)
    page.get_by_role("link", name="参加状況").click()
    table = page.get_by_test_id("participation")
    expect(table.get_by_role("columnheader")).to_contain_text(["令和3年度", "令和4年度"])
    row_a = table.get_by_role("row").filter(has_text="テスト市A")
    expect(row_a.get_by_role("cell")).to_have_text(["○", "○", "2", "0", "0"])
    assert page.console_errors == []


def test_logout_returns_to_the_login_page(live_server, world, page):
    log_in(page, live_server.url, world.security)
    page.get_by_role("button", name="ログアウト").click()
    expect(page.get_by_text("ログアウトしました。")).to_be_visible()
    page.goto(live_server.url + "/")
    expect(page).to_have_url(live_server.url + "/login/?next=%2F")
