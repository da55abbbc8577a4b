"""Every write of the exports app: an insurer's key, a request for an export, a second
person's decision on it, and the release of the approved file to the insurer's staff.

What an export holds depends on its kind; each kind has a producer module (PRODUCERS)
with `targets(insurer=, subject=)` (the ids of the people it would release now, or
`ExportError` when there is nothing to ask for: the request binds them), `describe(approval)`
(a line for the approver) and `produce(actor=, approval=)` (the `Released` file, made
and encrypted in custody through `vault.exports.export_file`, which checks the
approval, its recipient and its people, and marks it used)."""

import functools
from collections.abc import Callable
from datetime import timedelta
from importlib import import_module
from types import ModuleType
from typing import Any, TypeVar, cast

import pyrage
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from yobikake.accounts.errors import AccountError, NotPermitted
from yobikake.accounts.permissions import Permission
from yobikake.accounts.selectors import require
from yobikake.audit.services import append_event, audited, record_denial
from yobikake.audit.tags import AuditTag
from yobikake.custody.protocol import ApprovalRequest, CustodyRefused, CustodyUnavailable
from yobikake.exports import approvals, selectors
from yobikake.exports.models import Approval, InsurerKey
from yobikake.tenancy.models import Insurer
from yobikake.vault.custodian import custodian
from yobikake.vault.exports import Released

PRODUCERS = {
    Approval.Kind.NOTIFICATION_LIST: "yobikake.incidents.notification",
    Approval.Kind.RESULTS: "yobikake.exports.results",
}


class ExportError(AccountError):
    """A refusal about an export, shown to the user as it is."""


def producer(kind: str) -> ModuleType:
    return import_module(PRODUCERS[Approval.Kind(kind)])


def valid_for() -> timedelta:
    return timedelta(hours=settings.YOBIKAKE_APPROVAL_HOURS)


def parse_public_key(text: str) -> str:
    """The age X25519 public key in `text` (spaces around it dropped), or `ExportError`."""
    key = text.strip()
    try:
        pyrage.x25519.Recipient.from_str(key)
    except pyrage.RecipientError:
        raise ExportError(
            _("This is not an age public key (it begins with age1)."), code="bad_public_key"
        ) from None
    return key


@audited(AuditTag.EXPORT_KEY_REGISTER)
def register_insurer_key(*, actor: Any, public_key: str) -> InsurerKey:
    """Register the age public key the actor's insurer decrypts its exports with; it
    replaces the one before for requests made from now on."""
    require(actor, Permission.EXPORT_OWN_DOWNLOAD)
    insurer_id = actor.organization.insurer_id
    if not insurer_id:
        raise NotPermitted(_("Only an insurer's staff register its key."), code="not_insurer")
    key = InsurerKey.objects.create(
        insurer_id=insurer_id,
        public_key=parse_public_key(public_key),
        registered_by=actor,
        registered_at=timezone.now(),
    )
    approvals.seal(key)
    append_event(
        tag=AuditTag.EXPORT_KEY_REGISTER,
        actor=actor,
        insurer_id=insurer_id,
        details={"key_id": key.pk},
    )
    return key


@audited(AuditTag.APPROVAL_REQUEST)
def request_approval(
    *,
    actor: Any,
    kind: Approval.Kind,
    insurer: Insurer,
    subject: dict[str, int],
    terms: dict[str, int] | None = None,
) -> Approval:
    """Ask a second person to approve releasing `subject` of `kind` to `insurer`,
    encrypted to the insurer's key in force now: to exactly the people it names now.
    `terms` are how the file is made (sealed with the subject, shown to the approver,
    on the record), not what it is about: they do not tell one request from another."""
    kind = Approval.Kind(kind)
    require(actor, approvals.POLICIES[kind].request_permission)
    # One request at a time per insurer: two at once cannot both pass the check below.
    insurer = Insurer.objects.select_for_update().get(pk=insurer.pk)
    target_ids = producer(kind).targets(insurer=insurer, subject=subject)
    recipient = selectors.current_key(insurer.pk)
    if recipient is None:
        raise ExportError(
            _("%(insurer)s has not registered an age public key yet.") % {"insurer": insurer.name},
            code="no_insurer_key",
        )
    if not approvals.is_sealed(recipient):
        # Written into the database by someone: the export would go to their key.
        raise NotPermitted(
            _("The insurer's registered key is damaged."), code="forged_authorization"
        )
    if selectors.live_approval(kind, insurer.pk, subject) is not None:
        raise ExportError(
            _("This has already been requested and is still open."), code="already_requested"
        )
    now = timezone.now()
    approval = Approval.objects.create(
        kind=kind,
        insurer=insurer,
        subject={**subject, **(terms or {}), **approvals.bind_targets(target_ids)},
        recipient=recipient,
        requested_by=actor,
        requested_at=now,
        expires_at=now + valid_for(),
    )
    approvals.seal(approval)
    append_event(
        tag=AuditTag.APPROVAL_REQUEST,
        actor=actor,
        insurer_id=insurer.pk,
        details={
            "approval_id": approval.pk,
            "kind": str(kind),
            **subject,
            **(terms or {}),
            "target_count": approval.subject["target_count"],
        },
    )
    return approval


Decision = TypeVar("Decision", bound=Callable[..., Approval])


def _decision(tag: AuditTag) -> Callable[[Decision], Decision]:
    """Like `audited`, with the approval named in the refusal's event; a request found
    past its time is then marked expired."""

    def decorator(service: Decision) -> Decision:
        @functools.wraps(service)
        def wrapper(*, actor: Any, approval: Approval) -> Approval:
            try:
                with transaction.atomic():
                    return service(actor=actor, approval=approval)
            except AccountError as exc:
                record_denial(
                    tag=tag,
                    actor=actor,
                    reason=exc.code,
                    insurer_id=approval.insurer_id,
                    details={"approval_id": approval.pk},
                )
                if exc.code == "expired":
                    _mark_expired(approval.pk)
                raise

        return cast(Decision, wrapper)

    return decorator


@transaction.atomic
def _mark_expired(approval_id: int) -> None:
    approval = Approval.objects.select_for_update().get(pk=approval_id)
    written = approval.state
    if approval.current_state == Approval.State.EXPIRED and written != Approval.State.EXPIRED:
        approval.state = Approval.State.EXPIRED
        approval.save(update_fields=["state"])
        approvals.seal(approval)


# The exports custody produces only under an approval confirmed there with the
# approver's passkey (custody/holders.py): the application's word alone opens nothing.
CUSTODY_CONFIRMED = frozenset({Approval.Kind.RESULTS, Approval.Kind.NOTIFICATION_LIST})


def _file_with_custody(actor: Any, approval: Approval) -> str:
    """File the approval with the custodian; the address of its confirmation page.
    Refused here when custody cannot take it (nothing is approved then)."""
    requester = approval.requested_by
    request = ApprovalRequest(
        kind="export",
        holder_user_id=requester.pk,
        holder_name=requester.username,
        role=str(approval.kind),
        insurer_id=approval.insurer_id,
        until=approval.expires_at.isoformat(),
        summary=f"{approval.get_kind_display()} — {approval.insurer.name}",
        app_ref=approval.pk,
        approved_by_user_id=actor.pk,
    )
    try:
        return custodian().file_approval(request).url
    except (CustodyRefused, CustodyUnavailable):
        raise ExportError(
            _("The custodian cannot take the approval now; nothing was approved. Try again later."),
            code="custodian_unavailable",
        ) from None


def _decide(actor: Any, approval: Approval, state: Approval.State, tag: AuditTag) -> Approval:
    approval = (
        Approval.objects.select_for_update().select_related("requested_by").get(pk=approval.pk)
    )
    if not approvals.is_sealed(approval):
        raise NotPermitted(_("This request is damaged."), code="forged_authorization")
    approvals.check_approver(approvals.POLICIES[Approval.Kind(approval.kind)], approval, actor)
    if approval.current_state == Approval.State.EXPIRED:
        raise ExportError(_("This request has expired."), code="expired")
    if approval.state != Approval.State.REQUESTED:
        raise ExportError(_("This request has already been decided."), code="already_decided")
    now = timezone.now()
    approval.state, approval.decided_by, approval.decided_at = state, actor, now
    fields = ["state", "decided_by", "decided_at"]
    if state == Approval.State.APPROVED:
        # From now on the approval waits its full time for the insurer's download.
        approval.expires_at = now + valid_for()
        fields.append("expires_at")
    approval.save(update_fields=fields)
    approvals.seal(approval)
    if state == Approval.State.APPROVED and approval.kind in CUSTODY_CONFIRMED:
        approval.custody_url = _file_with_custody(actor, approval)
    append_event(
        tag=tag,
        actor=actor,
        subject=approval.requested_by,
        insurer_id=approval.insurer_id,
        details={"approval_id": approval.pk, "kind": approval.kind},
    )
    return approval


@_decision(AuditTag.APPROVAL_APPROVE)
def approve(*, actor: Any, approval: Approval) -> Approval:
    """Approve a request: a second person, under the kind's policy, before it expires."""
    return _decide(actor, approval, Approval.State.APPROVED, AuditTag.APPROVAL_APPROVE)


@_decision(AuditTag.APPROVAL_REFUSE)
def refuse(*, actor: Any, approval: Approval) -> Approval:
    """Refuse a request (by someone who could have approved it)."""
    return _decide(actor, approval, Approval.State.REFUSED, AuditTag.APPROVAL_REFUSE)


def release_export(*, actor: Any, approval: Approval) -> Released:
    """The approved file, produced now for the insurer's staff member `actor` and
    encrypted to the insurer's key the approver saw; once. The custodian fills and
    encrypts it (vault/exports.py): the application relays the ciphertext and never
    holds the file's values."""
    released: Released = producer(approval.kind).produce(actor=actor, approval=approval)
    return released
