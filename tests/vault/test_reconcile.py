"""Reconciliation with the application: real reveals through the reveal gate, the audit
log reported through the port (vault/audit_report.py), and the custodian's ledger
reconciled against it (custody/reconcile.py), on both databases. The custodian is the
test's in-process one, except in the last test, which runs `yobikake custodian serve`
and `yobikake custodian reconcile` as the security officer would."""

import json
import subprocess
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from tests.audit.test_tamper import sql
from tests.conftest import load_people
from tests.custody.server_fixture import YOBIKAKE
from yobikake.audit import guards
from yobikake.audit.models import Event
from yobikake.audit.services import _HEAD_ATTR, append_event
from yobikake.audit.tags import AuditTag
from yobikake.custody.alerts import AlertKind
from yobikake.custody.config import CONFIG_FILE
from yobikake.custody.protocol import CustodyRefused, CustodyUnavailable, Refusal
from yobikake.custody.reconcile import REVEAL_TAGS, Reconciler
from yobikake.intake.models import Target
from yobikake.vault.audit_report import report
from yobikake.vault.custodian import custodian
from yobikake.vault.models import Purpose
from yobikake.vault.reveal import RevealUnavailable, open_request, reveal
from yobikake.vault.services import issue_grant


@pytest.fixture
def targets(world):
    target_list, _ = load_people(world, count=4)
    return list(Target.objects.filter(target_list=target_list).order_by("row_number"))


def checked_out(world, target):
    return issue_grant(
        actor=world.supervisor, holder=world.operator, target=target, purpose=Purpose.CALL
    )


def later(custody, minutes: float = 3) -> Reconciler:
    """The custodian's reconciliation, its clock `minutes` on (past the grace period)."""
    inner = custody.custodian
    at = datetime.now(UTC) + timedelta(minutes=minutes)
    return Reconciler(
        inner.ledger,
        inner.channel,
        grace=inner.config.reconcile_grace,
        deadline=inner.config.report_deadline,
        clock=lambda: at,
    )


class Reporting:
    """The port's reporting calls, answered by a reconciler whose clock is moved on: the
    report arrives past the grace period of what came before it (its heartbeat goes to
    the custodian as it is)."""

    def __init__(self, reconciler: Reconciler, custody) -> None:
        self.report_cursor = reconciler.cursor
        self.report_events = reconciler.receive
        self.heartbeat = custody.heartbeat


def report_later(custody, minutes: float = 3):
    return report(Reporting(later(custody, minutes), custody))


def critical(custody) -> list[str]:
    return [a.kind for a in custody.custodian.alerts() if a.severity == "critical"]


def test_the_custodians_tags_are_the_reveal_gates():
    assert REVEAL_TAGS == {
        "call": AuditTag.REVEAL_CALL,
        "research": AuditTag.REVEAL_RESEARCH,
        "export": AuditTag.REVEAL_EXPORT,
    }


def test_a_reveal_and_its_event_reconcile_without_an_alert(custody, world, targets):
    checked_out(world, targets[0])
    reveal(world.operator, targets[0], Purpose.CALL)
    event = Event.objects.get(tag=AuditTag.REVEAL_CALL)
    opened = [e for e in custody.custodian.entries() if e.kind == "open"]
    assert [e.event_id for e in opened] == [event.seq]
    reported = report_later(custody)
    assert reported.events == Event.objects.count()
    assert reported.through.hash == Event.objects.order_by("-seq")[0].hash
    summary = later(custody, 6).run()
    assert summary["ok"] and summary["matched"] == 1, summary
    assert critical(custody) == []


def test_an_open_through_the_port_without_the_gates_event_is_a_critical_alert(
    custody, world, targets
):
    """The insider with a shell on the application host: the application's credentials
    and code, used without the reveal gate, so nothing is written to the audit log."""
    grant = checked_out(world, targets[1])
    custodian().open(open_request(world.operator.pk, grant.pk, targets[1], Purpose.CALL))
    assert not Event.objects.filter(tag=AuditTag.REVEAL_CALL).exists()
    report_later(custody)
    later(custody, 6).run()
    assert critical(custody) == [AlertKind.OPEN_UNRECORDED]
    alert = custody.custodian.alerts()[-1]
    assert f"row {targets[1].pk}" in alert.summary
    assert alert.holder_user_id == world.operator.pk


def test_an_event_deleted_after_the_open_is_a_critical_alert(custody, world, targets):
    checked_out(world, targets[0])
    reveal(world.operator, targets[0], Purpose.CALL)
    event = Event.objects.get(tag=AuditTag.REVEAL_CALL)
    append_event(tag=AuditTag.LOGIN_SUCCESS, actor=world.operator)
    guards.remove(connection)
    sql(f"DELETE FROM audit_event WHERE seq = {event.seq}")
    guards.install(connection)
    with pytest.raises(CustodyRefused) as refused:
        report()
    assert refused.value.code == Refusal.REPORT_BROKEN
    assert critical(custody) == [AlertKind.REPORT_BROKEN]
    assert custody.report_cursor().through_seq == event.seq - 1
    later(custody).run()  # the open still waits for its event: silence takes over
    later(custody, minutes=11).run()
    assert AlertKind.REPORT_MISSING in critical(custody)


def test_an_event_deleted_after_it_was_reported_is_still_held_by_the_custodian(
    custody, world, targets
):
    checked_out(world, targets[0])
    reveal(world.operator, targets[0], Purpose.CALL)
    report_later(custody)
    event = Event.objects.get(tag=AuditTag.REVEAL_CALL)
    guards.remove(connection)
    sql(f"DELETE FROM audit_event WHERE seq >= {event.seq}")
    sql(
        "UPDATE audit_chainhead SET seq = seq - 1, "
        f"hash = (SELECT hash FROM audit_event WHERE seq = {event.seq - 1})"
    )
    guards.install(connection)
    setattr(connection, _HEAD_ATTR, None)
    append_event(tag=AuditTag.LOGIN_SUCCESS, actor=world.operator)  # takes the seq again
    with pytest.raises(CustodyRefused):
        report_later(custody)
    assert later(custody, 6).run()["matched"] == 1  # what was reported stands
    assert critical(custody) == [AlertKind.REPORT_BROKEN]


def test_a_forged_reveal_event_without_an_open_is_a_critical_alert(custody, world, targets):
    grant = checked_out(world, targets[2])
    append_event(
        tag=AuditTag.REVEAL_CALL,
        actor=world.operator,
        insurer_id=targets[2].insurer_id,
        list_id=targets[2].target_list_id,
        target_id=targets[2].pk,
        purpose="call",
        details={"grant_id": grant.pk},
    )
    report_later(custody)
    later(custody, 6).run()
    assert critical(custody) == [AlertKind.EVENT_WITHOUT_OPEN]
    assert f"row {targets[2].pk}" in custody.custodian.alerts()[-1].summary


def test_a_custodian_that_could_not_be_reached_does_not_alarm(custody, world, targets, monkeypatch):
    checked_out(world, targets[0])

    def unreachable(request):
        raise CustodyUnavailable("down")

    monkeypatch.setattr(custody, "open", unreachable)
    with pytest.raises(RevealUnavailable):
        reveal(world.operator, targets[0], Purpose.CALL)
    allowed, denied = Event.objects.filter(tag=AuditTag.REVEAL_CALL).order_by("seq")
    assert denied.details == json.dumps({"reveal_event": allowed.seq}, separators=(",", ":"))
    report_later(custody)
    summary = later(custody, 6).run()
    assert summary["ok"] and summary["unreachable"] == 1, summary


def test_silence_past_the_deadline_is_a_critical_alert(custody, world):
    report()
    assert later(custody, minutes=9).run()["ok"]
    summary = later(custody, minutes=11).run()
    assert [a["kind"] for a in summary["alerts"]] == [AlertKind.REPORT_MISSING]
    assert critical(custody) == [AlertKind.REPORT_MISSING]


@pytest.mark.django_db(transaction=True)
def test_the_real_custodian_reconciles_from_its_own_command(custody_process, world, targets):
    """`yobikake custodian serve` receives the report over mutual TLS, and `yobikake
    custodian reconcile` (its own home, no application database) finds the open made
    without its event."""
    config = custody_process.home / CONFIG_FILE
    config.write_text(json.dumps({**json.loads(config.read_text()), "reconcile_grace_seconds": 1}))

    def reconcile() -> tuple[int, dict]:
        time.sleep(1.1)
        done = subprocess.run(
            [YOBIKAKE, "custodian", "reconcile", "--home", custody_process.home],
            capture_output=True,
            text=True,
        )
        return done.returncode, json.loads(done.stdout)

    checked_out(world, targets[0])
    reveal(world.operator, targets[0], Purpose.CALL)
    time.sleep(1.1)
    report()
    code, summary = reconcile()
    assert (code, summary["ok"], summary["matched"]) == (0, True, 1), summary
    grant = checked_out(world, targets[1])
    custodian().open(open_request(world.operator.pk, grant.pk, targets[1], Purpose.CALL))
    time.sleep(1.1)
    report()
    code, summary = reconcile()
    assert code == 1
    assert [a["kind"] for a in summary["alerts"]] == [AlertKind.OPEN_UNRECORDED]
    logged = [json.loads(line) for line in (custody_process.home / "alerts.log").open()]
    assert logged[-1]["kind"] == AlertKind.OPEN_UNRECORDED
