"""The security officer's alert queue, checked against the log.

Every alert is raised with an event (`alert:record:raise`) that holds its id, rule,
severity, subject, the event that raised it and a digest of its summary; acknowledging
and closing are events too, closing with a digest of the note, and so is what mail and
the webhook said (`alert:record:deliver`). So the log says what every row of
`audit_alert` must hold; the subject's user name is the one of the account the log
names. `reconcile_alerts` (run by `yobikake audit verify` and `sweep`) puts back a row
deleted or edited in the database and delivers it again, removes a row the log never
raised, records each as an event (`alert:record:restore`) and raises a critical
`alert_tampered` alert about them.

The text a put-back row reads is in the installation's language (LANGUAGE_CODE), the
same whoever runs the check, so that the next check finds it as it was put back.
"""

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import translation
from django.utils.translation import gettext as _

from yobikake.accounts.models import User
from yobikake.audit import chain
from yobikake.audit.alerts import deliver, delivery_text, raise_alert
from yobikake.audit.keys import audit_keys
from yobikake.audit.models import Alert, Event
from yobikake.audit.services import append_event, lock_chain_head
from yobikake.audit.tags import AuditTag
from yobikake.audit.verify import genuine


def lost_note() -> str:
    with translation.override(settings.LANGUAGE_CODE):
        return _("The closing note was rewritten or deleted in the database; the original is lost.")


# An alert's row is written just before its event, in the same transaction; that may
# wait for the chain head behind a long import.
_RAISED_BEFORE_EVENT = timedelta(hours=1)
_FIELDS = ("rule", "severity", "subject_user_id", "event_seq", "state", "delivery")
_DECIDERS = ("acknowledged_by_id", "closed_by_id")


@dataclass(frozen=True)
class Tampering:
    alert_id: int
    rule: str
    change: str  # deleted, edited, forged
    fields: tuple[str, ...] = ()

    def __str__(self) -> str:
        where = f"alert #{self.alert_id} ({self.rule})"
        if self.change == "deleted":
            return f"{where}: deleted — raised again from the audit log"
        if self.change == "edited":
            return f"{where}: edited ({', '.join(self.fields)}) — put back as the log has it"
        return f"{where}: not raised by Yobikake — removed"


@dataclass
class _Recorded:
    """An alert as the log has it."""

    alert_id: int
    rule: str
    raised_at: datetime
    raise_seq: int
    event_seq: int | None
    # Raise events written before they carried these say nothing about them.
    complete: bool
    severity: str = Alert.Severity.CRITICAL
    subject_user_id: int | None = None
    summary: str | None = None
    state: str = Alert.State.OPEN
    delivery: str = ""
    decisions: dict[str, object] = field(default_factory=dict)
    note: str | None = None
    # Put back before: its text may be the restored one (the original is lost).
    restored: bool = False

    def restored_summary(self) -> str:
        with translation.override(settings.LANGUAGE_CODE):
            lost = _(
                "Restored from the audit log (event #%(raise_seq)s): this alert's row was "
                "deleted or its text rewritten in the database, and its text is lost."
            ) % {"raise_seq": self.raise_seq}
            if self.event_seq is None:
                raised = _("Raised by a check of the system itself, not by an event.")
            else:
                raised = _("Raised by event #%(event_seq)s.") % {"event_seq": self.event_seq}
        return f"{lost} {raised}"


def _recorded_alerts(mac_key: bytes) -> tuple[dict[int, _Recorded], set[int]]:
    """The alerts the genuine events describe, and the ids any raise event names (a
    row whose raise event was itself tampered with is left for `verify_log` to report,
    never removed)."""
    recorded: dict[int, _Recorded] = {}
    named: set[int] = set()
    events = Event.objects.filter(
        tag__in=[
            AuditTag.ALERT_RAISE,
            AuditTag.ALERT_ACKNOWLEDGE,
            AuditTag.ALERT_CLOSE,
            AuditTag.ALERT_RESTORE,
            AuditTag.ALERT_DELIVER,
        ],
        outcome=Event.Outcome.ALLOWED,
    ).order_by("seq")
    for event in events.iterator():
        details = json.loads(event.details or "{}")
        alert_id = details.get("alert_id")
        if event.tag == AuditTag.ALERT_RAISE:
            named.add(alert_id)
        if not genuine(event, mac_key):
            continue
        if event.tag == AuditTag.ALERT_RAISE:
            alert = _Recorded(
                alert_id,
                details["rule"],
                event.at,
                event.seq,
                details.get("event_seq"),
                complete="severity" in details,
            )
            if alert.complete:
                alert.severity = details["severity"]
                alert.subject_user_id = details["subject_user_id"]
                alert.summary = details["summary"]
            recorded[alert_id] = alert
        elif (alert := recorded.get(alert_id)) is not None:
            if event.tag == AuditTag.ALERT_RESTORE:
                alert.restored = True
            elif event.tag == AuditTag.ALERT_DELIVER:
                alert.delivery = delivery_text(details)
            elif event.tag == AuditTag.ALERT_ACKNOWLEDGE:
                alert.state = Alert.State.ACKNOWLEDGED
                alert.decisions |= {"acknowledged_by_id": event.actor_user_id}
                alert.decisions |= {"acknowledged_at": event.at}
            else:
                alert.state = Alert.State.CLOSED
                alert.decisions |= {"closed_by_id": event.actor_user_id, "closed_at": event.at}
                alert.note = details.get("note")
    return recorded, named


def _kept(text: str, digest: str, alert: _Recorded, restored: str) -> bool:
    """The text the log recorded, or the one it was restored to."""
    return chain.text_digest(text) == digest or (alert.restored and text == restored)


def _differences(row: Alert, alert: _Recorded, username: str) -> list[str]:
    checked = _FIELDS if alert.complete else ("rule", "event_seq", "state", "delivery")
    fields = [name for name in checked if getattr(row, name) != getattr(alert, name)]
    if alert.complete and row.subject_username != username:
        fields.append("subject_username")
    fields += [name for name in _DECIDERS if getattr(row, name) != alert.decisions.get(name)]
    if alert.summary is not None and not _kept(
        row.summary, alert.summary, alert, alert.restored_summary()
    ):
        fields.append("summary")
    rewritten = alert.note is not None and not _kept(row.note, alert.note, alert, lost_note())
    if rewritten or (alert.state != Alert.State.CLOSED and row.note):
        fields.append("note")
    if not alert.raised_at - _RAISED_BEFORE_EVENT <= row.raised_at <= alert.raised_at:
        fields.append("raised_at")
    return fields


def _put_back(row: Alert, alert: _Recorded, fields: list[str] | None, username: str) -> None:
    """Write the row as the log has it; `fields` None for a deleted row."""
    kept = [*(_FIELDS if alert.complete else ("rule", "event_seq", "state", "delivery"))]
    for name in kept:
        setattr(row, name, getattr(alert, name))
    decided = ["acknowledged_by_id", "acknowledged_at", "closed_by_id", "closed_at"]
    for name in decided:
        setattr(row, name, alert.decisions.get(name))
    rewritten = []
    if fields is None or "summary" in fields:
        row.summary = alert.restored_summary()
        rewritten.append("summary")
    if fields is None or "note" in fields:
        row.note = lost_note() if alert.state == Alert.State.CLOSED else ""
        rewritten.append("note")
    if fields is None or "raised_at" in fields:
        row.raised_at = alert.raised_at
        rewritten.append("raised_at")
    if fields is None or {"subject_user_id", "subject_username"} & set(fields):
        row.subject_username = username
        rewritten.append("subject_username")
    if fields is None:
        row.save(force_insert=True)
    else:
        row.save(update_fields=[*kept, *decided, *rewritten])


@transaction.atomic
def reconcile_alerts() -> list[Tampering]:
    """Make the alert queue what the log says it is; report and alert what was not."""
    # With the chain head locked no alert is half-written: a row and its event commit
    # together, and no one commits until this is done.
    lock_chain_head()
    recorded, named = _recorded_alerts(audit_keys().mac_key())
    rows = {row.pk: row for row in Alert.objects.all()}
    subjects = {a.subject_user_id for a in recorded.values()} - {None}
    usernames = dict(User.objects.filter(pk__in=subjects).values_list("pk", "username"))
    found: list[Tampering] = []
    for alert_id, alert in recorded.items():
        row = rows.get(alert_id)
        username = usernames.get(alert.subject_user_id, "")
        if row is None:
            _put_back(Alert(pk=alert_id), alert, None, username)
            found.append(Tampering(alert_id, alert.rule, "deleted"))
        elif fields := _differences(row, alert, username):
            _put_back(row, alert, fields, username)
            found.append(Tampering(alert_id, alert.rule, "edited", tuple(fields)))
    for alert_id, row in rows.items():
        if alert_id not in named:
            row.delete()
            found.append(Tampering(alert_id, row.rule, "forged"))
    for tampering in found:
        append_event(
            tag=AuditTag.ALERT_RESTORE,
            actor=None,
            details={"alert_id": tampering.alert_id, "change": tampering.change},
        )
        if tampering.change != "forged":
            transaction.on_commit(lambda pk=tampering.alert_id: deliver(pk))
    if found:
        raise_alert(
            "alert_tampered",
            Alert.Severity.CRITICAL,
            None,
            "; ".join(
                f"#{t.alert_id} ({t.rule}) {t.change}"
                + (f": {', '.join(t.fields)}" if t.fields else "")
                for t in found
            ),
        )
    return found
