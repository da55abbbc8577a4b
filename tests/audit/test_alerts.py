import json
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from django.core import mail
from django.db import transaction

from tests.audit.helpers import events_after, head_seq
from tests.conftest import make_user
from yobikake.accounts import services as accounts
from yobikake.accounts.permissions import Role
from yobikake.audit import services
from yobikake.audit.alerts import calling_hours_contain
from yobikake.audit.models import Alert
from yobikake.audit.services import append_event, record_denial
from yobikake.audit.tags import AuditTag


@pytest.fixture
def webhook(settings):
    """A real HTTP server on loopback that collects what it is sent."""
    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.YOBIKAKE_ALERT_WEBHOOK_URL = f"http://127.0.0.1:{server.server_port}/hook"
    settings.YOBIKAKE_ALERT_EMAILS = ["security@example.invalid"]
    yield received
    server.shutdown()


def deny(user, times):
    for _ in range(times):
        record_denial(tag=AuditTag.PERMISSION_DENY, actor=user, reason="missing:x:y:z")


def test_a_burst_of_denials_raises_one_alert_delivered_by_mail_and_webhook(
    world, webhook, settings, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        deny(world.operator, settings.YOBIKAKE_ALERT_DENIALS - 1)
    assert not Alert.objects.exists()
    with django_capture_on_commit_callbacks(execute=True):
        deny(world.operator, 3)
    alert = Alert.objects.get()
    assert (alert.rule, alert.severity, alert.state) == ("repeated_denials", "warning", "open")
    assert alert.subject_user_id == world.operator.pk
    assert webhook == [
        {
            "id": alert.pk,
            "rule": "repeated_denials",
            "severity": "warning",
            "summary": alert.summary,
            "event_seq": alert.event_seq,
            "subject_user_id": world.operator.pk,
            "raised_at": alert.raised_at.isoformat(),
        }
    ]
    assert len(mail.outbox) == 1 and "拒否の繰り返し" in mail.outbox[0].subject
    alert.refresh_from_db()
    assert alert.delivery == "mail:sent webhook:204"


def test_an_alert_for_a_rolled_back_action_is_never_sent(world, webhook, settings):
    with pytest.raises(RuntimeError), transaction.atomic():
        for _ in range(settings.YOBIKAKE_ALERT_DENIALS):
            append_event(tag=AuditTag.PERMISSION_DENY, actor=world.operator, denied="x")
        raise RuntimeError
    assert not Alert.objects.exists() and webhook == [] and mail.outbox == []


def test_a_dead_webhook_is_recorded_and_the_alert_stays(world, settings):
    settings.YOBIKAKE_ALERT_WEBHOOK_URL = "http://127.0.0.1:9/nothing-listens-here"
    from yobikake.audit.alerts import deliver, raise_alert

    with transaction.atomic():
        alert = raise_alert("canary_touched", Alert.Severity.CRITICAL, None, "test")
    deliver(alert.pk)
    alert.refresh_from_db()
    assert alert.delivery == "webhook:failed" and alert.state == "open"


def reveal(user, at=None):
    event = append_event(tag=AuditTag.REVEAL_CALL, actor=user, target_id=1, purpose="call")
    return event


def test_a_reveal_refused_over_budget_raises_one_critical_alert_an_hour(world, monkeypatch):
    monkeypatch.setattr("yobikake.audit.alerts.calling_hours_contain", lambda at: True)
    reveal(world.operator)  # an allowed reveal raises nothing
    assert not Alert.objects.filter(rule="reveal_budget").exists()
    for _ in range(2):
        append_event(
            tag=AuditTag.REVEAL_CALL, actor=world.operator, denied="over_budget", purpose="call"
        )
    alert = Alert.objects.get(rule="reveal_budget")
    assert alert.severity == "critical" and "over the hourly budget (call)" in alert.summary


def test_calling_hours_are_tokyo_weekdays_and_saturdays(settings):
    settings.YOBIKAKE_CALLING_HOURS = (9, 20)
    assert calling_hours_contain(datetime(2026, 11, 26, 1, 0, tzinfo=UTC))  # Thu 10:00 JST
    assert not calling_hours_contain(datetime(2026, 11, 26, 12, 0, tzinfo=UTC))  # Thu 21:00
    assert calling_hours_contain(datetime(2026, 11, 28, 1, 0, tzinfo=UTC))  # Sat 10:00
    assert not calling_hours_contain(datetime(2026, 11, 29, 1, 0, tzinfo=UTC))  # Sunday


def test_a_reveal_outside_calling_hours_raises_an_alert(world, monkeypatch):
    monkeypatch.setattr("yobikake.audit.alerts.calling_hours_contain", lambda at: False)
    reveal(world.operator)
    assert Alert.objects.get(rule="reveal_off_hours").subject_user_id == world.operator.pk


def test_a_role_granted_to_a_contractor_raises_an_info_alert(world):
    user = make_user("cc-new", world.call_centre, None)
    accounts.request_role(actor=world.sysadmin, user=user, role=Role.SUPERVISOR)
    alert = Alert.objects.get(rule="contractor_role")
    assert (alert.severity, alert.subject_user_id) == ("info", user.pk)


def test_a_canary_touched_is_critical(world):
    append_event(tag=AuditTag.CANARY_TOUCH, actor=world.operator, target_id=77)
    assert Alert.objects.get(rule="canary_touched").severity == "critical"


def test_acknowledging_and_closing_are_on_the_record(world):
    deny(world.operator, 5)
    alert = Alert.objects.get()
    before = head_seq()
    services.acknowledge_alert(actor=world.security, alert=alert)
    with pytest.raises(services.AuditError):
        services.close_alert(actor=world.security, alert=alert, note="  ")
    services.close_alert(actor=world.security, alert=alert, note="operator mistyped; talked")
    alert.refresh_from_db()
    assert (alert.state, alert.closed_by_id) == ("closed", world.security.pk)
    tags = [(e.tag, e.actor_user_id, e.outcome) for e in events_after(before)]
    assert tags == [
        (AuditTag.ALERT_ACKNOWLEDGE, world.security.pk, "allowed"),
        (AuditTag.ALERT_CLOSE, world.security.pk, "denied"),  # the empty note
        (AuditTag.ALERT_CLOSE, world.security.pk, "allowed"),
    ]


def test_only_the_security_officer_handles_alerts(world):
    deny(world.operator, 5)
    alert = Alert.objects.get()
    for actor in (world.sysadmin, world.fed_admin, world.operator):
        with pytest.raises(accounts.NotPermitted):
            services.acknowledge_alert(actor=actor, alert=alert)
    alert.refresh_from_db()
    assert alert.state == "open"
