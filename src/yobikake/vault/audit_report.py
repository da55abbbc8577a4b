"""Reporting the audit log to the custodian, which reconciles it with its ledger
(yobikake.custody.reconcile): every event, in sequence, from where the custodian's copy
ends, each with its place in the hash chain.

The application keeps no state of its own here: the custodian says where its copy ends,
and refuses (with a critical alert) a report that does not continue it. A report with no
new events is still sent: the custodian counts silence as an alert, so whoever stops
this job on the application host is seen within the custodian's deadline.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass

from yobikake.audit import chain
from yobikake.audit.models import Event
from yobikake.custody.protocol import AuditEvent, Heartbeat, ReportCursor
from yobikake.custody.reconcile import REPORT_LIMIT
from yobikake.vault.custodian import CustodianPort, custodian


@dataclass(frozen=True)
class Reported:
    events: int
    through: ReportCursor


def as_reported(event: Event) -> AuditEvent:
    """What the custodian is told of an event: ids and codes (the log holds nothing
    else), never the actor's name or address."""
    return AuditEvent(
        seq=event.seq,
        at=chain.encode_time(event.at),
        tag=event.tag,
        outcome=event.outcome,
        reason=event.reason,
        actor_user_id=event.actor_user_id,
        insurer_id=event.insurer_id,
        list_id=event.list_id,
        target_id=event.target_id,
        purpose=event.purpose,
        details=event.details,
        prev_hash=event.prev_hash,
        hash=event.hash,
    )


_COLUMNS = (
    "seq", "at", "tag", "outcome", "reason", "actor_user_id", "insurer_id", "list_id",
    "target_id", "purpose", "details", "prev_hash", "hash",
)  # fmt: skip


def report(port: CustodianPort | None = None, limit: int = REPORT_LIMIT) -> Reported:
    """Send the custodian the last event it holds and every event after it, `limit` a
    report; at least one report, with only that event when there is nothing new (the
    custodian checks it is still the one it was told of)."""
    port = port or custodian()
    cursor = port.report_cursor()
    sent = 0
    while True:
        repeated = 1 if cursor.through_seq else 0
        events = [
            as_reported(event)
            for event in Event.objects.filter(seq__gte=cursor.through_seq or 1)
            .only(*_COLUMNS)
            .order_by("seq")[:limit]
        ]
        cursor = port.report_events(events)
        sent += max(0, len(events) - repeated)
        if len(events) < limit:
            # Reconciliation's scheduled report ran: the custodian watches this beat as
            # well as the report (custody/watch.py).
            port.heartbeat(Heartbeat.RECONCILE)
            return Reported(sent, cursor)


def report_every(
    seconds: float, say: Callable[[str], None], sleep: Callable[[float], None] = time.sleep
) -> None:
    """Report, then again every `seconds`, until stopped; a report that fails is said
    and tried again next time (the custodian alerts if the silence lasts)."""
    while True:
        try:
            done = report()
            if done.events:
                say(f"reported {done.events} audit events, through {done.through.through_seq}")
        except Exception as exc:  # the next round tries again
            say(f"report to the custodian failed: {type(exc).__name__}: {exc}")
        sleep(seconds)
