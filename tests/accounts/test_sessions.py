"""Sessions bound to their login (accounts/sessions.py), tried as the insider would: a
session written into the store with SECRET_KEY and the database, then one with a login
event forged with the application's own audit keys."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.sessions.backends.db import SessionStore
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django_otp import DEVICE_ID_SESSION_KEY

from tests.accounts.test_login import password_step
from tests.conftest import current_code, totp_device
from yobikake.accounts import sessions
from yobikake.accounts.services import PASSWORD_BACKEND
from yobikake.audit.models import Event
from yobikake.audit.services import append_event
from yobikake.audit.tags import AuditTag
from yobikake.custody.alerts import AlertKind
from yobikake.custody.watch import Watch
from yobikake.vault import custodian as port
from yobikake.vault.audit_report import report


def minted(user) -> Client:
    """`yobikake shell`: a session for `user`, second factor and all, without a login."""
    store = SessionStore()
    store[SESSION_KEY] = str(user.pk)
    store[BACKEND_SESSION_KEY] = PASSWORD_BACKEND
    store[HASH_SESSION_KEY] = user.get_session_auth_hash()
    store[DEVICE_ID_SESSION_KEY] = totp_device(user).persistent_id
    store.create()
    client = Client()
    client.cookies[settings.SESSION_COOKIE_NAME] = store.session_key
    return client


def custody_alerts(custody, kind: str) -> list:
    return [alert for alert in custody.custodian.ledger.alerts() if alert.kind == kind]


def refused(client: Client, path: str = "/") -> None:
    response = client.get(path, HTTP_ACCEPT_LANGUAGE="ja")
    assert response.status_code == 302 and response["Location"] == "/login/"
    page = client.get("/login/", HTTP_ACCEPT_LANGUAGE="ja")
    assert "ログインの記録がないため" in page.text
    # Logged out: the next page wants a login again, and asks nothing more of custody.
    assert client.get("/").status_code == 302


def test_a_logged_in_session_is_honoured_and_custody_was_told_of_its_login(world, custody):
    device = totp_device(world.staff_a)
    client = Client()
    password_step(client, "staff-a")
    client.post("/login/mfa/", {"token": current_code(device)})
    assert client.get("/").status_code == 200
    login = Event.objects.filter(tag=AuditTag.LOGIN_SUCCESS).get()
    assert client.session[sessions.LOGIN_EVENT] == login.seq
    digest = sessions.session_digest(client.session.session_key)
    assert f'"session":"{digest}"' in login.details
    assert custody.check_session(world.staff_a.pk, login.seq, digest) is True
    assert custody.custodian.ledger.alerts() == []


def test_a_session_minted_with_secret_key_is_refused_and_alerted_in_custody(world, custody):
    client = minted(world.fed_admin)
    refused(client, "/accounts/role-requests/")
    ended = Event.objects.get(tag=AuditTag.SESSION_UNBOUND)
    assert (ended.subject_user_id, ended.reason) == (world.fed_admin.pk, "session_unbound")
    [alert] = custody_alerts(custody, AlertKind.SESSION_UNBOUND)
    assert alert.severity == "critical" and alert.holder_user_id == world.fed_admin.pk


def test_the_api_refuses_a_minted_session_too(world, custody):
    client = minted(world.staff_a)
    assert client.get("/api/v1/docs").status_code == 401
    assert custody_alerts(custody, AlertKind.SESSION_UNBOUND)


def test_a_login_event_forged_with_the_application_s_keys_is_refused_by_custody(world, custody):
    """The insider also appends a login event naming the minted session, with the
    application's audit MAC key: genuine to the application, unknown to custody."""
    client = minted(world.fed_admin)
    store = SessionStore(session_key=client.cookies[settings.SESSION_COOKIE_NAME].value)
    digest = sessions.session_digest(store.session_key)
    event = append_event(
        tag=AuditTag.LOGIN_SUCCESS, actor=world.fed_admin, details={"session": digest}
    )
    store[sessions.LOGIN_EVENT] = event.seq
    store.save()
    refused(client)
    assert custody_alerts(custody, AlertKind.SESSION_UNBOUND)
    # And reconciliation names the forged event once the application reports its log.
    report(custody)
    watch = Watch.of(custody.custodian)
    watch.grace = timedelta(0)  # the custodian's grace for a late report, not waited out
    watch.check()
    [alert] = custody_alerts(custody, AlertKind.LOGIN_UNREPORTED)
    assert f"audit event {event.seq}" in alert.summary


def test_a_session_of_one_account_is_not_another_s(world, custody):
    """A real login's session, its account swapped in the store for another's."""
    client = Client()
    device = totp_device(world.operator)
    password_step(client, "operator")
    client.post("/login/mfa/", {"token": current_code(device)})
    store = SessionStore(session_key=client.cookies[settings.SESSION_COOKIE_NAME].value)
    store[SESSION_KEY] = str(world.fed_admin.pk)
    store[HASH_SESSION_KEY] = world.fed_admin.get_session_auth_hash()
    store[DEVICE_ID_SESSION_KEY] = totp_device(world.fed_admin).persistent_id
    store.save()
    sessions.checked.forget()
    refused(client)


def test_a_bound_session_is_checked_once_then_costs_nothing(world, as_user):
    client = as_user(world.supervisor)
    assert client.get("/").status_code == 200
    with CaptureQueriesContext(connection) as cached:
        assert client.get("/").status_code == 200
    sessions.checked.forget()  # as a process that has not seen the session yet
    with CaptureQueriesContext(connection) as checked:
        assert client.get("/").status_code == 200
    login_reads = [q for q in checked.captured_queries if "auth:login:success" in q["sql"]]
    assert len(login_reads) == 1
    assert len(checked.captured_queries) == len(cached.captured_queries) + 1


def test_with_custody_unreachable_a_genuine_login_still_works(
    world, as_user, tmp_path, monkeypatch
):
    """Custody away: the login event alone holds the session (reconciliation names any
    login custody never heard of once it is back); a minted session is still refused."""
    from tests.custody import server_fixture
    from yobikake.vault.devserver import free_port

    client = as_user(world.supervisor)
    _, client_dir = server_fixture.init(tmp_path / "away")
    away = port.HttpCustodian(f"https://127.0.0.1:{free_port()}", client_dir)
    monkeypatch.setattr(port, "_build", lambda *args: away)
    sessions.checked.forget()
    assert client.get("/").status_code == 200
    refused(minted(world.fed_admin))


@pytest.mark.django_db(transaction=True)
def test_the_login_view_tells_custody_within_its_committed_transaction(world, custody):
    device = totp_device(world.researcher)
    client = Client()
    password_step(client, "researcher")
    client.post("/login/mfa/", {"token": current_code(device)})
    sessions.checked.forget()
    assert client.get("/").status_code == 200
    assert custody.custodian.ledger.alerts() == []


def test_a_session_logged_out_of_and_put_back_in_the_store_is_refused(world, custody):
    """The insider keeps a copy of a session row and writes it back after its user
    logged out."""
    from django.contrib.sessions.models import Session

    client = Client()
    device = totp_device(world.fed_admin)
    password_step(client, "fed-admin")
    client.post("/login/mfa/", {"token": current_code(device)})
    key = client.cookies[settings.SESSION_COOKIE_NAME].value
    kept = Session.objects.get(session_key=key)
    client.post("/logout/")
    assert not Session.objects.filter(session_key=key).exists()
    Session.objects.create(
        session_key=key, session_data=kept.session_data, expire_date=kept.expire_date
    )
    client.cookies[settings.SESSION_COOKIE_NAME] = key
    refused(client)
    [alert] = custody_alerts(custody, AlertKind.SESSION_UNBOUND)
    assert "after its user logged out of it" in alert.summary
