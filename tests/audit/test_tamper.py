"""Tamper with the stored log in each way an administrator might; `audit verify` must
name the first bad event every time."""

import secrets
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from tests.audit.helpers import fill_log, head_seq
from yobikake.audit import chain, guards
from yobikake.audit.models import Alert, Checkpoint, Event
from yobikake.audit.verify import verify_log

pytestmark = pytest.mark.django_db


@pytest.fixture
def log(settings):
    settings.YOBIKAKE_AUDIT_CHECKPOINT_EVERY = 5
    fill_log(12)
    assert head_seq() == 12


def sql(statement, params=()):
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


def first_problem():
    report = verify_log()
    assert not report.intact
    return report.first


def test_an_intact_log_verifies(log):
    report = verify_log()
    assert report.intact
    assert (report.checked, report.last_seq) == (12, 12)
    assert report.checkpoints >= 2
    out = StringIO()
    call_command("audit", "verify", stdout=out)
    assert out.getvalue().startswith("intact: 12 events")


def test_verify_can_start_part_way(log):
    report = verify_log(from_seq=7)
    assert report.intact and report.checked == 6


def test_the_database_refuses_updates_and_deletes(log):
    for statement in (
        "UPDATE audit_event SET reason = 'x' WHERE seq = 3",
        "DELETE FROM audit_event WHERE seq = 3",
        "DELETE FROM audit_checkpoint",
    ):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            sql(statement)
    if connection.vendor == "postgresql":
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            sql("TRUNCATE audit_event")
    assert verify_log().intact


def test_an_edited_field_is_found(log):
    guards.remove(connection)
    sql("UPDATE audit_event SET actor_username = 'someone-else' WHERE seq = 6")
    problem = first_problem()
    assert (problem.seq, problem.kind) == (6, "edited")


def test_a_deleted_row_is_found(log):
    guards.remove(connection)
    sql("DELETE FROM audit_event WHERE seq = 4")
    problem = first_problem()
    assert (problem.seq, problem.kind) == (4, "deleted")


def test_a_deleted_tail_is_found_by_the_checkpoint(log):
    guards.remove(connection)
    sql("DELETE FROM audit_event WHERE seq > 8")
    problem = first_problem()
    assert (problem.seq, problem.kind) == (9, "deleted")


def test_reordered_events_are_found(log):
    guards.remove(connection)
    sql("UPDATE audit_event SET seq = 1000000 WHERE seq = 7")
    sql("UPDATE audit_event SET seq = 7 WHERE seq = 8")
    sql("UPDATE audit_event SET seq = 8 WHERE seq = 1000000")
    problem = first_problem()
    assert (problem.seq, problem.kind) == (7, "reordered")
    assert "event 8" in problem.detail


def test_a_forged_checkpoint_is_found(log):
    last = Event.objects.get(seq=12)
    Checkpoint.objects.create(
        head_seq=12, head_hash=last.hash, at=timezone.now(), key_id="x", signature="00" * 64
    )
    problem = first_problem()
    assert (problem.seq, problem.kind) == (12, "bad signature")


def test_a_well_chained_event_appended_by_sql_is_found(log):
    # What a database administrator can do: compute the chain, but not the MAC.
    last = Event.objects.get(seq=12)
    fields = {
        "seq": 13,
        "at": timezone.now(),
        "tag": "role:grant:approve",
        "outcome": "allowed",
        "reason": "",
        "actor_user_id": 1,
        "actor_username": "fed-admin",
        "actor_organization_id": 1,
        "actor_roles": "federation_admin",
        "subject_user_id": 99,
        "insurer_id": None,
        "list_id": None,
        "target_id": None,
        "purpose": "",
        "client_ip": "10.0.0.9",
        "details": '{"role":"operator"}',
        "prev_hash": last.hash,
    }
    digest = chain.event_hash([fields[n] for n in chain.FIELDS])
    Event.objects.create(**fields, hash=digest, mac=secrets.token_hex(32))
    problem = first_problem()
    assert (problem.seq, problem.kind) == (13, "forged")


def test_the_command_fails_names_the_event_and_raises_a_critical_alert(log):
    guards.remove(connection)
    sql("UPDATE audit_event SET tag = 'auth:session:logout2' WHERE seq = 2")
    with pytest.raises(CommandError, match=r"first bad event 2 \(edited\)"):
        call_command("audit", "verify", stdout=StringIO(), stderr=StringIO())
    alert = Alert.objects.get(rule="audit_verify_failed")
    assert alert.severity == "critical" and "event 2" in alert.summary


def test_the_database_builds_the_same_encoding_as_python(world, monkeypatch):
    # Verification's fast path; a difference would only slow it down, so check it here.
    from datetime import UTC, datetime

    from yobikake.audit.services import append_event
    from yobikake.audit.tags import AuditTag

    whole_second = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)
    monkeypatch.setattr("yobikake.audit.services.timezone.now", lambda: whole_second)
    append_event(tag=AuditTag.LOGOUT, actor=None)
    monkeypatch.undo()
    append_event(
        tag=AuditTag.ROLE_APPROVE,
        actor=world.fed_admin,
        subject=world.operator,
        insurer_id=world.insurer_a.pk,
        list_id=5,
        target_id=6,
        purpose="call",
        denied="needs_second_person",
        details={"role": "operator", "n": 3, "ok": True},
    )
    encoding = chain.sql_canonical(connection.vendor)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT seq, {encoding} FROM audit_event ORDER BY seq")
        from_sql = dict(cursor.fetchall())
    for event in Event.objects.all():
        values = list(event.chained_values())
        assert from_sql[event.seq].encode() == chain.canonical(values, checked=False)


@pytest.mark.django_db(transaction=True)
def test_verification_split_over_worker_processes_agrees(settings):
    settings.YOBIKAKE_AUDIT_CHECKPOINT_EVERY = 5
    fill_log(30)
    report = verify_log(workers=3)
    assert report.intact and report.checked == 30 and report.last_seq == 30
    guards.remove(connection)
    sql("UPDATE audit_event SET reason = 'x' WHERE seq = 24")
    sql("DELETE FROM audit_event WHERE seq = 27")
    guards.install(connection)
    problem = verify_log(workers=3).first
    assert (problem.seq, problem.kind) == (24, "edited")
    guards.remove(connection)
    sql("DELETE FROM audit_event WHERE seq = 11")
    guards.install(connection)
    problem = verify_log(workers=3).first
    assert (problem.seq, problem.kind) == (11, "deleted")
