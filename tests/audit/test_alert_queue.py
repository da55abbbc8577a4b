"""The security officer's alert queue is rebuilt from the log: an alert row deleted,
edited or written by SQL is found by `audit verify` and `audit sweep`, put back as the
log recorded it, and its tampering is itself a critical alert."""

import json
from io import StringIO

import pytest
from django.core import mail
from django.core.management import CommandError, call_command
from django.db import connection, transaction

from tests.audit.helpers import head_seq
from yobikake.audit import services
from yobikake.audit.alerts import deliver, raise_alert
from yobikake.audit.models import Alert, Event
from yobikake.audit.services import append_event
from yobikake.audit.tags import AuditTag

pytestmark = pytest.mark.django_db


def sql(statement, params=()):
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


@pytest.fixture
def canary_alert(world, settings):
    settings.YOBIKAKE_ALERT_EMAILS = ["security@example.invalid"]
    append_event(tag=AuditTag.CANARY_TOUCH, actor=world.operator, target_id=7)
    alert = Alert.objects.get(rule="canary_touched")
    assert (alert.severity, alert.state, alert.subject_user_id) == (
        "critical",
        "open",
        world.operator.pk,
    )
    return alert


def verify_fails(action="verify"):
    err = StringIO()
    with pytest.raises(CommandError, match="alert queue was tampered with"):
        call_command("audit", action, stdout=StringIO(), stderr=err)
    return err.getvalue()


def verify_passes():
    out = StringIO()
    call_command("audit", "verify", stdout=out, stderr=StringIO())
    assert out.getvalue().startswith("intact")


def tamper_alert():
    return Alert.objects.get(rule="alert_tampered")


def restore_events():
    return [json.loads(e.details) for e in Event.objects.filter(tag=AuditTag.ALERT_RESTORE)]


def test_a_critical_alert_deleted_by_sql_is_raised_again_and_its_deletion_is_critical(
    canary_alert, django_capture_on_commit_callbacks
):
    before = Alert.objects.filter(pk=canary_alert.pk).values().get()
    sql("DELETE FROM audit_alert WHERE id = %s", [canary_alert.pk])

    with django_capture_on_commit_callbacks(execute=True):
        said = verify_fails()
    assert f"alert #{canary_alert.pk} (canary_touched): deleted" in said
    restored = Alert.objects.filter(pk=canary_alert.pk).values().get()
    kept = ("rule", "severity", "state", "subject_user_id", "subject_username", "event_seq")
    assert {k: restored[k] for k in kept} == {k: before[k] for k in kept}
    assert restored["summary"].startswith("監査ログ（イベント #")
    assert f"発生元はイベント #{before['event_seq']} です。" in restored["summary"]
    tampered = tamper_alert()
    assert (tampered.severity, tampered.state) == ("critical", "open")
    assert f"#{canary_alert.pk}" in tampered.summary and "deleted" in tampered.summary
    assert restore_events() == [{"alert_id": canary_alert.pk, "change": "deleted"}]
    # Both are delivered: the alert raised again, and the tampering.
    subjects = [m.subject for m in mail.outbox]
    assert any("カナリア" in s for s in subjects) and any("削除" in s for s in subjects)

    verify_passes()
    assert Alert.objects.filter(rule="alert_tampered").count() == 1


def test_an_alert_closed_or_downgraded_by_sql_is_put_back_by_the_sweep(canary_alert):
    original = canary_alert.summary
    sql(
        "UPDATE audit_alert SET state = 'closed', severity = 'info', note = 'nothing',"
        " closed_by_id = 1 WHERE id = %s",
        [canary_alert.pk],
    )
    said = verify_fails("sweep")
    assert f"alert #{canary_alert.pk} (canary_touched): edited" in said
    canary_alert.refresh_from_db()
    assert (canary_alert.state, canary_alert.severity, canary_alert.note) == (
        "open",
        "critical",
        "",
    )
    assert canary_alert.closed_by_id is None and canary_alert.summary == original
    assert restore_events() == [{"alert_id": canary_alert.pk, "change": "edited"}]
    assert "state" in tamper_alert().summary and "severity" in tamper_alert().summary


def test_an_edited_summary_or_a_backdated_alert_is_put_back(canary_alert):
    sql(
        "UPDATE audit_alert SET summary = 'routine', raised_at = %s WHERE id = %s",
        ["2001-01-01 00:00:00+00:00", canary_alert.pk],
    )
    verify_fails()
    canary_alert.refresh_from_db()
    assert canary_alert.summary.startswith("監査ログ（イベント #")
    assert canary_alert.raised_at.year > 2001


def test_an_alert_row_written_by_sql_is_removed_and_reported(world):
    forged = Alert.objects.create(
        rule="reveal_budget", severity="critical", subject_user_id=world.operator.pk, summary="x"
    )
    said = verify_fails()
    assert f"alert #{forged.pk} (reveal_budget): not raised by Yobikake" in said
    assert not Alert.objects.filter(pk=forged.pk).exists()
    assert restore_events() == [{"alert_id": forged.pk, "change": "forged"}]
    assert f"#{forged.pk}" in tamper_alert().summary


def test_alerts_handled_through_yobikake_leave_the_queue_intact(canary_alert, world):
    services.acknowledge_alert(actor=world.security, alert=canary_alert)
    verify_passes()
    services.close_alert(actor=world.security, alert=canary_alert, note="a test call; checked")
    deliver(canary_alert.pk)  # as it is once the transaction that raised it commits
    canary_alert.refresh_from_db()
    assert canary_alert.delivery == "mail:sent"
    verify_passes()
    assert not Alert.objects.filter(rule="alert_tampered").exists()


def test_a_closing_note_rewritten_by_sql_is_found(canary_alert, world):
    services.close_alert(actor=world.security, alert=canary_alert, note="the operator's own test")
    sql("UPDATE audit_alert SET note = 'nothing found' WHERE id = %s", [canary_alert.pk])
    said = verify_fails()
    assert "note" in said
    canary_alert.refresh_from_db()
    assert canary_alert.state == "closed" and "書き換えられた" in canary_alert.note
    verify_passes()  # the note as put back is not an edit


def test_the_alert_event_records_what_the_queue_is_rebuilt_from(canary_alert):
    raised = Event.objects.filter(tag=AuditTag.ALERT_RAISE).get()
    details = json.loads(raised.details)
    assert details["alert_id"] == canary_alert.pk
    assert (details["rule"], details["severity"]) == ("canary_touched", "critical")
    assert details["subject_user_id"] == canary_alert.subject_user_id
    assert details["summary"].startswith("sha256:")
    assert raised.seq == head_seq()


def test_the_subject_s_user_name_or_the_delivery_edited_by_sql_is_put_back(canary_alert, world):
    deliver(canary_alert.pk)
    sql(
        "UPDATE audit_alert SET subject_username = %s, delivery = 'mail:sent webhook:200'"
        " WHERE id = %s",
        [world.security.username, canary_alert.pk],
    )
    said = verify_fails()
    assert f"alert #{canary_alert.pk} (canary_touched): edited" in said
    assert "subject_username" in said and "delivery" in said
    canary_alert.refresh_from_db()
    assert canary_alert.subject_username == world.operator.username
    assert canary_alert.delivery == "mail:sent"
    verify_passes()


def test_an_alert_no_event_raised_is_restored_saying_so_in_japanese(world):
    with transaction.atomic():
        alert = raise_alert("append_only_guard_missing", Alert.Severity.CRITICAL, None, "x")
    sql("DELETE FROM audit_alert WHERE id = %s", [alert.pk])
    verify_fails()
    alert.refresh_from_db()
    assert "None" not in alert.summary
    assert alert.summary.endswith(
        "発生元はイベントではなく、システム自身の点検（起動時の点検、監査ログの検証）です。"
    )
    verify_passes()
