"""Producing an export file, for an approved export and for nothing else.

`export_file` is the reveal gate's bulk counterpart (vault/reveal.py). It has the
custodian produce the file of many targets of one insurer (`produce_file`): the
application sends a template — its own text, and cells naming the targets' sealed
fields — and the custodian opens them, fills the file and encrypts it to the insurer's
age key; only the ciphertext comes back, so the application never holds the people's
values. It asks only for a staff member of that insurer who downloads an approved
export, and only when the approval is genuine (its MAC), approved, unexpired, unused
(the audit log holds no export under it either: a used approval put back to "approved"
in the database stays used), for exactly this insurer and for exactly the people it was
requested for; the file goes to the approval's recipient as read and checked under the
same lock. The custodian decides again on its own rules (the export's fields, its rows
and bulk opens a day), records the file in its ledger and alerts on its own channel.
The application marks the approval used and writes ONE audit event naming the approval
and how many people were in the file, never a value; both are committed before the file
is returned. Every refusal is on the record.

`bulk_request` builds the rows a file (or, for synthetic organisations' data, a bulk
open: synth/leak.py) names.
"""

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy

from yobikake.accounts.permissions import Permission
from yobikake.accounts.selectors import has_permission
from yobikake.audit.models import Event
from yobikake.audit.services import append_event, record_denial
from yobikake.audit.tags import AuditTag
from yobikake.custody.protocol import (
    BulkRequest,
    Cell,
    CustodyRefused,
    CustodyUnavailable,
    FileRequest,
    Holder,
    Refusal,
    SealedRow,
)
from yobikake.exports import approvals
from yobikake.exports.models import Approval
from yobikake.incidents import canaries
from yobikake.intake.models import Target, TargetList
from yobikake.vault import batches
from yobikake.vault.custodian import custodian
from yobikake.vault.models import Purpose
from yobikake.vault.reveal import BUDGET_ROLE, RevealRefused, RevealUnavailable

BATCH = 2000  # targets read per query
CLEAR_COLUMNS = ("sex", "age", "has_phone", "idx_name_address", "idx_kana_address")

REFUSALS = {
    "not_permitted": gettext_lazy("You may not receive exports."),
    "not_yours": gettext_lazy("This export is for another insurer."),
    "forged_authorization": gettext_lazy(
        "This export's approval is damaged; the security officer has been told."
    ),
    "not_approved": gettext_lazy("This export has not been approved."),
    "expired": gettext_lazy("This export's approval has expired."),
    "used": gettext_lazy("This export has already been downloaded."),
    "targets_changed": gettext_lazy(
        "The people in this export have changed since it was approved; the security officer "
        "has been told."
    ),
    "canary": gettext_lazy("This export cannot be produced; the security officer has been told."),
    "cannot_open": gettext_lazy("A record cannot be opened; the security officer has been told."),
    "custody_refused": gettext_lazy(
        "The custodian refused to open these records now; the security officer can see why."
    ),
    "approval_pending": gettext_lazy(
        "This approval has not been confirmed in custody yet: the approver confirms it on "
        "the custodian's page with their passkey; then download again."
    ),
    "approval_unknown": gettext_lazy(
        "The custodian holds no such approval, so nothing is released; the security "
        "officer has been told of this attempt."
    ),
    "holder_unknown": gettext_lazy(
        "Your role has not been confirmed in custody, so nothing can be shown to you. The "
        "approver confirms it on the custodian's page with their passkey; the security "
        "officer has been told of this attempt."
    ),
    "key_not_confirmed": gettext_lazy(
        "The security officer has not yet confirmed this insurer's key in custody; "
        "ask them to confirm it, then download again."
    ),
}
# The custodian's refusals the application words as its own.
_CUSTODY_CODES: dict[str, str] = {
    Refusal.SHREDDED: "cannot_open",
    Refusal.CANNOT_OPEN: "cannot_open",
    Refusal.RECIPIENT: "key_not_confirmed",
    Refusal.HOLDER_UNKNOWN: "holder_unknown",
    Refusal.APPROVAL_PENDING: "approval_pending",
    Refusal.APPROVAL_UNKNOWN: "approval_unknown",
}


def _refuse(code: str) -> RevealRefused:
    return RevealRefused(str(REFUSALS[code]), code=code)


def _used_on_record(approval_id: int) -> bool:
    # Event details are canonical JSON with sorted keys: they begin with the approval.
    used: bool = Event.objects.filter(
        tag=AuditTag.REVEAL_EXPORT,
        outcome=Event.Outcome.ALLOWED,
        details__startswith=f'{{"approval_id":{approval_id},',
    ).exists()
    return used


def _check(actor: Any, approval_id: int, insurer_id: int, target_ids: Sequence[int]) -> Any:
    """The approval, locked, when it lets `actor` receive `target_ids` of `insurer_id`'s
    people now."""
    # Only the approval's row is locked: the recipient is nullable (kinds that release
    # nothing have none), and PostgreSQL locks no row of an outer join's nullable side.
    approval = (
        Approval.objects.select_for_update(of=("self",))
        .select_related("recipient")
        .get(pk=approval_id)
    )
    if approval.recipient is None:
        raise _refuse("forged_authorization")  # a deletion approval, never an export
    if not approvals.is_sealed(approval) or not approvals.is_sealed(approval.recipient):
        raise _refuse("forged_authorization")
    if approval.recipient.insurer_id != approval.insurer_id:
        raise _refuse("forged_authorization")  # no request is ever made to another's key
    if not has_permission(actor, Permission.EXPORT_OWN_DOWNLOAD):
        raise _refuse("not_permitted")
    if not insurer_id == approval.insurer_id == actor.organization.insurer_id:
        raise _refuse("not_yours")
    if approval.state == Approval.State.USED or _used_on_record(approval.pk):
        raise _refuse("used")
    if approval.state != Approval.State.APPROVED:
        raise _refuse("not_approved")
    if approval.expires_at <= timezone.now():
        raise _refuse("expired")
    # The people come from rows nothing protects (an incident's matches): someone who
    # added or removed one since the request would change who is released.
    if not approvals.binds(approval, target_ids):
        raise _refuse("targets_changed")
    return approval


def _targets(ids: Sequence[int], fields: Iterable[str]) -> list[Any]:
    # The sealed fields asked for, and what a producer drafts the file from: the clear
    # columns and the blind indexes that tell one person and address.
    columns = ["id", "target_list_id", "insurer_id", *CLEAR_COLUMNS, *fields]
    found = []
    for start in range(0, len(ids), BATCH):
        chunk = ids[start : start + BATCH]
        found += list(Target.objects.filter(pk__in=chunk).only(*columns).order_by("pk"))
    return found


def bulk_request(
    *,
    holder: Holder,
    purpose: str,
    approval_id: int,
    insurer_id: int,
    fields: tuple[str, ...],
    rows: Iterable[tuple[int, int, Sequence[Any]]],
) -> BulkRequest:
    """A bulk open of `rows` of one insurer's targets — (target id, list id, each of
    `fields`' values as stored) — with the wrapped keys their values name."""
    table = Target._meta.db_table
    sealed_rows = [
        SealedRow(
            list_id=list_id,
            insurer_id=insurer_id,
            table=table,
            row_id=target_id,
            sealed={f: bytes(v) if v else None for f, v in zip(fields, values, strict=True)},
        )
        for target_id, list_id, values in rows
    ]
    by_list: dict[int, list[bytes | None]] = defaultdict(list)
    for row in sealed_rows:
        by_list[row.list_id] += row.sealed.values()
    return BulkRequest(
        holder=holder,
        purpose=purpose,
        approval_id=approval_id,
        insurer_id=insurer_id,
        fields=fields,
        rows=sealed_rows,
        wrapped_keys=batches.wrapped_keys_by_list(by_list),
    )


def _stored(insurer_id: int, targets: list[Any]) -> None:
    """Refused unless every target still stored is on an active list of `insurer_id`,
    as the database has them, and none is a canary."""
    lists = {
        tl.pk: tl for tl in TargetList.objects.filter(pk__in={t.target_list_id for t in targets})
    }
    for target in targets:
        target_list = lists[target.target_list_id]
        if target_list.state != TargetList.State.ACTIVE:
            raise _refuse("cannot_open")
        if not target.insurer_id == target_list.insurer_id == insurer_id:
            raise _refuse("cannot_open")  # moved to another insurer in the database
    # No honest export names a canary: one here means the matches were altered.
    if canaries.of_lists(lists.values()) & {t.pk for t in targets}:
        raise _refuse("canary")


def _use(actor: Any, approval: Any, opened: int, asked: int) -> None:
    approval.state = Approval.State.USED
    approval.used_by, approval.used_at = actor, timezone.now()
    approval.save(update_fields=["state", "used_by", "used_at"])
    approvals.seal(approval)
    append_event(
        tag=AuditTag.REVEAL_EXPORT,
        actor=actor,
        insurer_id=approval.insurer_id,
        purpose=str(Purpose.EXPORT),
        details={
            "approval_id": approval.pk,
            "count": opened,
            "kind": approval.kind,
            "missing": asked - opened,  # people whose list was shredded since
        },
    )


@dataclass(frozen=True)
class Draft:
    """A file's template, as a producer composes it from the targets (their clear
    columns, never a value): lines of its own text and `SealedCell`s naming the targets'
    fields. `record` writes what the application keeps of the file (its watermark),
    in the transaction that marks the approval used, once the custodian has made it."""

    name: str
    header: tuple[str, ...]
    lines: list[list[Cell]]
    sort_by: tuple[int, ...] = ()
    record: Callable[[], None] = lambda: None


@dataclass(frozen=True)
class Released:
    name: str
    data: bytes  # age-encrypted: only the insurer's private key opens it


def export_file(
    *,
    actor: Any,
    approval: Any,
    insurer_id: int,
    target_ids: Sequence[int],
    fields: tuple[str, ...],
    compose: Callable[[list[Any]], Draft],
) -> Released:
    """The file `compose` drafts over `target_ids` still stored (with `fields` loaded,
    sealed), produced and encrypted in custody to the approval's recipient. `target_ids`
    must be exactly the people the approval was requested for. Only `approval.pk` is
    taken from the argument; everything else is read afresh under the approval's row
    lock. Call it outside any transaction: its event must be committed before the file
    leaves."""
    unknown = set(fields) - set(Target.SEALED_FIELDS)
    if unknown:
        raise ValueError(f"not sealed fields: {sorted(unknown)}")
    ids = sorted(set(target_ids))
    try:
        with transaction.atomic(durable=True):
            locked = _check(actor, approval.pk, insurer_id, ids)
            targets = _targets(ids, fields)
            _stored(insurer_id, targets)
            draft = compose(targets)
            request = FileRequest(
                bulk=bulk_request(
                    holder=Holder(user_id=actor.pk, role=BUDGET_ROLE[Purpose.EXPORT]),
                    purpose=str(Purpose.EXPORT),
                    approval_id=locked.pk,
                    insurer_id=insurer_id,
                    fields=fields,
                    rows=[
                        (t.pk, t.target_list_id, [getattr(t, f) for f in fields]) for t in targets
                    ],
                ),
                name=draft.name,
                header=draft.header,
                lines=draft.lines,
                recipient=locked.recipient.public_key,
                sort_by=draft.sort_by,
            )
            # Produced before the events are written, in their transaction: the audit
            # chain's head is not held while the custodian works. Should the commit fail
            # after it, nothing is returned, and reconciliation finds the open without
            # its event.
            produced = custodian().produce_file(request)
            draft.record()
            _use(actor, locked, len(targets), len(ids))
    except RevealRefused as exc:
        _deny(actor, approval, exc.code)
        raise
    except CustodyUnavailable:
        _deny(actor, approval, "custodian_unavailable")
        raise RevealUnavailable(
            str(gettext_lazy("The custodian cannot be reached; nothing can be shown now.")),
            code="custodian_unavailable",
        ) from None
    except CustodyRefused as exc:
        _deny(actor, approval, exc.code)
        raise _refuse(_CUSTODY_CODES.get(exc.code, "custody_refused")) from None
    return Released(produced.name, produced.data)


def _deny(actor: Any, approval: Any, code: str) -> None:
    details: dict[str, int | bool] = {"approval_id": approval.pk}
    if code == "canary":
        details["canary"] = True  # a critical alert: someone altered the matches
    subject = actor if code == "forged_authorization" else None
    record_denial(
        tag=AuditTag.REVEAL_EXPORT,
        actor=actor,
        reason=code,
        subject=subject,
        insurer_id=approval.insurer_id,
        purpose=str(Purpose.EXPORT),
        details=details,
    )
