"""Every write the vault makes: grants, shredding, key rotation."""

import contextlib
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from yobikake.accounts.errors import AccountError, NotPermitted
from yobikake.accounts.permissions import Permission
from yobikake.accounts.selectors import has_permission, require
from yobikake.audit.services import append_event, audited
from yobikake.audit.tags import AuditTag
from yobikake.intake.models import Target, TargetIndex, TargetList
from yobikake.vault import datakeys, grants
from yobikake.vault.adapters.local import LocalKeyService
from yobikake.vault.models import Grant, IndexKey, Purpose
from yobikake.vault.ports import KeyNotFound, KeyServiceError, Wrapped
from yobikake.vault.service import key_service

# What the holder of a grant must be allowed to do for each purpose.
PURPOSE_PERMISSION = {
    Purpose.CALL: Permission.TARGET_REVEAL_CALL,
    Purpose.RESEARCH: Permission.TARGET_REVEAL_RESEARCH,
    Purpose.EXPORT: Permission.EXPORT_OWN_DOWNLOAD,
}
# Besides the holder checking a task out for themselves, who may hand one out.
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
    self_checkout = actor.pk == holder.pk and purpose in ONE_AT_A_TIME
    if not self_checkout:
        require(actor, PURPOSE_ISSUER[purpose])
    if not has_permission(holder, PURPOSE_PERMISSION[purpose]):
        raise NotPermitted(
            _("%(user)s may not be given this task.") % {"user": holder.username},
            code="holder_not_permitted",
        )
    if purpose is Purpose.EXPORT and holder.organization.insurer_id != target.insurer_id:
        raise NotPermitted(_("Exports go to the target's own insurer."), code="not_yours")
    target = Target.objects.select_related("target_list").get(pk=target.pk)
    if target.target_list.state != TargetList.State.ACTIVE:
        raise AccountError(_("This list has been shredded."), code="list_shredded")
    now = timezone.now()
    if purpose in ONE_AT_A_TIME:
        for previous in Grant.objects.select_for_update().filter(
            holder=holder, purpose=purpose, released_at__isnull=True, expires_at__gt=now
        ):
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
        details={"grant_id": grant.pk, "minutes": minutes or settings.YOBIKAKE_GRANT_MINUTES},
        **_refs(target),
    )
    return grant


def _release(*, actor: Any, grant: Any, reason: str) -> None:
    grant.released_at = timezone.now()
    grant.save(update_fields=["released_at"])
    grants.seal(grant)
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
    in any backup, opens again), then delete its rows, blind indexes and grants. Its
    counts and aggregates stay. If the deletion fails after the key is gone, running
    this again finishes it."""
    require(actor, Permission.RETENTION_ANY_MANAGE)
    target_list = TargetList.objects.select_for_update().get(pk=target_list.pk)
    if target_list.state == TargetList.State.SHREDDED:
        raise AccountError(_("This list has already been shredded."), code="already_shredded")
    with contextlib.suppress(KeyNotFound):  # destroyed by an earlier, interrupted run
        key_service().destroy(target_list.key_name)
    datakeys.key_cache().forget(target_list.key_name)
    TargetIndex.objects.filter(target_list=target_list).delete()
    Grant.objects.filter(target__target_list=target_list).delete()
    Target.objects.filter(target_list=target_list).only("pk").delete()
    target_list.state = TargetList.State.SHREDDED
    target_list.wrapped_key = ""
    target_list.shredded_at = timezone.now()
    target_list.save(update_fields=["state", "wrapped_key", "shredded_at"])
    append_event(
        tag=AuditTag.LIST_SHRED,
        actor=actor,
        insurer_id=target_list.insurer_id,
        list_id=target_list.pk,
        details={"key_name": target_list.key_name, "rows": target_list.row_count},
    )
    return target_list


def _rewrap_rows(
    rows: Iterator[Any], aad: Callable[[Any], bytes], kind: str, progress: Callable[[], None]
) -> int:
    """Rotate each row's key and rewrap its wrapped key, one row per transaction: readers
    keep working throughout (old key versions still unwrap)."""
    keys = key_service()
    count = 0
    for row in rows:
        version = keys.rotate(row.key_name)
        new = keys.rewrap([Wrapped(row.key_name, row.wrapped_key)], aad=aad(row))[0]
        with transaction.atomic():
            type(row).objects.filter(pk=row.pk).update(wrapped_key=new.token)
            append_event(
                tag=AuditTag.KEY_ROTATE,
                actor=None,
                details={"kind": kind, "key_name": row.key_name, "version": version},
            )
        count += 1
        progress()
    return count


def rotate_insurer_keys(progress: Callable[[], None] = lambda: None) -> int:
    """Rotate every insurer's key in the key service and rewrap its blind-index key."""
    rows = IndexKey.objects.order_by("pk").iterator()
    return _rewrap_rows(rows, lambda r: datakeys.insurer_aad(r.insurer_id), "insurer", progress)


def rotate_list_keys(progress: Callable[[], None] = lambda: None) -> int:
    """Rotate every live list's key in the key service and rewrap its data key."""
    rows = TargetList.objects.filter(state=TargetList.State.ACTIVE).order_by("pk").iterator()
    return _rewrap_rows(rows, lambda r: datakeys.list_aad(r.pk), "list", progress)


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
