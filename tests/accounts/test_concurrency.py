import threading
import time

import pytest
from django.db import connection
from django.test import Client
from django_otp.plugins.otp_totp.models import TOTPDevice

from tests.conftest import PASSWORD, current_code, totp_device
from yobikake.accounts.models import User


def slowed_and_counted(monkeypatch, cls, method):
    """Widen the window between "is the account locked?" and "count this failure", as
    a slow server would (the real method, a little later), and count the calls."""
    real = getattr(cls, method)
    calls = []

    def slow(self, *args, **kwargs):
        calls.append(args)
        time.sleep(0.15)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(cls, method, slow)
    return calls


def in_parallel(count, request):
    """Run `request(client)` from `count` threads at once; returns the statuses."""
    start = threading.Barrier(count)
    statuses = []

    def run():
        start.wait()
        try:
            statuses.append(request())
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(statuses) == count
    return statuses


@pytest.mark.django_db(transaction=True)
def test_parallel_totp_guesses_cannot_outrun_the_lockout(world, settings, monkeypatch):
    settings.OTP_TOTP_THROTTLE_FACTOR = 0  # leave the counting to the lockout alone
    checked = slowed_and_counted(monkeypatch, TOTPDevice, "verify_token")
    device = totp_device(world.staff_a)
    wrong = f"{(int(current_code(device)) + 1) % 1_000_000:06d}"
    client = Client()
    client.post("/login/", {"username": "staff-a", "password": PASSWORD})
    cookie = client.cookies[settings.SESSION_COOKIE_NAME].value

    def guess():
        guesser = Client()
        guesser.cookies[settings.SESSION_COOKIE_NAME] = cookie
        return guesser.post("/login/mfa/", {"token": wrong}).status_code

    guessers = settings.AXES_FAILURE_LIMIT + 4
    statuses = in_parallel(guessers, guess)
    # Every guess that reaches the check is a chance to get in (a right one would log
    # in at once), so no more may be checked than the lockout allows; the rest are
    # refused as locked without being looked at.
    assert len(checked) == settings.AXES_FAILURE_LIMIT
    assert statuses.count(200) == settings.AXES_FAILURE_LIMIT - 1
    assert statuses.count(429) == guessers - settings.AXES_FAILURE_LIMIT + 1


@pytest.mark.django_db(transaction=True)
def test_parallel_password_guesses_cannot_outrun_the_lockout(world, settings, monkeypatch):
    checked = slowed_and_counted(monkeypatch, User, "check_password")

    def guess():
        return Client().post("/login/", {"username": "staff-a", "password": "guess"}).status_code

    statuses = in_parallel(settings.AXES_FAILURE_LIMIT + 4, guess)
    assert len(checked) == settings.AXES_FAILURE_LIMIT
    assert statuses.count(200) == settings.AXES_FAILURE_LIMIT - 1
