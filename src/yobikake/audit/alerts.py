"""Alert rules, evaluated as each event is appended (and by the periodic sweep), and
the delivery of alerts to mail and an optional webhook."""

import json
import logging
import urllib.request
from collections.abc import Iterable, Mapping
from datetime import timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.mail import send_mail
from django.db import DatabaseError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from yobikake.accounts.models import User
from yobikake.audit import chain
from yobikake.audit.models import Alert, Event
from yobikake.audit.tags import REVEAL_TAGS, AuditTag

log = logging.getLogger(__name__)
TOKYO = ZoneInfo("Asia/Tokyo")

RULE_LABELS = {
    "repeated_denials": _("Repeated denied actions"),
    "reveal_budget": _("Reveals over the hourly budget"),
    "inquiry_budget": _("Inquiry desk lookups over the hourly budget"),
    "reveal_off_hours": _("Reveal outside calling hours"),
    "contractor_role": _("Role granted to a contractor"),
    "bulk_opening": _("Stored people opened in bulk"),
    "canary_touched": _("Canary resident touched"),
    "audit_verify_failed": _("Audit log verification failed"),
    "audit_head_not_countersigned": _("Custody did not countersign the audit log's head"),
    "forged_authorization": _("Role assignment written outside Yobikake"),
    "vault_tampered": _("Vault keys tampered with in the database"),
    "export_tampered": _("An approved export's people changed in the database"),
    "watermark_tampered": _("An export's watermark changed in the database"),
    "retention_overdue": _("A list kept past its retention deadline"),
    "retention_moved": _("A retention deadline moved in the database"),
    "import_interrupted": _("A list import's process ended mid-import"),
    "scoping_interrupted": _("A leak scoping's process ended mid-scoping"),
    "append_only_guard_missing": _("An append-only guard of the audit log is missing"),
    "alert_tampered": _("An alert deleted or edited in the database"),
    "controls_changed": _("Security settings or installed code changed"),
    "bytecode_tampered": _("Compiled code that does not match the installed source"),
    "campaign_unapproved": _("A campaign started without its insurer's approval"),
}

# Events about the log itself never raise alerts (an alert writes such an event).
_QUIET = frozenset(
    {
        AuditTag.ALERT_RAISE,
        AuditTag.ALERT_ACKNOWLEDGE,
        AuditTag.ALERT_CLOSE,
        AuditTag.CHECKPOINT_SIGN,
        AuditTag.VERIFY_FAILURE,
        AuditTag.ALERT_RESTORE,
        AuditTag.ALERT_DELIVER,
        AuditTag.GUARDS_INSTALL,
        AuditTag.PROCESS_START,
        AuditTag.SETTINGS_CHANGE,
    }
)


def evaluate(event: Event) -> None:
    if event.tag in _QUIET:
        return
    for rule in (
        _repeated_denials,
        _reveal_budget,
        _inquiry_budget,
        _reveal_off_hours,
        _contractor_role,
        _canary,
        _bulk_opening,
        _forged_authorization,
        _vault_tampered,
        _export_tampered,
        _retention_overdue,
        _retention_moved,
        _campaign_unapproved,
    ):
        rule(event)


def _who(event: Event) -> int | None:
    """Whom an event is about: its actor, or for actor-less events such as failed
    logins, the account they name."""
    return event.actor_user_id if event.actor_user_id is not None else event.subject_user_id


def _recent(event: Event, minutes: int) -> "Event.objects":  # type: ignore[name-defined]
    who = _who(event)
    return Event.objects.filter(
        Q(actor_user_id=who) | Q(actor_user_id=None, subject_user_id=who),
        at__gt=event.at - timedelta(minutes=minutes),
    )


def _already_open(rule: str, user_id: int | None, since: timedelta) -> bool:
    return Alert.objects.filter(
        rule=rule,
        subject_user_id=user_id,
        state__in=[Alert.State.OPEN, Alert.State.ACKNOWLEDGED],
        raised_at__gt=timezone.now() - since,
    ).exists()


def _repeated_denials(event: Event) -> None:
    who = _who(event)
    if event.outcome != Event.Outcome.DENIED or who is None:
        return
    minutes = settings.YOBIKAKE_ALERT_DENIALS_MINUTES
    count = _recent(event, minutes).filter(outcome=Event.Outcome.DENIED).count()
    if count >= settings.YOBIKAKE_ALERT_DENIALS and not _already_open(
        "repeated_denials", who, timedelta(minutes=minutes)
    ):
        raise_alert(
            "repeated_denials",
            Alert.Severity.WARNING,
            event,
            f"{count} denied in {minutes} min; last: {event.tag} ({event.reason})",
            subject_user_id=who,
        )


def _over_budget(event: Event, rule: str, tags: Iterable[str], summary: str) -> None:
    """An hourly budget is enforced where the action is taken, which refuses the one
    over it with the reason `over_budget`: that refusal is the alert (one an hour)."""
    if (
        event.tag in tags
        and event.reason == "over_budget"
        and not _already_open(rule, event.actor_user_id, timedelta(hours=1))
    ):
        raise_alert(rule, Alert.Severity.CRITICAL, event, summary)


def _reveal_budget(event: Event) -> None:
    """Reveals (vault/reveal.py): a user reading people in bulk, one at a time."""
    summary = f"reveal refused: over the hourly budget ({event.purpose})"
    _over_budget(event, "reveal_budget", REVEAL_TAGS, summary)


def _inquiry_budget(event: Event) -> None:
    """Inquiry desk lookups (incidents/inquiry.py): a desk user testing a list of people
    against the leak rather than answering callers."""
    summary = "inquiry lookup refused: over the hourly budget"
    _over_budget(event, "inquiry_budget", (AuditTag.INCIDENT_INQUIRY,), summary)


def calling_hours_contain(at: "timezone.datetime") -> bool:
    local = at.astimezone(TOKYO)
    start, end = settings.YOBIKAKE_CALLING_HOURS
    return local.weekday() < 6 and start <= local.hour < end


def _reveal_off_hours(event: Event) -> None:
    if (
        event.tag in REVEAL_TAGS
        and event.outcome == Event.Outcome.ALLOWED
        and not calling_hours_contain(event.at)
        and not _already_open("reveal_off_hours", event.actor_user_id, timedelta(hours=1))
    ):
        raise_alert(
            "reveal_off_hours",
            Alert.Severity.WARNING,
            event,
            f"{event.tag} at {event.at.astimezone(TOKYO):%Y-%m-%d %H:%M} JST",
        )


def _contractor_role(event: Event) -> None:
    if event.tag not in (AuditTag.ROLE_REQUEST, AuditTag.ROLE_APPROVE) or event.reason:
        return
    details = json.loads(event.details or "{}")
    if details.get("contractor") and details.get("status") == "active":
        raise_alert(
            "contractor_role",
            Alert.Severity.INFO,
            event,
            f"role {details.get('role')} to user #{event.subject_user_id}",
            subject_user_id=event.subject_user_id,
        )


def _forged_authorization(event: Event) -> None:
    if (event.tag == AuditTag.AUTHZ_FORGED or event.reason == "forged_authorization") and not (
        _already_open("forged_authorization", event.subject_user_id, timedelta(hours=1))
    ):
        raise_alert(
            "forged_authorization",
            Alert.Severity.CRITICAL,
            event,
            f"assignment {event.details} for user #{event.subject_user_id}",
            subject_user_id=event.subject_user_id,
        )


def _vault_tampered(event: Event) -> None:
    if event.reason == "index_key_missing":
        raise_alert(
            "vault_tampered",
            Alert.Severity.CRITICAL,
            event,
            f"{event.tag} refused: an insurer's blind-index key is missing from the database",
        )


def _export_tampered(event: Event) -> None:
    if event.tag == AuditTag.REVEAL_EXPORT and event.reason == "targets_changed":
        raise_alert(
            "export_tampered",
            Alert.Severity.CRITICAL,
            event,
            f"export of approval #{json.loads(event.details).get('approval_id')} refused: "
            "the rows it is built from no longer name the people it was approved for",
        )


def _retention_overdue(event: Event) -> None:
    # The event is written once per list (exports/retention.py), so is the alert.
    if event.tag == AuditTag.RETENTION_OVERDUE:
        deadline = json.loads(event.details or "{}").get("retention_until")
        raise_alert(
            "retention_overdue",
            Alert.Severity.WARNING,
            event,
            f"list #{event.list_id} is kept past its retention deadline {deadline}",
        )


def _canary(event: Event) -> None:
    details = json.loads(event.details or "{}")
    if event.tag == AuditTag.CANARY_TOUCH or details.get("canary"):
        touched = (
            f"a watermark row of export #{details.get('approval_id')}"
            if details.get("watermark")
            else f"target #{event.target_id}"
        )
        raise_alert("canary_touched", Alert.Severity.CRITICAL, event, f"{event.tag} of {touched}")


def _bulk_opening(event: Event) -> None:
    # Stored people opened in bulk past the reveal gate (a synthetic leak for a test, a
    # benchmark or the drill): never routine on an installation in use.
    if event.tag == AuditTag.SYNTH_LEAK and event.outcome == Event.Outcome.ALLOWED:
        raise_alert(
            "bulk_opening",
            Alert.Severity.CRITICAL,
            event,
            "stored people opened in bulk for a synthetic leak (synth leak --from-store)",
        )


class AlertNotWritten(DatabaseError):
    """The alert's row was not written, and no error said so: something on the table
    (a trigger returning NULL, a rule doing nothing instead) swallowed it. Raised so
    that what raised the alert fails rather than goes on unseen."""


def raise_alert(
    rule: str,
    severity: Alert.Severity,
    event: Event | None,
    summary: str,
    *,
    subject_user_id: int | None = None,
) -> Alert:
    """Record an alert (and an event saying so) and deliver it once the transaction
    commits: an alert about an action that was rolled back is never sent. The event
    holds what the alert's row is rebuilt from if it is deleted or edited (audit/queue.py):
    all of it but the summary's text, of which it keeps a digest."""
    from yobikake.audit.services import append_event

    if subject_user_id is None and event is not None:
        subject_user_id = event.actor_user_id
    username = (
        User.objects.filter(pk=subject_user_id).values_list("username", flat=True).first()
        if subject_user_id is not None
        else None
    )
    alert = Alert.objects.create(
        rule=rule,
        severity=severity,
        subject_user_id=subject_user_id,
        subject_username=username or "",
        event_seq=event.seq if event else None,
        summary=summary[:300],
    )
    if alert.pk is None:
        raise AlertNotWritten(f"the {rule} alert was not written to the alert queue")
    append_event(
        tag=AuditTag.ALERT_RAISE,
        actor=None,
        details={
            "alert_id": alert.pk,
            "rule": rule,
            "event_seq": alert.event_seq,
            "severity": str(severity),
            "subject_user_id": subject_user_id,
            "summary": chain.text_digest(alert.summary),
        },
    )
    transaction.on_commit(lambda: deliver(alert.pk))
    return alert


def raise_alert_or_log(
    rule: str, severity: Alert.Severity, event: Event | None, summary: str
) -> Alert | None:
    """`raise_alert` for a check that must carry on, and refuse, whatever becomes of its
    alert: in a savepoint of its own, and logged instead when the alert cannot be
    written (the queue's table not as installed, the database refusing)."""
    try:
        with transaction.atomic():
            return raise_alert(rule, severity, event, summary)
    except DatabaseError as error:
        log.error("the %s alert could not be written (%s): %s", rule, error, summary)
        return None


def deliver(alert_id: int) -> None:
    """Mail the security officers and call the webhook; record what happened, on the row
    and in the log (`audit verify` puts back a row whose record was edited). A failed
    delivery never undoes the alert: it stays on the security officer's screen. A row
    gone by now (deleted, or never written) is not delivered; `audit verify` puts back
    what the log raised."""
    alert = Alert.objects.filter(pk=alert_id).first()
    if alert is None:
        log.warning("alert %s is not in the queue: not delivered", alert_id)
        return
    outcome: dict[str, str | int] = {}
    recipients = [a for a in settings.YOBIKAKE_ALERT_EMAILS if a]
    label = str(RULE_LABELS.get(alert.rule, alert.rule))
    if recipients:
        try:
            send_mail(
                subject=f"[Yobikake {alert.severity}] {label}",
                message=f"{label}\n{alert.summary}\nalert #{alert.pk}, event #{alert.event_seq}",
                from_email=None,
                recipient_list=recipients,
            )
            outcome["mail"] = "sent"
        except Exception as exc:
            log.warning("alert %s mail failed: %s", alert.pk, exc)
            outcome["mail"] = "failed"
    if settings.YOBIKAKE_ALERT_WEBHOOK_URL:
        body = json.dumps(
            {
                "id": alert.pk,
                "rule": alert.rule,
                "severity": alert.severity,
                "summary": alert.summary,
                "event_seq": alert.event_seq,
                "subject_user_id": alert.subject_user_id,
                "raised_at": alert.raised_at.isoformat(),
            }
        ).encode()
        request = urllib.request.Request(  # noqa: S310 - the URL is the operator's setting
            settings.YOBIKAKE_ALERT_WEBHOOK_URL,
            data=body,
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
                outcome["webhook"] = response.status
        except Exception as exc:
            log.warning("alert %s webhook failed: %s", alert.pk, exc)
            outcome["webhook"] = "failed"
    if outcome:
        from yobikake.audit.services import append_event

        with transaction.atomic():
            Alert.objects.filter(pk=alert.pk).update(delivery=delivery_text(outcome))
            append_event(
                tag=AuditTag.ALERT_DELIVER, actor=None, details={"alert_id": alert.pk, **outcome}
            )


def delivery_text(outcome: Mapping[str, object]) -> str:
    """The row's `delivery`: `mail:sent webhook:204`."""
    return " ".join(
        f"{channel}:{outcome[channel]}" for channel in ("mail", "webhook") if channel in outcome
    )


def _retention_moved(event: Event) -> None:
    # Written once per contract and moved value (exports/retention.py), so is the alert.
    if event.tag == AuditTag.RETENTION_MOVED:
        moved = json.loads(event.details or "{}")
        raise_alert(
            "retention_moved",
            Alert.Severity.CRITICAL,
            event,
            f"contract #{moved.get('contract_id')}: its retention deadline reads "
            f"{moved.get('column')} in the database but {moved.get('recorded')} on the record; "
            "the schedule goes by the record",
        )


def _campaign_unapproved(event: Event) -> None:
    # Terms beyond the insurer's contract (calling hours, a small control group) need the
    # insurer's approval (calling/terms.py): a start without it is refused, and told.
    if event.tag == AuditTag.CAMPAIGN_START and event.reason == "approval_required":
        raise_alert(
            "campaign_unapproved",
            Alert.Severity.WARNING,
            event,
            f"campaign #{json.loads(event.details or '{}').get('campaign_id')} refused at "
            "start: its terms go beyond the contract and the insurer has not approved them",
        )
