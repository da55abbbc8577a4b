"""The reveal gate: the only road from ciphertext to plaintext.

`reveal(actor, target, purpose)` gives one person's fields — only those the purpose
needs — to a user who holds a live, genuine grant for that person and purpose, within
the hourly budget of their role. The application holds nothing that opens: it sends the
sealed values and the wrapped keys they name to the custodian with the justification
(holder, purpose, grant, person, fields), and the custodian decides again on its own
rules, records the open in its ledger and alerts on its own channel (a canary opened
among them). The audit event is written and committed before the values are returned;
if it cannot be written, or the custodian cannot be reached or refuses, nothing is
revealed. Every refusal is on the record and feeds the alert rules.
"""

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from yobikake.accounts.errors import AccountError
from yobikake.accounts.selectors import has_permission
from yobikake.audit.models import Event
from yobikake.audit.services import append_event, record_denial
from yobikake.audit.tags import REVEAL_TAGS, AuditTag
from yobikake.custody.protocol import (
    CustodyRefused,
    CustodyUnavailable,
    Holder,
    Justification,
    OpenRequest,
    Refusal,
)
from yobikake.intake.models import Target, TargetList
from yobikake.vault import batches, grants
from yobikake.vault.custodian import custodian
from yobikake.vault.models import Purpose
from yobikake.vault.services import PURPOSE_PERMISSION

TAGS = {
    Purpose.CALL: AuditTag.REVEAL_CALL,
    Purpose.RESEARCH: AuditTag.REVEAL_RESEARCH,
    Purpose.EXPORT: AuditTag.REVEAL_EXPORT,
}
# What each purpose shows. A call never shows the insured number or the address.
FIELDS = {
    Purpose.CALL: ("name_kanji", "name_kana", "phone"),
    Purpose.RESEARCH: ("name_kanji", "name_kana", "postal_code", "address"),
    Purpose.EXPORT: Target.SEALED_FIELDS,
}
# Clear fields shown with the sealed ones.
CLEAR_FIELDS = {
    Purpose.CALL: ("age", "sex"),
    Purpose.RESEARCH: ("age", "sex"),
    Purpose.EXPORT: ("age", "sex"),
}
# Whose hourly budget applies (settings.YOBIKAKE_REVEAL_BUDGETS).
BUDGET_ROLE = {Purpose.CALL: "operator", Purpose.RESEARCH: "researcher", Purpose.EXPORT: "default"}


class RevealRefused(AccountError):
    """The reveal was refused; `code` says why (and is what the audit log records)."""


class RevealUnavailable(RevealRefused):
    """The key service could not be reached: nothing can be revealed now."""


REFUSALS = {
    "not_permitted": gettext_lazy("You may not see personal data for this purpose."),
    "no_grant": gettext_lazy("This person is not assigned to you for this task."),
    "forged_authorization": gettext_lazy("This person is not assigned to you for this task."),
    "over_budget": gettext_lazy("You have reached your hourly limit of people shown."),
    "list_shredded": gettext_lazy("This list has been deleted."),
    "cannot_open": gettext_lazy(
        "This record cannot be opened; the security officer has been told."
    ),
    "holder_unknown": gettext_lazy(
        "Your role has not been confirmed in custody, so nothing can be shown to you. The "
        "approver confirms it on the custodian's page with their passkey; the security "
        "officer has been told of this attempt."
    ),
    "custody_refused": gettext_lazy(
        "The custodian refused to open this record now; the security officer can see why."
    ),
}
# The custodian's refusals the application words as its own.
_CUSTODY_CODES = {
    Refusal.HOLDER_BUDGET: "over_budget",
    Refusal.SHREDDED: "list_shredded",
    Refusal.CANNOT_OPEN: "cannot_open",
    Refusal.HOLDER_UNKNOWN: "holder_unknown",
}


def budget(purpose: Purpose) -> int:
    budgets: dict[str, int] = settings.YOBIKAKE_REVEAL_BUDGETS
    return budgets.get(BUDGET_ROLE[purpose], budgets["default"])


_REVEAL_TAGS = sorted(REVEAL_TAGS)
# Written out because it runs in every reveal, where building it with the ORM cost more
# than running it (bench/vault.py).
_REVEALS_SINCE = (
    f"SELECT COUNT(*) FROM {Event._meta.db_table} "  # noqa: S608 - fixed names only
    "WHERE actor_user_id = %s AND at > %s AND outcome = %s "
    f"AND tag IN ({', '.join(['%s'] * len(_REVEAL_TAGS))})"
)


def reveals_in_last_hour(actor: Any) -> int:
    since = connection.ops.adapt_datetimefield_value(timezone.now() - timedelta(hours=1))
    with connection.cursor() as cursor:
        cursor.execute(_REVEALS_SINCE, [actor.pk, since, Event.Outcome.ALLOWED, *_REVEAL_TAGS])
        count: int = cursor.fetchone()[0]
    return count


def _refuse(code: str) -> RevealRefused:
    return RevealRefused(str(REFUSALS[code]), code=code)


def _check(actor: Any, target_id: int, purpose: Purpose) -> Any:
    """The grant that allows this reveal (with its target and list), or a refusal."""
    permitted = has_permission(actor, PURPOSE_PERMISSION[purpose])  # reports forged roles
    try:
        # Looked at whether permitted or not: a forged grant is reported even for an
        # account without the role (someone is testing what a database write can do).
        grant = grants.live_grant(actor, target_id, purpose, FIELDS[purpose])
    except grants.ForgedGrant:
        raise _refuse("forged_authorization") from None
    if not permitted:
        raise _refuse("not_permitted")
    if grant is None:
        raise _refuse("no_grant")
    target = grant.target
    if target.target_list.state != TargetList.State.ACTIVE:
        raise _refuse("list_shredded")
    if target.insurer_id != target.target_list.insurer_id:
        raise _refuse("cannot_open")  # moved to another insurer in the database
    return grant


def _refs(target_id: int, purpose: Purpose) -> dict[str, Any]:
    """What the event names: the target, its list and insurer (as the database has them)."""
    row = Target.objects.filter(pk=target_id).values("insurer_id", "target_list_id").first()
    return {
        "insurer_id": row["insurer_id"] if row else None,
        "list_id": row["target_list_id"] if row else None,
        "target_id": target_id,
        "purpose": str(purpose),
    }


def _record(actor: Any, grant: Any, purpose: Purpose) -> int:
    """Write the reveal's event and commit it; its id (the custodian's ledger records it,
    and reconciliation matches the two). Refuse if it is one over the budget.

    The count is made after the event is written, in its transaction: appenders take
    turns on the audit chain's head, so two reveals at the same moment cannot both pass
    a count that each made before the other's event existed. The transaction is durable
    (not inside a caller's): the event is committed before anything is returned, and a
    caller's rollback cannot take it back."""
    target = grant.target
    with transaction.atomic(durable=True):
        event = append_event(
            tag=TAGS[purpose],
            actor=actor,
            insurer_id=target.insurer_id,
            list_id=target.target_list_id,
            target_id=target.pk,
            purpose=str(purpose),
            details={"grant_id": grant.pk},
        )
        if reveals_in_last_hour(actor) > budget(purpose):
            raise _refuse("over_budget")  # the event goes with the rollback
    return int(event.seq)


def _known(exc: CustodyRefused) -> bool:
    return exc.code in Refusal._value2member_map_


def open_request(
    holder_id: int,
    grant_id: int,
    target: Any,
    purpose: Purpose,
    wrapped_keys: dict[int, bytes] | None = None,
    *,
    event_id: int | None = None,
) -> OpenRequest:
    """What the custodian is sent to open the purpose's fields of `target` for a holder:
    the justification (with the reveal's audit event), the sealed values and the wrapped
    keys they name (read here unless given: a reveal's come with its grant)."""
    sealed = {field: _bytes(getattr(target, field)) for field in FIELDS[purpose]}
    if wrapped_keys is None:
        wrapped_keys = batches.wrapped_keys(target.target_list_id, sealed.values())
    return OpenRequest(
        justification=Justification(
            holder=Holder(user_id=holder_id, role=BUDGET_ROLE[purpose]),
            purpose=str(purpose),
            grant_id=grant_id,
            insurer_id=target.insurer_id,
            list_id=target.target_list_id,
            table=Target._meta.db_table,
            row_id=target.pk,
            fields=tuple(sealed),
            event_id=event_id,
        ),
        wrapped_keys=wrapped_keys,
        sealed=sealed,
    )


def _open(actor: Any, grant: Any, purpose: Purpose, event_id: int) -> dict[str, str]:
    """The purpose's fields of the grant's person, opened by the custodian."""
    request = open_request(
        actor.pk, grant.pk, grant.target, purpose, grant.wrapped_keys, event_id=event_id
    )
    return dict(custodian().open(request).values)


def _bytes(value: Any) -> bytes | None:
    return bytes(value) if value else None


def reveal(actor: Any, target: Any, purpose: Purpose) -> dict[str, str]:
    """The fields of `target` that `purpose` needs, in plaintext, on the record. Only
    `target.pk` is taken from the argument; everything else is read afresh."""
    purpose = Purpose(purpose)
    tag = TAGS[purpose]
    event_id = None
    try:
        grant = _check(actor, target.pk, purpose)
        target = grant.target
        event_id = _record(actor, grant, purpose)
        values = _open(actor, grant, purpose, event_id)
    except RevealRefused as exc:
        subject = actor if exc.code == "forged_authorization" else None
        refs = _refs(target.pk, purpose)
        record_denial(tag=tag, actor=actor, reason=exc.code, subject=subject, **refs)
        raise
    except CustodyUnavailable:
        refs = _refs(target.pk, purpose)
        # Names the reveal's event: reconciliation finds no open for it, and this says why.
        refs["details"] = {"reveal_event": event_id}
        record_denial(tag=tag, actor=actor, reason="custodian_unavailable", **refs)
        raise RevealUnavailable(
            _("The custodian cannot be reached; nothing can be shown now."),
            code="custodian_unavailable",
        ) from None
    except CustodyRefused as exc:
        code = _CUSTODY_CODES.get(Refusal(exc.code), "custody_refused") if _known(exc) else ""
        refs = _refs(target.pk, purpose)
        record_denial(tag=tag, actor=actor, reason=exc.code, **refs)
        raise _refuse(code or "custody_refused") from None
    values.update({field: str(getattr(target, field)) for field in CLEAR_FIELDS[purpose]})
    return values
