import base64
from datetime import timedelta

from django.utils import timezone
from django_otp.oath import TOTP
from playwright.sync_api import expect

from tests.browser.test_login_and_menus import log_in


def test_an_account_goes_from_sysadmin_to_approver_to_its_person(live_server, world, browser):
    base = live_server.url

    # The sysadmin creates a call-centre account and asks for the operator role.
    sysadmin = browser.new_context(locale="ja-JP").new_page()
    log_in(sysadmin, base, world.sysadmin)
    sysadmin.get_by_role("link", name="アカウント管理").click()
    sysadmin.get_by_label("ユーザー名").fill("new-operator")
    sysadmin.get_by_label("所属組織").select_option(label="CC")
    expires_on = (timezone.localdate() + timedelta(days=60)).isoformat()
    sysadmin.get_by_label("アカウント有効期限（受託事業者は必須）").fill(expires_on)
    sysadmin.get_by_role("button", name="アカウントを作成").click()
    first_password = sysadmin.get_by_test_id("first-password").inner_text()
    sysadmin.get_by_role("link", name="アカウント管理へ戻る").click()
    row = sysadmin.get_by_role("row").filter(has_text="new-operator")
    row.get_by_role("combobox").select_option(label="オペレーター")
    row.get_by_role("button", name="申請").click()
    expect(sysadmin.get_by_text("第二者の承認を待っています")).to_be_visible()
    expect(
        sysadmin.get_by_role("row").filter(has_text="new-operator").get_by_text("承認待ち")
    ).to_be_visible()

    # The security officer approves and is the only one to see the new password.
    officer = browser.new_context(locale="ja-JP").new_page()
    log_in(officer, base, world.security)
    officer.get_by_role("link", name="権限申請の承認").click()
    officer.get_by_role("row").filter(has_text="new-operator").get_by_role(
        "button", name="承認"
    ).click()
    handover = officer.get_by_test_id("handover-password").inner_text()
    assert handover != first_password

    # The sysadmin's copy of the first password no longer works…
    person = browser.new_context(locale="ja-JP").new_page()
    person.goto(base + "/login/")
    person.get_by_label("ユーザー名").fill("new-operator")
    person.get_by_label("パスワード").fill(first_password)
    person.get_by_role("button", name="次へ").click()
    expect(person.get_by_text("ユーザー名またはパスワードが違うか")).to_be_visible()

    # …the handed-over one does, and the person enrols their own authenticator.
    person.get_by_label("パスワード").fill(handover)
    person.get_by_role("button", name="次へ").click()
    secret = person.get_by_test_id("totp-secret").inner_text()
    code = TOTP(base64.b32decode(secret)).token()
    person.get_by_label("6桁の確認コード").fill(f"{code:06d}")
    person.get_by_role("button", name="確認").click()
    expect(person.get_by_test_id("roles")).to_have_text("オペレーター")
    expect(person.get_by_test_id("can-do")).to_contain_text("架電キューを1人ずつ処理する")
