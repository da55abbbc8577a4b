import base64
from datetime import timedelta

import pytest
import time_machine
from django.contrib.sessions.models import Session
from django.test import Client
from django.utils import timezone
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from tests.conftest import PASSWORD, current_code, totp_device
from yobikake.accounts.views import PENDING_SINCE


def password_step(client, username, password=PASSWORD, next_url=None):
    data = {"username": username, "password": password}
    if next_url:
        data["next"] = next_url
    return client.post("/login/", data)


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def test_password_then_totp_logs_in(world):
    device = totp_device(world.staff_a)
    client = Client()
    response = password_step(client, "staff-a")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/mfa/")
    assert client.get("/").status_code == 302, "the password alone must not log in"

    response = client.post("/login/mfa/", {"token": current_code(device)})
    assert response.status_code == 302 and response["Location"] == "/"
    home = client.get("/")
    assert home.status_code == 200
    assert "保険者職員" in home.text


def test_a_wrong_totp_is_refused(world, settings):
    device = totp_device(world.staff_a)
    client = Client()
    password_step(client, "staff-a")
    response = client.post("/login/mfa/", {"token": wrong(current_code(device))})
    assert response.status_code == 200
    assert "確認コードが違うか" in response.text
    assert client.get("/").status_code == 302


def test_the_right_code_after_a_wrong_one_is_accepted(world, settings):
    settings.OTP_TOTP_THROTTLE_FACTOR = 0  # django-otp's own backoff, tested by itself
    device = totp_device(world.staff_a)
    client = Client()
    password_step(client, "staff-a")
    client.post("/login/mfa/", {"token": wrong(current_code(device))})
    response = client.post("/login/mfa/", {"token": current_code(device)})
    assert response.status_code == 302


def test_repeated_wrong_totps_lock_the_account(world, settings):
    settings.OTP_TOTP_THROTTLE_FACTOR = 0
    device = totp_device(world.staff_a)
    client = Client()
    password_step(client, "staff-a")
    statuses = [
        client.post("/login/mfa/", {"token": wrong(current_code(device))}).status_code
        for _ in range(settings.AXES_FAILURE_LIMIT)
    ]
    assert statuses[-1] == 429
    assert client.post("/login/mfa/", {"token": current_code(device)}).status_code == 429
    # Starting again with the right password, from another address, does not help either:
    # the lock is on the account.
    again = Client(REMOTE_ADDR="192.0.2.77")
    locked = password_step(again, "staff-a")
    assert locked.status_code in (403, 429)
    assert "ロック" in locked.text
    assert again.get("/").status_code == 302


def test_repeated_wrong_passwords_lock_the_account(world, settings):
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        password_step(client, "staff-a", password="wrong password")
    response = password_step(Client(REMOTE_ADDR="192.0.2.78"), "staff-a")
    assert response.status_code in (403, 429)
    assert "ロック" in response.text


def test_an_expired_contractor_cannot_log_in(world):
    world.operator.expires_at = timezone.now() - timedelta(minutes=1)
    world.operator.save(update_fields=["expires_at"])
    totp_device(world.operator)
    client = Client()
    response = password_step(client, "operator")
    assert response.status_code == 200
    assert "有効期限が切れています" in response.text
    assert client.get("/login/mfa/").status_code == 302


def test_an_account_that_expires_mid_session_is_logged_out(world, as_user):
    client = as_user(world.supervisor)
    assert client.get("/").status_code == 200
    world.supervisor.expires_at = timezone.now() - timedelta(seconds=1)
    world.supervisor.save(update_fields=["expires_at"])
    response = client.get("/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_first_login_enrolls_an_authenticator(world):
    client = Client()
    password_step(client, "researcher")
    page = client.get("/login/mfa/")
    assert "<svg" in page.text
    secret = page.context["secret"]
    totp = TOTP(base64.b32decode(secret))
    response = client.post("/login/mfa/", {"token": f"{totp.token():06d}"})
    assert response.status_code == 302
    assert TOTPDevice.objects.get(user=world.researcher).confirmed


def test_the_pending_password_step_expires(world):
    client = Client()
    password_step(client, "staff-a")
    session = client.session
    session[PENDING_SINCE] -= 301
    session.save()
    response = client.get("/login/mfa/")
    assert response.status_code == 302 and response["Location"] == "/login/"


def test_login_never_redirects_off_site(world):
    device = totp_device(world.staff_a)
    client = Client()
    password_step(client, "staff-a", next_url="https://evil.example/")
    response = client.post(
        "/login/mfa/", {"token": current_code(device), "next": "https://evil.example/"}
    )
    assert response["Location"] == "/"


def test_session_cookie_flags_and_idle_timeout(world, settings):
    device = totp_device(world.staff_a)
    client = Client()
    password_step(client, "staff-a")
    response = client.post("/login/mfa/", {"token": current_code(device)})
    cookie = response.cookies[settings.SESSION_COOKIE_NAME]
    assert cookie["secure"] and cookie["httponly"]
    assert cookie["samesite"] == "Strict"
    assert settings.SESSION_COOKIE_AGE == 30 * 60

    # Use pushes the expiry forward (the session is rewritten at most once a minute);
    # a session idle past it is gone.
    row = Session.objects.get(session_key=client.session.session_key)
    Session.objects.filter(pk=row.pk).update(expire_date=timezone.now() + timedelta(minutes=5))
    client.get("/")
    assert Session.objects.get(pk=row.pk).expire_date < timezone.now() + timedelta(minutes=6)
    with time_machine.travel(timedelta(seconds=61)):
        client.get("/")
        assert Session.objects.get(pk=row.pk).expire_date > timezone.now() + timedelta(minutes=29)
    Session.objects.filter(pk=row.pk).update(expire_date=timezone.now() - timedelta(seconds=1))
    assert client.get("/").status_code == 302


def test_pages_carry_a_strict_content_security_policy(db):
    response = Client().get("/login/")
    csp = response["Content-Security-Policy"]
    assert "script-src 'self'" in csp
    assert "default-src 'none'" in csp
    assert "unsafe-inline" not in csp
    assert response["X-Frame-Options"] == "DENY"


@pytest.mark.parametrize("lang", ["ja", "en"])
def test_login_page_speaks_both_languages(db, lang):
    client = Client(headers={"accept-language": lang})
    text = client.get("/login/").text
    assert ("ログイン" if lang == "ja" else "Log in") in text


def test_logout_ends_the_session(world, as_user):
    client = as_user(world.fed_admin)
    assert client.post("/logout/").status_code == 302
    assert client.get("/").status_code == 302


def test_a_half_finished_login_dies_when_the_password_is_reset(world):
    # The sysadmin starts a login with the first password it chose; an approver then
    # resets the account's credentials. The half-finished login must not go on to enrol.
    client = Client()
    password_step(client, "researcher")
    world.researcher.set_password("reset by an approval")
    world.researcher.save(update_fields=["password"])
    response = client.get("/login/mfa/")
    assert response.status_code == 302 and response["Location"] == "/login/"
    assert not TOTPDevice.objects.filter(user=world.researcher).exists()


def test_the_login_redirect_keeps_the_whole_path(world):
    response = Client().get("/insurers/?sort=name&x=1")
    assert response["Location"] == "/login/?next=%2Finsurers%2F%3Fsort%3Dname%26x%3D1"


def test_a_secret_someone_else_saw_is_never_the_one_enrolled(world):
    # Someone who knows only the password opens the enrolment page and notes the key…
    snoop = Client()
    password_step(snoop, "researcher")
    seen = snoop.get("/login/mfa/").context["secret"]
    # …the owner then logs in and is shown a different key, and enrols that one.
    owner = Client()
    password_step(owner, "researcher")
    shown = owner.get("/login/mfa/").context["secret"]
    assert shown != seen
    code = TOTP(base64.b32decode(shown)).token()
    assert owner.post("/login/mfa/", {"token": f"{code:06d}"}).status_code == 302
    device = TOTPDevice.objects.get(user=world.researcher)
    assert base64.b32encode(device.bin_key).decode() == shown


def test_the_password_step_keeps_the_whole_next_url(world):
    response = password_step(Client(), "staff-a", next_url="/insurers/?sort=name&x=1")
    assert response["Location"] == "/login/mfa/?next=%2Finsurers%2F%3Fsort%3Dname%26x%3D1"
