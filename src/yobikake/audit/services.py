"""Writing the audit log: events, checkpoints, alert decisions.

`append_event` is called by every other app's services inside their own transaction,
so a state change and its event are committed together or not at all.
"""

import functools
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, cast

from django.conf import settings
from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from yobikake.accounts.errors import AccountError
from yobikake.accounts.models import User
from yobikake.accounts.permissions import Permission
from yobikake.accounts.selectors import active_roles, require
from yobikake.audit import chain
from yobikake.audit.context import client_ip
from yobikake.audit.keys import audit_keys
from yobikake.audit.models import Alert, ChainHead, Checkpoint, Event
from yobikake.audit.tags import AuditTag
from yobikake.audit.witness import submit_head_after_commit

Detail = int | bool | str | None
# Details carry ids and short codes only; free text (and with it names and addresses)
# cannot get in.
_DETAIL_KEY = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
# Strings start with a letter and hold no "@" or spaces: codes and names of things, never
# a phone number, an address or an e-mail address.
DETAIL_TEXT = re.compile(r"^([A-Za-z][A-Za-z0-9_.:/-]{0,63})?$")


class AuditError(AccountError):
    """A refusal about the audit log or its alerts, shown to the user as it is."""


def _details_json(details: Mapping[str, Detail] | None) -> str:
    if not details:
        return ""
    for key, value in details.items():
        if not _DETAIL_KEY.match(key):
            raise AuditError(f"bad detail key {key!r}")
        if isinstance(value, str) and not DETAIL_TEXT.match(value):
            raise AuditError(f"detail {key!r} must be an id or a short code")
        if not isinstance(value, int | bool | str | type(None)):
            raise AuditError(f"detail {key!r} must be an id or a short code")
    return json.dumps(dict(details), sort_keys=True, separators=(",", ":"))


def _actor_fields(actor: User | None) -> dict[str, object]:
    if actor is None or not getattr(actor, "is_authenticated", False):
        return {
            "actor_user_id": None,
            "actor_username": "",
            "actor_organization_id": None,
            "actor_roles": "",
        }
    return {
        "actor_user_id": actor.pk,
        "actor_username": actor.username,
        "actor_organization_id": actor.organization_id,
        "actor_roles": ",".join(sorted(active_roles(actor))),
    }


def append_event(
    *,
    tag: AuditTag,
    actor: User | None,
    denied: str = "",
    subject: User | None = None,
    insurer_id: int | None = None,
    list_id: int | None = None,
    target_id: int | None = None,
    purpose: str = "",
    details: Mapping[str, Detail] | None = None,
) -> Event:
    """Append one event to the chain, inside the caller's transaction.

    `denied` is the reason when the action was refused (empty when allowed). Appenders
    take turns on the chain head's row lock, so concurrent writers never fork the chain.
    Every action appends, so this path is written in plain SQL (no savepoint, no ORM
    query building): three statements.
    """
    # Everything that can refuse is checked before the transaction is touched: without a
    # savepoint, an error inside would spoil the caller's transaction.
    details_json = _details_json(details)
    actor_fields = _actor_fields(actor)
    # The other text fields come from enums, ids, JSON built above or the server.
    for text in (denied, purpose, str(actor_fields["actor_username"])):
        chain.check_text(text)
    base: dict[str, object] = {
        "at": timezone.now(),
        "tag": str(tag),
        "outcome": Event.Outcome.DENIED if denied else Event.Outcome.ALLOWED,
        "reason": denied,
        **actor_fields,
        "subject_user_id": subject.pk if subject is not None else None,
        "insurer_id": insurer_id,
        "list_id": list_id,
        "target_id": target_id,
        "purpose": purpose,
        "client_ip": client_ip.get(),
        "details": details_json,
    }
    with transaction.atomic(savepoint=False), connection.cursor() as cursor:
        event = _append_if_head_unmoved(cursor, base) or _append_locked(cursor, base)
        from yobikake.audit.alerts import evaluate

        evaluate(event)
    return event


@dataclass(frozen=True)
class _Head:
    seq: int
    hash: str
    checkpoint_at: object


# The head this connection last wrote, so a single writer can append in one round trip.
_HEAD_ATTR = "_yobikake_audit_head"


def _build(base: dict[str, object], seq: int, prev_hash: str) -> tuple[Event, list[object]]:
    """The event that follows `prev_hash` as number `seq`, and its row for INSERT."""
    fields = {**base, "seq": seq, "prev_hash": prev_hash}
    values = [fields[name] for name in chain.FIELDS]
    digest = chain.event_hash(values, checked=False)  # text checked in append_event
    mac = chain.event_mac(audit_keys().mac_key(), digest)
    # Positional: Django's fast path (the model's fields are chain.FIELDS, hash, mac).
    event = Event(*values, digest, mac)
    event._state.adding = False
    at = connection.ops.adapt_datetimefield_value(fields["at"])
    return event, [seq, at, *values[2:], digest, mac]


def _append_locked(cursor: Any, base: dict[str, object]) -> Event:
    # Taking the next number and locking the head are one statement; it returns the new
    # number and the previous event's hash (not yet replaced).
    cursor.execute(_TAKE_NEXT)
    row = cursor.fetchone()
    if row is None:  # the migration makes it; only a flushed test database lacks it
        ChainHead.objects.get_or_create(pk=1)
        cursor.execute(_TAKE_NEXT)
        row = cursor.fetchone()
    seq, prev_hash, checkpoint_at = row
    event, values = _build(base, seq, prev_hash)
    if event.seq % settings.YOBIKAKE_AUDIT_CHECKPOINT_EVERY == 0:
        submit_head_after_commit()
    if _checkpoint_due(checkpoint_at, event):
        _sign_checkpoint(event)
        checkpoint_at = values[1]
        statement, params = _MOVE_HEAD_AND_CHECKPOINT, [event.hash, checkpoint_at]
    else:
        statement, params = _MOVE_HEAD, [event.hash]
    if connection.vendor == "postgresql":
        # One round trip for both: a data-modifying WITH.
        cursor.execute(f"WITH e AS ({_INSERT_EVENT}) {statement}", [*values, *params])
    else:
        cursor.execute(_INSERT_EVENT, values)
        cursor.execute(statement, params)
    setattr(connection, _HEAD_ATTR, _Head(seq, event.hash, checkpoint_at))
    return event


def _append_if_head_unmoved(cursor: Any, base: dict[str, object]) -> Event | None:
    """On PostgreSQL, guess that the head is still the one this connection last wrote,
    and move it and insert the event in one statement that does nothing if the guess is
    wrong (another writer, or a rolled-back transaction). Then None: take the lock."""
    head: _Head | None = getattr(connection, _HEAD_ATTR, None)
    if connection.vendor != "postgresql" or head is None:
        return None
    event, values = _build(base, head.seq + 1, head.hash)
    if _checkpoint_due(head.checkpoint_at, event):
        return None  # rare; the locked path signs it
    cursor.execute(_INSERT_IF_HEAD_UNMOVED, [event.seq, event.hash, head.seq, head.hash, *values])
    if cursor.rowcount != 1:
        setattr(connection, _HEAD_ATTR, None)
        return None
    setattr(connection, _HEAD_ATTR, _Head(event.seq, event.hash, head.checkpoint_at))
    return event


_HEAD_TABLE = ChainHead._meta.db_table
_TAKE_NEXT = (
    f"UPDATE {_HEAD_TABLE} SET seq = seq + 1 WHERE id = 1 "  # noqa: S608
    "RETURNING seq, hash, checkpoint_at"
)
_INSERT_EVENT = (
    f"INSERT INTO {Event._meta.db_table} ({', '.join([*chain.FIELDS, 'hash', 'mac'])}) "  # noqa: S608
    f"VALUES ({', '.join(['%s'] * (len(chain.FIELDS) + 2))})"
)
_CASTS = {"seq": "bigint", "at": "timestamptz"} | {
    name: "bigint" for name in chain.FIELDS if name.endswith("_id")
}
_INSERT_IF_HEAD_UNMOVED = (
    f"WITH h AS (UPDATE {_HEAD_TABLE} SET seq = %s, hash = %s "  # noqa: S608
    "WHERE id = 1 AND seq = %s AND hash = %s RETURNING 1) "
    f"INSERT INTO {Event._meta.db_table} ({', '.join([*chain.FIELDS, 'hash', 'mac'])}) "
    "SELECT "
    + ", ".join(f"%s::{_CASTS.get(name, 'text')}" for name in [*chain.FIELDS, "hash", "mac"])
    + " FROM h"
)
_MOVE_HEAD = f"UPDATE {_HEAD_TABLE} SET hash = %s WHERE id = 1"  # noqa: S608
_MOVE_HEAD_AND_CHECKPOINT = f"UPDATE {_HEAD_TABLE} SET hash = %s, checkpoint_at = %s WHERE id = 1"  # noqa: S608


def record_denial(*, tag: AuditTag, actor: User | None, reason: str, **refs: Any) -> Event:
    """Record a refused action in a transaction of its own (the refused action's own
    transaction is rolled back, and its denial must survive that)."""
    with transaction.atomic():
        return append_event(tag=tag, actor=actor, denied=reason, **refs)


Row = TypeVar("Row", bound=Any)


def get_or_record_denial(
    visible: "QuerySet[Row]", pk: int, *, actor: User, tag: AuditTag, ref: str
) -> Row:
    """The row `pk` among those the actor may see; else the model's `DoesNotExist`, alike
    for "missing" and "not yours", with the refusal on the record (probing other
    insurers shows up). `ref` names the event field that takes `pk` when the row exists
    (`insurer_id`, `list_id`, …), or a detail (`details:import_id`)."""
    try:
        return visible.get(pk=pk)
    except visible.model.DoesNotExist:
        exists = visible.model.objects.filter(pk=pk).exists()
        value = pk if exists else None
        refs: dict[str, Any] = (
            {"details": {ref.removeprefix("details:"): value}}
            if ref.startswith("details:")
            else {ref: value}
        )
        record_denial(tag=tag, actor=actor, reason="not_yours" if exists else "missing", **refs)
        raise


Service = TypeVar("Service", bound=Callable[..., Any])


def audited(tag: AuditTag) -> Callable[[Service], Service]:
    """Run a service in a transaction; when it refuses (raises `AccountError`), record
    the refusal under `tag` with the refusal's code, then let it propagate. The service
    itself appends its success event with the details only it knows."""

    def decorator(service: Service) -> Service:
        @functools.wraps(service)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                with transaction.atomic():
                    return service(*args, **kwargs)
            except AccountError as exc:
                record_denial(tag=tag, actor=kwargs.get("actor"), reason=exc.code)
                raise

        return cast(Service, wrapper)

    return decorator


def lock_chain_head() -> ChainHead:
    """Take the chain head's row lock until the transaction ends. Appenders wait for it,
    so what is read meanwhile is the log and the rows written beside it, whole."""
    head = ChainHead.objects.select_for_update().filter(pk=1).first()
    if head is None:  # the migration makes it; only a flushed test database lacks it
        ChainHead.objects.get_or_create(pk=1)
        head = ChainHead.objects.select_for_update().get(pk=1)
    return head


def _checkpoint_due(last: object, event: Event) -> bool:
    if event.seq % settings.YOBIKAKE_AUDIT_CHECKPOINT_EVERY == 0 or last is None:
        return True
    if isinstance(last, str):  # SQLite hands back text
        last = datetime.fromisoformat(last)
    if isinstance(last, datetime) and last.tzinfo is None:
        last = last.replace(tzinfo=UTC)
    every = timedelta(minutes=settings.YOBIKAKE_AUDIT_CHECKPOINT_MINUTES)
    return bool(event.at - last >= every)  # type: ignore[operator]


def _sign_checkpoint(event: Event) -> Checkpoint:
    keys = audit_keys()
    at = timezone.now()
    signature = keys.sign(chain.checkpoint_message(event.seq, event.hash, at))
    return Checkpoint.objects.create(
        head_seq=event.seq,
        head_hash=event.hash,
        at=at,
        key_id=keys.key_id,
        signature=signature.hex(),
    )


@transaction.atomic
def sign_checkpoint_now() -> Checkpoint | None:
    """Sign the current head (the periodic task and `yobikake audit checkpoint`)."""
    head = lock_chain_head()
    if head.seq == 0:
        return None
    event = Event.objects.get(seq=head.seq)
    head.checkpoint_at = timezone.now()
    head.save(update_fields=["checkpoint_at"])
    return _sign_checkpoint(event)


@audited(AuditTag.ALERT_ACKNOWLEDGE)
def acknowledge_alert(*, actor: User, alert: Alert) -> Alert:
    """The security officer has seen the alert and is looking into it."""
    require(actor, Permission.ALERT_ANY_MANAGE)
    alert = Alert.objects.select_for_update().get(pk=alert.pk)
    if alert.state != Alert.State.OPEN:
        raise AuditError(_("Only an open alert can be acknowledged."))
    alert.state = Alert.State.ACKNOWLEDGED
    alert.acknowledged_by_id = actor.pk
    alert.acknowledged_at = timezone.now()
    alert.save(update_fields=["state", "acknowledged_by_id", "acknowledged_at"])
    append_event(tag=AuditTag.ALERT_ACKNOWLEDGE, actor=actor, details={"alert_id": alert.pk})
    return alert


@audited(AuditTag.ALERT_CLOSE)
def close_alert(*, actor: User, alert: Alert, note: str) -> Alert:
    """Close an alert with a note saying what was found (the note stays in the alert
    table; the log records that it was closed, and a digest of the note)."""
    require(actor, Permission.ALERT_ANY_MANAGE)
    alert = Alert.objects.select_for_update().get(pk=alert.pk)
    if alert.state == Alert.State.CLOSED:
        raise AuditError(_("The alert is already closed."))
    if not note.strip():
        raise AuditError(_("Say what was found before closing the alert."))
    alert.state = Alert.State.CLOSED
    alert.closed_by_id = actor.pk
    alert.closed_at = timezone.now()
    alert.note = note.strip()
    alert.save(update_fields=["state", "closed_by_id", "closed_at", "note"])
    append_event(
        tag=AuditTag.ALERT_CLOSE,
        actor=actor,
        details={"alert_id": alert.pk, "note": chain.text_digest(alert.note)},
    )
    return alert
