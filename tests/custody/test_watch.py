"""Custody's own alert channel, complete: a webhook configured in custody.json only, the
custodian's start and stop, heartbeats it watches (the application, and each scheduled
check), and the logins the application reports (watch.py)."""

import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.custody import server_fixture
from tests.custody.conftest import configure
from yobikake.custody.alerts import AlertKind
from yobikake.custody.config import Config, ConfigError
from yobikake.custody.core import Custodian
from yobikake.custody.keyring import write_private
from yobikake.custody.protocol import CustodyRefused, Heartbeat
from yobikake.custody.reconcile import Reconciler
from yobikake.custody.watch import Watch

SESSION = "sha256:" + hashlib.sha256(b"a session key").hexdigest()[:56]
OTHER_SESSION = "sha256:" + hashlib.sha256(b"another session key").hexdigest()[:56]
SECRET = "webhook secret of the security officer"


class _Hook(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append((dict(self.headers), body))  # type: ignore[attr-defined]
        self.send_response(self.server.status)  # type: ignore[attr-defined]
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver():
    """A real HTTP receiver on loopback, as the security officer's chat or pager."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    server.received = []  # type: ignore[attr-defined]
    server.status = 204  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.url = f"http://127.0.0.1:{server.server_address[1]}/hook"  # type: ignore[attr-defined]
    yield server
    server.shutdown()
    server.server_close()


def kinds(server) -> list[str]:
    return [json.loads(body)["kind"] for _, body in server.received]


def with_webhook(home, url: str) -> None:
    write_private(home / "webhook-secret", SECRET.encode())
    configure(home, webhook={"url": url, "secret_file": "webhook-secret"})


def test_each_alert_is_posted_to_the_webhook_signed_with_custody_s_secret(home, clock, receiver):
    with_webhook(home, receiver.url)
    custodian = Custodian(home, clock=clock)
    try:
        assert Watch.of(custodian).check_session(7, SESSION, 12) is False
        custodian.channel.flush()
    finally:
        custodian.close()
    [(headers, body)] = receiver.received
    alert = json.loads(body)
    assert alert["kind"] == AlertKind.SESSION_UNBOUND
    assert alert["severity"] == "critical"
    assert alert["holder_user_id"] == 7
    assert alert["label"].startswith("ログインの記録がないセッション")
    expected = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert headers["X-Yobikake-Signature"] == f"sha256={expected}"


def test_a_webhook_that_fails_is_itself_an_alert(home, clock, receiver):
    receiver.status = 500
    with_webhook(home, receiver.url)
    custodian = Custodian(home, clock=clock)
    try:
        Watch.of(custodian).check_session(7, SESSION, None)
        custodian.channel.flush()
        recorded = [alert.kind for alert in custodian.ledger.alerts()]
    finally:
        custodian.close()
    assert recorded == [AlertKind.SESSION_UNBOUND, AlertKind.WEBHOOK_FAILED]
    # The failure is not posted again to the webhook that failed.
    assert kinds(receiver) == [AlertKind.SESSION_UNBOUND]
    log = [json.loads(line) for line in (home / "alerts.log").read_text().splitlines()]
    assert [line["kind"] for line in log] == recorded


@pytest.mark.parametrize("url", ["http://alerts.example.org/hook", "ftp://127.0.0.1/hook"])
def test_a_webhook_off_this_host_must_be_https(home, url):
    configure(home, webhook={"url": url})
    with pytest.raises(ConfigError, match="webhook"):
        Config.load(home)


def test_a_source_silent_past_its_interval_is_a_critical_alert_once_per_interval(home, clock):
    configure(
        home,
        heartbeats={"application": 60, "audit_sweep": 600, "reconcile": 3600, "retention": 3600},
    )
    custodian = Custodian(home, clock=clock)
    try:
        watch = Watch.of(custodian)
        watch.beat(Heartbeat.APPLICATION)
        clock.advance(seconds=59)
        assert watch.check() == []
        watch.beat(Heartbeat.APPLICATION)
        clock.advance(seconds=61)
        assert watch.check() == [AlertKind.APPLICATION_SILENT]
        clock.advance(seconds=30)
        assert watch.check() == []  # still silent: alerted already within the interval
        clock.advance(seconds=31)
        assert watch.check() == [AlertKind.APPLICATION_SILENT]
        clock.advance(seconds=600 - 181 + 1)
        watch.beat(Heartbeat.APPLICATION)
        # The sweep has not beaten since the custodian started.
        assert watch.check() == [AlertKind.CHECK_MISSED]
        [summary] = [a.summary for a in custodian.ledger.alerts() if a.kind == "check_missed"]
        assert summary.startswith("no heartbeat of audit_sweep since")
        assert "none since the custodian started" in summary
    finally:
        custodian.close()


def test_a_heartbeat_of_an_unknown_source_is_refused(home, clock):
    custodian = Custodian(home, clock=clock)
    try:
        with pytest.raises(CustodyRefused, match="source"):
            Watch.of(custodian).beat("cron-of-the-insider")
    finally:
        custodian.close()


def test_a_reported_login_binds_its_session_and_its_account(home, clock):
    custodian = Custodian(home, clock=clock)
    try:
        watch = Watch.of(custodian)
        watch.record_login(7, 12, SESSION)
        assert watch.check_session(7, SESSION, 12) is True
        assert custodian.ledger.alerts() == []
        # The same session key for another account, or another session: not known.
        assert watch.check_session(8, SESSION, 12) is False
        assert watch.check_session(7, OTHER_SESSION, 12) is False
        assert [a.kind for a in custodian.ledger.alerts()] == [AlertKind.SESSION_UNBOUND] * 2
        assert [e.kind for e in custodian.ledger.entries()][-3] == "login"
        with pytest.raises(CustodyRefused):
            watch.record_login(7, 12, "not a digest")
    finally:
        custodian.close()


def test_a_session_logged_out_of_or_too_old_is_not_honoured(home, clock):
    configure(home, session_max_hours=12)
    custodian = Custodian(home, clock=clock)
    try:
        watch = Watch.of(custodian)
        watch.record_login(7, 1, SESSION)
        watch.record_login(8, 2, OTHER_SESSION)
        watch.record_logout(7, SESSION)
        watch.record_logout(7, OTHER_SESSION)  # not user 7's: changes nothing
        assert watch.check_session(7, SESSION, 1) is False
        clock.advance(hours=12)
        assert watch.check_session(8, OTHER_SESSION, 2) is True
        clock.advance(seconds=1)
        assert watch.check_session(8, OTHER_SESSION, 2) is False
        assert watch.check_session(8, OTHER_SESSION, 2) is False  # alerted once
        summaries = [a.summary for a in custodian.ledger.alerts()]
        assert len(summaries) == 2
        assert "after its user logged out of it" in summaries[0]
        assert "more than 12 h after its login" in summaries[1]
    finally:
        custodian.close()


def _login_event(seq: int, user: int, session: str, prev: str):
    from yobikake.custody.protocol import AuditEvent

    digest = hashlib.sha256(f"{seq}".encode()).hexdigest()
    return AuditEvent(
        seq=seq, at="2026-12-07T03:00:00.000000Z", tag="auth:login:success", outcome="allowed",
        reason="", actor_user_id=user, insurer_id=None, list_id=None, target_id=None,
        purpose="", details=json.dumps({"device_id": 1, "session": session}),
        prev_hash=prev, hash=digest,
    )  # fmt: skip


def test_a_login_event_custody_was_not_told_of_is_a_critical_alert(home, clock):
    custodian = Custodian(home, clock=clock)
    try:
        watch, reconciler = Watch.of(custodian), Reconciler.of(custodian)
        watch.record_login(7, 1, SESSION)
        first = _login_event(1, 7, SESSION, "0" * 64)
        # The insider's: appended with the application's audit keys, never reported.
        forged = _login_event(2, 8, OTHER_SESSION, first.hash)
        reconciler.receive([first, forged])
        for source in Heartbeat:
            watch.beat(source)
        assert watch.check() == []  # within the grace
        clock.advance(seconds=reconciler.grace.total_seconds() + 1)
        for source in Heartbeat:
            watch.beat(source)
        assert watch.check() == [AlertKind.LOGIN_UNREPORTED]
        [alert] = custodian.ledger.alerts()
        assert alert.holder_user_id == 8 and "audit event 2" in alert.summary
        assert watch.check() == []  # settled once
    finally:
        custodian.close()


def test_the_custodian_process_says_its_start_and_stop_and_watches_heartbeats(tmp_path, receiver):
    """A real `custodian serve`, with a 2-second interval for the application and a
    heartbeat check every second."""
    root = tmp_path / "served"
    home, _ = server_fixture.init(root)
    with_webhook(home, receiver.url)
    configure(
        home,
        heartbeats={"application": 2, "audit_sweep": 3600, "reconcile": 3600, "retention": 3600},
        heartbeat_check_seconds=1,
    )
    server = server_fixture.start(root)
    client = server.client()
    try:
        assert _until(lambda: AlertKind.CUSTODIAN_STARTED in kinds(receiver))
        # Beating: quiet.
        for _ in range(8):
            client.heartbeat(Heartbeat.APPLICATION)
            time.sleep(0.5)
        assert AlertKind.APPLICATION_SILENT not in kinds(receiver)
        # Gone quiet: alerted within the interval and a check.
        assert _until(lambda: AlertKind.APPLICATION_SILENT in kinds(receiver), 6)
        shown = client.alerts()
        assert [a.kind for a in shown][:1] == [AlertKind.CUSTODIAN_STARTED]
        assert AlertKind.APPLICATION_SILENT in [a.kind for a in shown]
        assert all(a.severity == "critical" for a in shown)
    finally:
        client.close()
        server.stop()
    assert _until(lambda: AlertKind.CUSTODIAN_STOPPED in kinds(receiver))
    # Started again: the start says the last run stopped as it should.
    server = server_fixture.start(root)
    server.stop()
    starts = [json.loads(b) for _, b in receiver.received if b"custodian_started" in b]
    assert len(starts) == 2 and "ended without stopping" not in starts[1]["summary"]


def _until(condition, seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()
