import threading
import time

import pytest
from django.db import connection
from django.test import Client
from django_otp.plugins.otp_totp.models import TOTPDevice

from tests.conftest import PASSWORD, current_code, totp_device


@pytest.mark.django_db(transaction=True)
def test_parallel_totp_guesses_cannot_outrun_the_lockout(world, settings, monkeypatch):
    settings.OTP_TOTP_THROTTLE_FACTOR = 0  # leave the counting to the lockout alone
    # Widen the window between "is the account locked?" and "count this failure", as a
    # slow server would: the real check, a little later.
    real_verify = TOTPDevice.verify_token
    checked = []

    def slow_verify(self, token):
        checked.append(token)
        time.sleep(0.15)
        return real_verify(self, token)

    monkeypatch.setattr(TOTPDevice, "verify_token", slow_verify)
    device = totp_device(world.staff_a)
    wrong = f"{(int(current_code(device)) + 1) % 1_000_000:06d}"
    client = Client()
    client.post("/login/", {"username": "staff-a", "password": PASSWORD})
    session_cookie = client.cookies[settings.SESSION_COOKIE_NAME].value

    guessers = settings.AXES_FAILURE_LIMIT + 4
    start = threading.Barrier(guessers)
    statuses = []

    def guess():
        guesser = Client()
        guesser.cookies[settings.SESSION_COOKIE_NAME] = session_cookie
        start.wait()
        try:
            statuses.append(guesser.post("/login/mfa/", {"token": wrong}).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=guess) for _ in range(guessers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert len(statuses) == guessers
    # Every guess that reaches the code check is a chance to get in (a right one would
    # log in at once), so no more may be checked than the lockout allows; the rest are
    # refused as locked without being looked at.
    assert len(checked) == settings.AXES_FAILURE_LIMIT
    assert statuses.count(200) == settings.AXES_FAILURE_LIMIT - 1
    assert statuses.count(429) == guessers - settings.AXES_FAILURE_LIMIT + 1
