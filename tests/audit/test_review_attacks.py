"""What a database administrator tried in review, and what verify must say about it."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError, connection, transaction

from tests.audit.helpers import fill_log
from tests.audit.test_tamper import first_problem, sql
from yobikake.audit import guards
from yobikake.audit.models import Alert, ChainHead, Checkpoint, Event
from yobikake.audit.services import _HEAD_ATTR, _Head, append_event
from yobikake.audit.tags import AuditTag
from yobikake.audit.verify import verify_log
from yobikake.audit.witness import countersigned_heads

pytestmark = pytest.mark.django_db


@pytest.fixture
def verified_log(settings):
    settings.YOBIKAKE_AUDIT_CHECKPOINT_EVERY = 4
    fill_log(12)
    call_command("audit", "verify", stdout=StringIO())
    assert countersigned_heads()[-1].size == 12


def verify_command_fails_naming(seq, kind):
    with pytest.raises(CommandError, match=rf"first bad event {seq} \({kind}\)"):
        call_command("audit", "verify", stdout=StringIO(), stderr=StringIO())


def test_cutting_the_tail_with_its_checkpoints_and_head_is_caught(verified_log):
    guards.remove(connection)
    sql("DELETE FROM audit_event WHERE seq > 8")
    sql("DELETE FROM audit_checkpoint WHERE head_seq > 8")
    sql("UPDATE audit_chainhead SET seq = 8, hash = (SELECT hash FROM audit_event WHERE seq = 8)")
    guards.install(connection)
    setattr(connection, _HEAD_ATTR, None)
    fill_log(1)  # and carry on as if nothing happened
    verify_command_fails_naming(10, "deleted")  # the log no longer reaches what was verified


def test_wiping_the_whole_log_is_caught(verified_log):
    guards.remove(connection)
    sql("DELETE FROM audit_event")
    sql("DELETE FROM audit_checkpoint")
    guards.install(connection)
    verify_command_fails_naming(1, "deleted")


def test_a_head_ahead_of_the_events_is_caught(settings):
    fill_log(5)
    guards.remove(connection)
    sql("DELETE FROM audit_event WHERE seq = 5")
    sql("DELETE FROM audit_checkpoint WHERE head_seq = 5")
    problem = first_problem()
    assert (problem.seq, problem.kind) == (5, "deleted")


def test_events_numbered_below_one_are_refused_and_caught():
    fill_log(3)
    with pytest.raises(IntegrityError), transaction.atomic():
        sql(
            "INSERT INTO audit_event (seq, at, tag, outcome, reason, actor_username, actor_roles,"
            " purpose, client_ip, details, prev_hash, hash, mac) SELECT -1, at, tag, outcome,"
            " reason, 'innocent', actor_roles, purpose, client_ip, details, prev_hash, hash, mac"
            " FROM audit_event WHERE seq = 3"
        )


def test_a_missing_or_unreadable_time_is_edited():
    fill_log(6)
    guards.remove(connection)
    if connection.vendor == "postgresql":
        sql("ALTER TABLE audit_event ALTER COLUMN at DROP NOT NULL")
        sql(
            "UPDATE audit_event SET at = NULL, tag = to_char(at, 'YYYY') || chr(31) || tag"
            " WHERE seq = 4"
        )
        sql("UPDATE audit_event SET at = 'infinity' WHERE seq = 5")
    else:
        sql(
            "UPDATE audit_event SET at = '', tag = substr(at, 1, 4) || char(31) || tag"
            " WHERE seq = 4"
        )
    problem = first_problem()
    assert (problem.seq, problem.kind) == (4, "edited")


def test_a_malformed_mac_is_forged_not_a_crash():
    fill_log(3)
    guards.remove(connection)
    sql("UPDATE audit_event SET mac = 'ünïcode' WHERE seq = 3")
    problem = first_problem()
    assert (problem.seq, problem.kind) == (3, "forged")


def test_a_crashing_verification_still_raises_the_alert(monkeypatch):
    fill_log(2)

    def crash(*args, **kwargs):
        raise TypeError("boom")

    monkeypatch.setattr("yobikake.audit.management.commands.audit.verify_log", crash)
    with pytest.raises(CommandError, match="could not be verified"):
        call_command("audit", "verify", stdout=StringIO(), stderr=StringIO())
    assert Alert.objects.get(rule="audit_verify_failed").severity == "critical"


def test_a_bogus_checkpoint_does_not_hide_a_deletion(verified_log):
    guards.remove(connection)
    sql("DELETE FROM audit_event WHERE seq > 10")
    event = Event.objects.get(seq=2)
    Checkpoint.objects.create(head_seq=2, head_hash=event.hash, key_id="x", signature="00")
    kinds = {(p.seq, p.kind) for p in verify_log().problems}
    assert (2, "bad signature") in kinds
    assert (11, "deleted") in kinds


def test_every_checkpoint_is_checked_even_two_for_one_event(settings):
    settings.YOBIKAKE_AUDIT_CHECKPOINT_EVERY = 3
    fill_log(3)
    real = Checkpoint.objects.get(head_seq=3)
    Checkpoint.objects.create(
        head_seq=3, head_hash=real.head_hash, at=real.at, key_id="x", signature="11" * 64
    )
    assert [(p.seq, p.kind) for p in verify_log().problems] == [(3, "bad signature")]


def test_a_guess_with_the_right_number_but_another_hash_falls_back(db):
    append_event(tag=AuditTag.LOGOUT, actor=None)
    head = ChainHead.objects.get(pk=1)
    setattr(connection, _HEAD_ATTR, _Head(head.seq, "f" * 64, None))
    append_event(tag=AuditTag.LOGOUT, actor=None)
    assert verify_log().intact


def test_failed_logins_without_an_actor_raise_repeated_denials(world, settings):
    from django.test import Client

    from tests.accounts.test_login import password_step

    for _ in range(settings.YOBIKAKE_ALERT_DENIALS):
        password_step(Client(), "staff-a", password="wrong password")
    alert = Alert.objects.get(rule="repeated_denials")
    assert (alert.subject_user_id, alert.subject_username) == (world.staff_a.pk, "staff-a")


def test_off_hours_reveals_raise_one_alert_and_denied_ones_none(world, monkeypatch):
    monkeypatch.setattr("yobikake.audit.alerts.calling_hours_contain", lambda at: False)
    for _ in range(5):
        append_event(tag=AuditTag.REVEAL_CALL, actor=world.researcher, denied="no_grant")
    assert not Alert.objects.filter(rule="reveal_off_hours").exists()
    for _ in range(5):
        append_event(tag=AuditTag.REVEAL_CALL, actor=world.operator, target_id=1)
    assert Alert.objects.filter(rule="reveal_off_hours").count() == 1


@pytest.mark.parametrize("value", ["090-1234-5678", "someone@example.jp", "1-2-3"])
def test_details_refuse_phone_numbers_and_mail_addresses(value):
    from yobikake.audit.services import AuditError

    with pytest.raises(AuditError):
        append_event(tag=AuditTag.LOGOUT, actor=None, details={"contact": value})


def test_user_names_are_ids_not_names(world):
    from yobikake.accounts import services as accounts

    with pytest.raises(accounts.AccountError):
        accounts.create_user(
            actor=world.sysadmin,
            username="山田太郎",
            organization=world.federation,
            password="a long enough passphrase",
        )


def test_revoking_someone_elses_token_is_refused_on_the_record(world, as_user):
    from yobikake.accounts.services import create_api_token

    token, _ = create_api_token(actor=world.staff_a, name="t", days=3)
    assert (
        as_user(world.staff_b).post(f"/accounts/api-tokens/{token.pk}/revoke/").status_code == 404
    )
    event = Event.objects.filter(tag=AuditTag.API_TOKEN_REVOKE).get()
    assert (event.outcome, event.actor_user_id) == ("denied", world.staff_b.pk)
