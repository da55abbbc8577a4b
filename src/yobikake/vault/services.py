"""Every write the vault makes: grants, shredding, key rotation."""

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, models, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from yobikake.accounts.errors import AccountError, NotPermitted
from yobikake.accounts.permissions import Permission
from yobikake.accounts.selectors import has_permission, require
from yobikake.audit.services import append_event, audited
from yobikake.audit.tags import AuditTag
from yobikake.incidents import canaries
from yobikake.intake.models import Target, TargetList
from yobikake.vault import datakeys, grants
from yobikake.vault.adapters.local import LocalKeyService
from yobikake.vault.custodian import custodian
from yobikake.vault.models import Grant, IndexKey, Purpose
from yobikake.vault.ports import KeyNotFound, KeyServiceError, Wrapped
from yobikake.vault.service import key_service

TOKYO = ZoneInfo("Asia/Tokyo")

# What the holder of a grant must be allowed to do for each purpose.
PURPOSE_PERMISSION = {
    Purpose.CALL: Permission.TARGET_REVEAL_CALL,
    Purpose.RESEARCH: Permission.TARGET_REVEAL_RESEARCH,
    Purpose.EXPORT: Permission.EXPORT_OWN_DOWNLOAD,
}
# Who may hand a task out (besides the queue: the operator's own "next call" checks out
# from the campaigns the operator is assigned to, see `queue_grant`).
PURPOSE_ISSUER = {
    Purpose.CALL: Permission.OPERATOR_ANY_ASSIGN,
    Purpose.RESEARCH: Permission.OPERATOR_ANY_ASSIGN,
    Purpose.EXPORT: Permission.EXPORT_ANY_APPROVE,
}
# Purposes worked one person at a time: a new grant ends the holder's previous one.
ONE_AT_A_TIME = frozenset({Purpose.CALL, Purpose.RESEARCH})


def _refs(target: Any) -> dict[str, Any]:
    return {
        "insurer_id": target.insurer_id,
        "list_id": target.target_list_id,
        "target_id": target.pk,
    }


@audited(AuditTag.GRANT_ISSUE)
def issue_grant(
    *, actor: Any, holder: Any, target: Any, purpose: Purpose, minutes: int | None = None
) -> Any:
    """Let `holder` reveal `target` for `purpose` for `minutes` (a call task checked out,
    a research task assigned, an export approved). For calls and research a holder has
    one live grant at a time: this one ends the previous."""
    purpose = Purpose(purpose)
    require(actor, PURPOSE_ISSUER[purpose])
    if actor.pk == holder.pk:
        raise NotPermitted(_("Nobody assigns a task to themselves."), code="self_assignment")
    if not has_permission(holder, PURPOSE_PERMISSION[purpose]):
        raise NotPermitted(
            _("%(user)s may not be given this task.") % {"user": holder.username},
            code="holder_not_permitted",
        )
    if purpose is Purpose.EXPORT and holder.organization.insurer_id != target.insurer_id:
        raise NotPermitted(_("Exports go to the target's own insurer."), code="not_yours")
    return _issue(actor=actor, holder=holder, target=target, purpose=purpose, minutes=minutes)


def lock_holder(holder: Any) -> None:
    """Take the holder's row lock for the rest of the transaction. Grants for one holder
    are issued one at a time under it, so two assignments (or two presses of "next
    call") at the same moment cannot leave two live grants or two checkouts."""
    # Written out: it runs in every checkout, where building it with the ORM cost more
    # than running it (bench/calling.py). SQLite runs checkouts one at a time already.
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    with connection.cursor() as cursor:
        users = get_user_model()._meta.db_table
        cursor.execute(f"SELECT 1 FROM {users} WHERE id = %s{lock}", [holder.pk])  # noqa: S608
        cursor.fetchone()


def queue_grant(*, holder: Any, target: Any, purpose: Purpose, minutes: int, **details: Any) -> Any:
    """A task the holder takes from their own queue (the operator's "next call"): the
    queue chose the target, not the holder, so the grant is the queue's on the holder's
    behalf. Only queue services call this, inside their checkout's transaction, having
    taken `lock_holder` before they looked for the holder's current task."""
    if ONE_AT_A_TIME.isdisjoint({purpose}):
        raise NotPermitted(_("Only calls and research come from a queue."), code="not_queued")
    if not has_permission(holder, PURPOSE_PERMISSION[purpose]):
        raise NotPermitted(
            _("%(user)s may not be given this task.") % {"user": holder.username},
            code="holder_not_permitted",
        )
    return _issue(
        actor=holder,
        holder=holder,
        target=target,
        purpose=purpose,
        minutes=minutes,
        details=details,
        holder_locked=True,
    )


def release_queue_grant(*, holder: Any, grant_id: int | None, target: Any) -> None:
    """End the holder's grant from a queue (the call recorded, the task done), inside
    the caller's transaction; `target` is the grant's, already loaded."""
    grant = Grant.objects.select_for_update().filter(pk=grant_id, holder=holder).first()
    if grant is None or grant.released_at is not None or grant.target_id != target.pk:
        return
    grant.holder, grant.target = holder, target
    _release(actor=holder, grant=grant, reason="done")


def _issue(
    *,
    actor: Any,
    holder: Any,
    target: Any,
    purpose: Purpose,
    minutes: int | None,
    details: dict[str, Any] | None = None,
    holder_locked: bool = False,
) -> Any:
    if not Target._meta.get_field("target_list").is_cached(target):
        # (A queue hands over the target it has just locked, with its list.)
        target = Target.objects.select_related("target_list").get(pk=target.pk)
    if target.target_list.state != TargetList.State.ACTIVE:
        raise AccountError(_("This list has been shredded."), code="list_shredded")
    if target.insurer_id != target.target_list.insurer_id:
        raise AccountError(_("This record is damaged."), code="target_moved")
    if purpose is Purpose.RESEARCH and target.has_phone:
        # Research shows the address: only for people whose number is to be found.
        raise AccountError(_("This person's phone number is known."), code="has_phone")
    now = timezone.now()
    if purpose in ONE_AT_A_TIME:
        if not holder_locked:
            lock_holder(holder)
        # Usually none: found with a written-out query (it runs in every checkout), read
        # whole only when there is one to end.
        lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
        with connection.cursor() as cursor:
            cursor.execute(
                _LIVE_OF_HOLDER + lock,
                [holder.pk, str(purpose), connection.ops.adapt_datetimefield_value(now)],
            )
            live = [row[0] for row in cursor.fetchall()]
        for previous in Grant.objects.filter(pk__in=live) if live else ():
            _release(actor=actor, grant=previous, reason="superseded")
    grant = Grant.objects.create(
        holder=holder,
        target=target,
        purpose=purpose,
        issued_by=actor,
        issued_at=now,
        expires_at=now + timedelta(minutes=minutes or settings.YOBIKAKE_GRANT_MINUTES),
    )
    grants.seal(grant)
    append_event(
        tag=AuditTag.GRANT_ISSUE,
        actor=actor,
        subject=holder,
        purpose=str(purpose),
        details={
            "grant_id": grant.pk,
            "minutes": minutes or settings.YOBIKAKE_GRANT_MINUTES,
            **(details or {}),
        },
        **_refs(target),
    )
    return grant


_LIVE_OF_HOLDER = (
    f"SELECT id FROM {Grant._meta.db_table} WHERE holder_id = %s AND purpose = %s "  # noqa: S608
    "AND released_at IS NULL AND expires_at > %s"
)


def _release(*, actor: Any, grant: Any, reason: str) -> None:
    grant.released_at = timezone.now()
    # The release and its MAC in one statement (the MAC covers the release time).
    grants.seal(grant, also=("released_at",))
    append_event(
        tag=AuditTag.GRANT_RELEASE,
        actor=actor,
        subject=grant.holder,
        purpose=grant.purpose,
        details={"grant_id": grant.pk, "reason": reason},
        insurer_id=grant.target.insurer_id,
        list_id=grant.target.target_list_id,
        target_id=grant.target_id,
    )


@audited(AuditTag.GRANT_RELEASE)
def release_grant(*, actor: Any, grant: Any) -> None:
    """End a grant (the call is done, the task handed back)."""
    if actor.pk != grant.holder_id:
        require(actor, PURPOSE_ISSUER[Purpose(grant.purpose)])
    grant = Grant.objects.select_for_update().select_related("target").get(pk=grant.pk)
    if grant.released_at is None:
        _release(actor=actor, grant=grant, reason="done")


@audited(AuditTag.LIST_SHRED)
def shred_list(*, actor: Any, target_list: Any) -> Any:
    """Crypto-shred a list: destroy its key in the key service (so no copy of its rows,
    in any backup, opens again), then delete its rows (with their blind indexes) and
    grants. Its
    counts and aggregates stay. If the deletion fails after the key is gone, running
    this again finishes it."""
    require(actor, Permission.RETENTION_ANY_MANAGE)
    return _shred(actor, target_list, reason="manual")


@audited(AuditTag.LIST_SHRED)
def shred_expired_list(*, target_list: Any) -> Any:
    """The retention schedule's path (`yobikake retention enforce` and its task): no
    person acts, so the event has no actor and the reason `retention`, and it shreds only
    a list whose contract's retention deadline (a day in Asia/Tokyo) has passed; anything
    else is refused, so this path cannot serve to shred a list early."""
    from yobikake.tenancy.deadlines import deadline_of

    today = timezone.localdate(timezone.now(), timezone=TOKYO)
    # The deadline on the record, not the column alone: a column moved earlier in the
    # database does not get a list shredded before its time.
    deadline = deadline_of(target_list.insurer_id, target_list.fiscal_year)
    if deadline is None or deadline >= today:
        raise NotPermitted(_("This list's retention deadline has not passed."), code="not_expired")
    return _shred(None, target_list, reason="retention")


def _shred(actor: Any, target_list: Any, *, reason: str) -> Any:
    target_list = TargetList.objects.select_for_update().get(pk=target_list.pk)
    if target_list.state == TargetList.State.SHREDDED:
        raise AccountError(_("This list has already been shredded."), code="already_shredded")
    # The rows first, inside the transaction: if anything refuses, nothing is lost. Then
    # the private key, in custody, which cannot be taken back (asked again, the custodian
    # gives the same certificate: an interrupted run is finished by the next).
    _cut_links(target_list)
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {Target._meta.db_table} WHERE target_list_id = %s",  # noqa: S608
            [target_list.pk],
        )
    target_list.sealed_batches.all().delete()
    certificate = custodian().shred(target_list.pk)
    canaries.forget(target_list.pk)
    target_list.state = TargetList.State.SHREDDED
    target_list.public_key = ""
    target_list.shredded_at = timezone.now()
    # The custodian's word that the private key is gone, signed by the custody key.
    target_list.custody_receipt = {
        "key_fingerprint": certificate.key_fingerprint,
        "destroyed_at": certificate.destroyed_at,
        "signature": certificate.signature.hex(),
    }
    target_list.save(update_fields=["state", "public_key", "shredded_at", "custody_receipt"])
    append_event(
        tag=AuditTag.LIST_SHRED,
        actor=actor,
        insurer_id=target_list.insurer_id,
        list_id=target_list.pk,
        details={
            "key_name": list_key_name(target_list.pk),
            "key_fingerprint": "sha256:" + certificate.key_fingerprint[:48],
            "rows": target_list.row_count,
            "reason": reason,
        },
    )
    return target_list


def list_key_name(list_id: int) -> str:
    """The name of a list's key pair in custody (its OpenBao transit key)."""
    return f"yobikake-list-{list_id}"


def _cut_links(target_list: Any) -> None:
    """What refers to the list's targets, before they are deleted in one statement:
    grants go with them; links that outlive them (a campaign's call targets keep their
    counts and outcomes) are cut."""
    for relation in Target._meta.get_fields(include_hidden=True):
        if not (relation.auto_created and not relation.concrete and relation.is_relation):
            continue
        linked = relation.related_model._base_manager.filter(
            **{f"{relation.field.name}__target_list": target_list}
        )
        if relation.on_delete is models.SET_NULL:
            linked.update(**{relation.field.name: None})
        else:  # CASCADE (grants); PROTECT refuses here, before the key is touched
            linked.delete()


def _rewrap_rows(
    rows: Iterator[Any],
    wrapped: Callable[[Any], Wrapped],
    aad: Callable[[Any], bytes],
    kind: str,
    progress: Callable[[], None],
) -> int:
    """Rotate each row's key and rewrap its wrapped key, one row per transaction: readers
    keep working throughout (old key versions still unwrap). A key destroyed meanwhile
    (its list shredded) is passed over."""
    keys = key_service()
    count = 0
    for row in rows:
        old = wrapped(row)
        try:
            version = keys.rotate(old.key_name)
            new = keys.rewrap([old], aad=aad(row))[0]
        except KeyNotFound:
            continue
        with transaction.atomic():
            type(row).objects.filter(pk=row.pk, wrapped_key=old.token).update(wrapped_key=new.token)
            append_event(
                tag=AuditTag.KEY_ROTATE,
                actor=None,
                details={"kind": kind, "key_name": old.key_name, "version": version},
            )
        count += 1
        progress()
    return count


def rotate_insurer_keys(
    progress: Callable[[], None] = lambda: None, insurer_id: int | None = None
) -> int:
    """Rotate every insurer's key (or one's) in the key service and rewrap its
    blind-index key."""
    rows = IndexKey.objects.order_by("pk")
    if insurer_id is not None:
        rows = rows.filter(insurer_id=insurer_id)
    return _rewrap_rows(
        rows.iterator(),
        lambda r: Wrapped(datakeys.insurer_key_name(r.insurer_id), r.wrapped_key),
        lambda r: datakeys.insurer_aad(r.insurer_id),
        "insurer",
        progress,
    )


def rotate_master_key() -> None:
    """Seal the local keyring under a new master key. OpenBao's own keys are rotated in
    OpenBao (`bao operator rotate`), by the people who run it."""
    keys = key_service()
    if not isinstance(keys, LocalKeyService):
        raise KeyServiceError(
            "the master key belongs to the local keyring; rotate OpenBao's with "
            "`bao operator rotate`"
        )
    keys.rotate_master()
    with transaction.atomic():
        append_event(tag=AuditTag.KEY_ROTATE, actor=None, details={"kind": "master"})
