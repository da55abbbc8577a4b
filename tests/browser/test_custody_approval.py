"""A role approved end to end: asked for in the application, approved there by the
security officer, confirmed on the custodian's own page (served by the custodian
process) with a passkey enrolled in custody — a virtual authenticator here — and only
then usable: a reveal works. Against a real custodian process."""

import subprocess

import pytest
from playwright.sync_api import expect

from tests.browser.test_login_and_menus import log_in
from tests.conftest import load_people, make_request, make_user
from tests.custody import server_fixture
from yobikake.accounts.permissions import Role
from yobikake.intake.models import Target
from yobikake.vault.models import Purpose
from yobikake.vault.reveal import RevealRefused, reveal
from yobikake.vault.services import issue_grant


def passkey_page(browser):
    """A page whose browser holds a platform authenticator with user verification
    (Chromium's virtual authenticator, through the DevTools protocol)."""
    context = browser.new_context(locale="ja-JP", timezone_id="Asia/Tokyo")
    page = context.new_page()
    devtools = context.new_cdp_session(page)
    devtools.send("WebAuthn.enable")
    devtools.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    return page


def enrolment_link(home, name, user) -> str:
    """The security officer adds an approver in custody: a one-time enrolment link."""
    command = ["custodian", "approver", "add", "--home", str(home), name]
    done = subprocess.run(
        [server_fixture.YOBIKAKE, *command, "--user-id", str(user.pk)],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip().splitlines()[-1]


@pytest.mark.django_db(transaction=True)
def test_a_role_is_usable_only_once_confirmed_in_custody_with_the_approver_s_passkey(
    live_server, world, browser, custody_process
):
    targets = list(Target.objects.filter(target_list=load_people(world, count=2)[0]))
    newcomer = make_user("new-operator", world.call_centre, None)
    make_request(newcomer, Role.OPERATOR, world.sysadmin)

    # The security officer enrols a passkey on the custodian's page.
    officer = passkey_page(browser)
    officer.goto(enrolment_link(custody_process.home, "security", world.security))
    expect(officer.get_by_role("heading", name="承認者のパスキー登録")).to_be_visible()
    officer.get_by_role("button", name="パスキーを登録する").click()
    expect(officer.get_by_role("status")).to_have_text("承認者 security のパスキーを登録しました。")

    # …approves the request in the application, which files it with the custodian…
    log_in(officer, live_server.url, world.security)
    officer.get_by_role("link", name="権限申請の承認").click()
    officer.get_by_role("row").filter(has_text="new-operator").get_by_role(
        "button", name="承認"
    ).click()
    expect(officer.get_by_test_id("custody-confirmation")).to_contain_text("鍵保管サービス")

    # …and until it is confirmed in custody, the role opens nothing.
    issue_grant(actor=world.supervisor, holder=newcomer, target=targets[0], purpose=Purpose.CALL)
    with pytest.raises(RevealRefused) as refused:
        reveal(newcomer, targets[0], Purpose.CALL)
    assert refused.value.code == "holder_unknown"
    assert "鍵保管サービス" in str(refused.value)

    # The custodian's page names what is approved, for whom, until when.
    officer.get_by_test_id("custody-url").click()
    assert officer.url.startswith(custody_process.approver_origin + "/approve/")
    expect(officer.get_by_role("heading", name="承認の確認")).to_be_visible()
    details = officer.locator("dl")
    expect(details).to_contain_text("役割の付与")
    expect(details).to_contain_text("operator")
    expect(details).to_contain_text(f"new-operator（利用者番号 {newcomer.pk}）")
    expect(details).to_contain_text("有効期限")
    officer.get_by_role("button", name="パスキーで確認する").click()
    expect(officer.get_by_role("status")).to_contain_text("確認しました（security）")

    # Now the role is usable: the operator's reveal opens.
    shown = reveal(newcomer, targets[0], Purpose.CALL)
    assert shown["name_kana"]
