"""Reconciliation on the custodian's side: its ledger against the audit events the
application reports, with the custodian's own clock moved past the grace period. The
application's side (real reveals, real reports, both databases) is
tests/vault/test_reconcile.py."""

import hashlib
import json
from dataclasses import replace

import pytest

from tests.custody.conftest import new_batch
from yobikake.custody.alerts import AlertKind
from yobikake.custody.ledger import GENESIS
from yobikake.custody.protocol import AuditEvent, CustodyRefused, Purpose, Refusal
from yobikake.custody.reconcile import Reconciler

GRACE, DEADLINE = 120, 600


class AppLog:
    """The application's audit log as it reports it: events in sequence, each chained to
    the one before."""

    def __init__(self) -> None:
        self.events: list[AuditEvent] = []

    def append(self, tag: str, *, outcome: str = "allowed", **values) -> AuditEvent:
        prev = self.events[-1].hash if self.events else GENESIS
        seq = len(self.events) + 1
        fields = {
            "at": "2026-12-07T03:00:00.000000Z",
            "reason": "",
            "actor_user_id": None,
            "insurer_id": None,
            "list_id": None,
            "target_id": None,
            "purpose": "",
            "details": "",
            **values,
        }
        digest = hashlib.sha256(f"{prev}{seq}{tag}{fields}".encode()).hexdigest()
        event = AuditEvent(seq=seq, tag=tag, outcome=outcome, prev_hash=prev, hash=digest, **fields)
        self.events.append(event)
        return event

    def login(self) -> AuditEvent:
        return self.append("auth:login:success", actor_user_id=7)

    def reveal(self, batch, row_id: int = 1, *, user_id: int = 7, grant_id: int = 3):
        return self.append(
            "target:reveal:call",
            actor_user_id=user_id,
            insurer_id=batch.insurer_id,
            list_id=batch.list_id,
            target_id=row_id,
            purpose="call",
            details=json.dumps({"grant_id": grant_id}, separators=(",", ":")),
        )


@pytest.fixture
def reconciler(local_custodian, clock):
    return Reconciler(
        local_custodian.ledger, local_custodian.channel, grace=GRACE, deadline=DEADLINE, clock=clock
    )


def opened_with_event(custodian, batch, log: AppLog, row_id: int = 1):
    event = log.reveal(batch, row_id)
    request = batch.request(row_id)
    justified = replace(request.justification, event_id=event.seq)
    custodian.open(replace(request, justification=justified))
    return event


def send(reconciler, log: AppLog) -> None:
    """Report as the application does: the last event the custodian holds, and after."""
    through = reconciler.cursor().through_seq
    reconciler.receive(log.events[max(through - 1, 0) :])


def later_report(reconciler, clock, log: AppLog) -> None:
    """Past the grace period, the application reports what it has."""
    clock.advance(seconds=GRACE + 1)
    send(reconciler, log)
    clock.advance(seconds=GRACE + 1)


def alert_kinds(custodian) -> list[str]:
    return [alert.kind for alert in custodian.alerts() if alert.severity == "critical"]


def test_an_open_with_its_event_is_matched_without_an_alert(local_custodian, reconciler, clock):
    log = AppLog()
    log.login()
    batch = new_batch(local_custodian)
    event = opened_with_event(local_custodian, batch, log)
    later_report(reconciler, clock, log)
    summary = reconciler.run()
    assert summary["ok"] and summary["matched"] == 1, summary
    assert summary["reported_through"] == event.seq
    assert alert_kinds(local_custodian) == []
    opens = [e for e in local_custodian.entries() if e.kind == "open"]
    assert [e.event_id for e in opens] == [event.seq]
    assert local_custodian.verify_ledger().ok
    # Settled once: a later pass finds nothing new and raises nothing.
    clock.advance(seconds=60)
    send(reconciler, log)
    assert reconciler.run()["matched"] == 0
    assert alert_kinds(local_custodian) == []


def test_an_open_straight_to_the_port_without_an_event_is_a_critical_alert(
    local_custodian, reconciler, clock
):
    """The insider with the application's credentials opens through the port and never
    writes the reveal gate's event."""
    log = AppLog()
    log.login()
    batch = new_batch(local_custodian)
    local_custodian.open(batch.request(4, user_id=9))
    later_report(reconciler, clock, log)
    summary = reconciler.run()
    assert not summary["ok"]
    assert alert_kinds(local_custodian) == [AlertKind.OPEN_UNRECORDED]
    alert = local_custodian.alerts()[-1]
    assert "row 4" in alert.summary and "holder 9" in alert.summary
    assert "names no audit event" in alert.summary
    assert (alert.holder_user_id, alert.list_id) == (9, batch.list_id)


def test_an_open_naming_someone_elses_event_is_a_critical_alert(local_custodian, reconciler, clock):
    """An insider who names a real event (another operator's reveal) for an open of
    their own."""
    log = AppLog()
    batch = new_batch(local_custodian)
    event = opened_with_event(local_custodian, batch, log, row_id=1)
    request = batch.request(2, user_id=9)
    local_custodian.open(
        replace(request, justification=replace(request.justification, event_id=event.seq))
    )
    replay = batch.request(1)
    local_custodian.open(
        replace(replay, justification=replace(replay.justification, event_id=event.seq))
    )
    later_report(reconciler, clock, log)
    summary = reconciler.run()
    assert summary["matched"] == 1
    found = [a.summary for a in local_custodian.alerts() if a.kind == AlertKind.OPEN_UNRECORDED]
    assert len(found) == 2
    assert "actor_user_id, target_id differ" in found[0]
    assert "already matched" in found[1]


def test_an_event_deleted_before_it_was_reported_breaks_the_report(
    local_custodian, reconciler, clock
):
    log = AppLog()
    log.login()
    batch = new_batch(local_custodian)
    opened_with_event(local_custodian, batch, log)
    log.login()
    reconciler.receive(log.events[:1])
    with pytest.raises(CustodyRefused) as refused:
        reconciler.receive([log.events[0], *log.events[2:]])  # event 2, the reveal, deleted
    assert refused.value.code == Refusal.REPORT_BROKEN
    assert alert_kinds(local_custodian) == [AlertKind.REPORT_BROKEN]
    assert reconciler.cursor().through_seq == 1


def test_a_log_rewritten_without_the_event_leaves_the_open_unmatched(
    local_custodian, reconciler, clock
):
    """Deleted and the chain rebuilt (the insider holds the database and the log's MAC
    key): the open's event id now names another event."""
    log = AppLog()
    log.login()
    batch = new_batch(local_custodian)
    opened_with_event(local_custodian, batch, log)
    rewritten = AppLog()
    rewritten.login()
    rewritten.login()
    later_report(reconciler, clock, rewritten)
    reconciler.run()
    assert alert_kinds(local_custodian) == [AlertKind.OPEN_UNRECORDED]
    assert "names audit event 2, whose tag, purpose" in local_custodian.alerts()[-1].summary


def test_a_reported_event_cannot_be_taken_back(local_custodian, reconciler, clock):
    log = AppLog()
    log.login()
    reconciler.receive(log.events)
    forged = AppLog()
    forged.append("auth:login:failure")
    forged.login()
    with pytest.raises(CustodyRefused):
        reconciler.receive(forged.events)
    with pytest.raises(CustodyRefused):
        reconciler.receive([])  # nothing new, but not even the event reported before
    assert reconciler.cursor().hash == log.events[0].hash


def test_an_event_whose_open_is_another_is_alerted_both_ways(local_custodian, reconciler, clock):
    """A forged event, and an open of another row naming it: neither accounts for the
    other."""
    log = AppLog()
    batch = new_batch(local_custodian)
    forged = log.reveal(batch, row_id=5)
    request = batch.request(6)
    local_custodian.open(
        replace(request, justification=replace(request.justification, event_id=forged.seq))
    )
    later_report(reconciler, clock, log)
    reconciler.run()
    clock.advance(seconds=60)
    reconciler.run()
    assert sorted(alert_kinds(local_custodian)) == [
        AlertKind.EVENT_WITHOUT_OPEN,
        AlertKind.OPEN_UNRECORDED,
    ]
    clock.advance(seconds=60)
    assert reconciler.run()["alerts_total"] == 0  # each settled once


def test_two_reporters_at_once_repeat_more_than_the_last_event(local_custodian, reconciler):
    log = AppLog()
    for _ in range(3):
        log.login()
    reconciler.receive(log.events[:2])
    log.login()
    reconciler.receive(log.events[1:])
    reconciler.receive(log.events[:])  # the slower one, from its older cursor
    assert reconciler.cursor().through_seq == 4
    edited = replace(log.events[1], hash="f" * 64)
    with pytest.raises(CustodyRefused):
        reconciler.receive([edited, *log.events[2:]])
    assert alert_kinds(local_custodian) == [AlertKind.REPORT_BROKEN]


def test_an_event_without_its_open_is_a_critical_alert(local_custodian, reconciler, clock):
    log = AppLog()
    batch = new_batch(local_custodian)
    forged = log.reveal(batch, row_id=5, user_id=8)
    later_report(reconciler, clock, log)
    reconciler.run()
    assert alert_kinds(local_custodian) == [AlertKind.EVENT_WITHOUT_OPEN]
    alert = local_custodian.alerts()[-1]
    assert f"audit event {forged.seq}" in alert.summary and "row 5" in alert.summary


def test_a_refused_open_and_an_unreachable_custodian_do_not_alarm(
    local_custodian, reconciler, clock
):
    log = AppLog()
    batch = new_batch(local_custodian)
    event = log.reveal(batch, row_id=2)
    request = batch.request(2, fields=("name_kanji", "address"))  # not a call's fields
    with pytest.raises(CustodyRefused):
        local_custodian.open(
            replace(request, justification=replace(request.justification, event_id=event.seq))
        )
    unanswered = log.reveal(batch, row_id=3)
    log.append(
        "target:reveal:call",
        outcome="denied",
        reason="custodian_unavailable",
        actor_user_id=7,
        details=json.dumps({"reveal_event": unanswered.seq}),
    )
    later_report(reconciler, clock, log)
    summary = reconciler.run()
    assert summary["ok"], summary
    assert (summary["refused"], summary["unreachable"]) == (1, 1)


@pytest.mark.usefixtures("insurer_key_confirmed")
def test_an_export_is_matched_by_its_approval(local_custodian, reconciler, clock):
    from tests.custody.test_core_bulk import export_of, file_of

    log = AppLog()
    batch = new_batch(local_custodian)
    request = export_of([batch], range(1, 4))
    local_custodian.produce_file(file_of(request))
    log.append(
        "target:reveal:export",
        actor_user_id=request.holder.user_id,
        insurer_id=request.insurer_id,
        purpose="export",
        details=json.dumps({"approval_id": request.approval_id, "count": 3}),
    )
    later_report(reconciler, clock, log)
    assert reconciler.run()["matched"] == 1
    local_custodian.produce_file(file_of(replace(request, approval_id=request.approval_id + 1)))
    later_report(reconciler, clock, log)
    reconciler.run()
    assert alert_kinds(local_custodian) == [AlertKind.OPEN_UNRECORDED]
    assert "approval" in local_custodian.alerts()[-1].summary


def test_silence_past_the_deadline_is_a_critical_alert_once_per_deadline(
    local_custodian, reconciler, clock
):
    reconciler.receive([])
    clock.advance(seconds=DEADLINE - 1)
    assert reconciler.run()["ok"]
    clock.advance(seconds=2)
    summary = reconciler.run()
    assert [a["kind"] for a in summary["alerts"]] == [AlertKind.REPORT_MISSING]
    clock.advance(seconds=60)
    reconciler.run()
    assert alert_kinds(local_custodian) == [AlertKind.REPORT_MISSING]
    reconciler.receive([])
    assert reconciler.run()["ok"]


def test_a_custodian_never_reported_to_alerts_after_the_deadline(
    local_custodian, reconciler, clock
):
    clock.advance(seconds=DEADLINE + 1)
    reconciler.run()
    assert alert_kinds(local_custodian) == [AlertKind.REPORT_MISSING]


def test_an_open_not_yet_covered_by_a_report_waits(local_custodian, reconciler, clock):
    log = AppLog()
    batch = new_batch(local_custodian)
    reconciler.receive([])
    opened_with_event(local_custodian, batch, log)
    clock.advance(seconds=GRACE + 1)
    assert reconciler.run() | {"at": None, "last_report": None} == reconciler.run() | {
        "at": None,
        "last_report": None,
    }
    assert alert_kinds(local_custodian) == []
    reconciler.receive(log.events)
    clock.advance(seconds=GRACE + 1)
    assert reconciler.run()["matched"] == 1


def test_a_report_holds_ids_and_codes_only(local_custodian, reconciler):
    log = AppLog()
    bad = replace(log.login(), reason="山田太郎 090-1234-5678")
    with pytest.raises(CustodyRefused) as refused:
        reconciler.receive([bad])
    assert refused.value.code == Refusal.BAD_REQUEST


def test_synthetic_bulk_opens_are_counted_not_matched(tmp_path, clock):
    from tests.custody.test_core_bulk import export_of
    from yobikake.custody.config import Config
    from yobikake.custody.core import Custodian

    home = Config.init(tmp_path / "synthetic", synthetic=True).home
    custodian = Custodian(home, clock=clock)
    try:
        reconciler = Reconciler(
            custodian.ledger, custodian.channel, grace=GRACE, deadline=DEADLINE, clock=clock
        )
        batch = new_batch(custodian)
        custodian.open_bulk(replace(export_of([batch], [1, 2]), purpose=Purpose.SYNTHETIC))
        later_report(reconciler, clock, AppLog())
        summary = reconciler.run()
        assert summary["ok"] and summary["synthetic"] == 1
    finally:
        custodian.close()
