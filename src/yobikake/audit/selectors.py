"""Reads of the audit log for the security officer's screens and the API."""

import logging
from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Q, QuerySet

from yobikake.accounts.models import User
from yobikake.accounts.permissions import Permission
from yobikake.accounts.selectors import has_permission
from yobikake.audit import chain
from yobikake.audit.keys import audit_keys
from yobikake.audit.models import Alert, Checkpoint, Event
from yobikake.audit.services import get_or_record_denial
from yobikake.audit.tags import AuditTag
from yobikake.custody.protocol import CustodyAlert, CustodyRefused, CustodyUnavailable
from yobikake.vault.custodian import custodian

log = logging.getLogger(__name__)


def search_events(
    *,
    user: str = "",
    tag: str = "",
    insurer_id: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[Event]:
    """Newest first. `user` matches a user name or id, as actor or as subject; `tag`
    matches a tag or its prefix (`auth:` or `role:grant:`)."""
    events = Event.objects.order_by("-seq")
    if user:
        ids = set(User.objects.filter(username=user).values_list("pk", flat=True))
        if user.isdigit():
            ids.add(int(user))
        who = Q(actor_username=user) | Q(actor_user_id__in=ids) | Q(subject_user_id__in=ids)
        events = events.filter(who)
    if tag:
        events = events.filter(tag__startswith=tag)
    if insurer_id is not None:
        events = events.filter(insurer_id=insurer_id)
    if since is not None:
        events = events.filter(at__gte=since)
    if until is not None:
        events = events.filter(at__lt=until)
    return events


def alert_queue(closed_shown: int = 50) -> list[Alert]:
    """Open alerts first, then acknowledged ones, then the latest closed ones."""
    live = Alert.objects.exclude(state=Alert.State.CLOSED).order_by("state", "-raised_at")
    # "acknowledged" sorts before "open": put open first.
    ordered = sorted(live, key=lambda a: a.state != Alert.State.OPEN)
    closed = Alert.objects.filter(state=Alert.State.CLOSED).order_by("-closed_at")
    return ordered + list(closed[:closed_shown])


@dataclass(frozen=True)
class CustodyQueue:
    """Custody's own alerts, newest first, as the custodian keeps them: nothing in the
    application's tables can hide one. `reachable` False: the custodian did not answer,
    and the page says so."""

    reachable: bool
    alerts: list[tuple[datetime, CustodyAlert]] = field(default_factory=list)


def custody_alerts() -> CustodyQueue:
    try:
        alerts = custodian().alerts()
    except (CustodyUnavailable, CustodyRefused) as exc:
        log.warning("custody alerts not fetched: %s", exc)
        return CustodyQueue(reachable=False)
    return CustodyQueue(
        reachable=True,
        alerts=[(datetime.fromisoformat(alert.at), alert) for alert in reversed(alerts)],
    )


@dataclass(frozen=True)
class CheckpointStatus:
    checkpoint: Checkpoint
    signature_valid: bool
    matches_log: bool


def checkpoint_history() -> list[CheckpointStatus]:
    """Every checkpoint with whether its signature holds and whether the event it signed
    still has the hash it signed (a quick check; `yobikake audit verify` does it all)."""
    keys = audit_keys()
    checkpoints = list(Checkpoint.objects.order_by("-head_seq"))
    hashes = dict(
        Event.objects.filter(seq__in=[c.head_seq for c in checkpoints]).values_list("seq", "hash")
    )
    result = []
    for c in checkpoints:
        try:
            signature = bytes.fromhex(c.signature)
        except ValueError:
            signature = b""
        message = chain.checkpoint_message(c.head_seq, c.head_hash, c.at)
        result.append(
            CheckpointStatus(
                c, keys.signature_valid(message, signature), hashes.get(c.head_seq) == c.head_hash
            )
        )
    return result


def visible_events(actor: User) -> QuerySet[Event]:
    """Events whose inclusion proof the actor may fetch: every one for the security
    officer; one's own insurer's for its staff; none for anyone else."""
    if has_permission(actor, Permission.AUDIT_LOG_VIEW):
        return Event.objects.all()
    insurer_id = actor.organization.insurer_id if actor.organization_id else None
    if has_permission(actor, Permission.PROGRESS_OWN_VIEW) and insurer_id:
        return Event.objects.filter(insurer_id=insurer_id)
    return Event.objects.none()


def access_event(actor: User, seq: int) -> Event:
    """The event, or `Event.DoesNotExist` alike for "missing" and "not yours"; the
    refusal is on the record."""
    return get_or_record_denial(
        visible_events(actor), seq, actor=actor, tag=AuditTag.PROOF_DENY, ref="details:seq"
    )
