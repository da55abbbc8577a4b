"""Retention: every list is shredded once its contract's retention deadline has passed,
or earlier when its insurer asks and a second person approves; each shredding issues a
deletion certificate (exports/certificates.py).

The schedule (`yobikake retention enforce`, `tasks.enforce_retention_task`) acts as no
person: it goes through `vault.services.shred_expired_list`, which records the event
without an actor and refuses any list whose deadline has not passed. Early deletion is
asked for by the insurer's staff and approved by the security officer (who holds
`retention:any:manage`, the permission shredding takes), from another organisation, by
the `exports` approval model and its policy (exports/approvals.py)."""

import json
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from django.db import transaction
from django.db.models import DateField, Exists, OuterRef, QuerySet, Subquery
from django.utils import timezone
from django.utils.translation import gettext as _

from yobikake.accounts.errors import AccountError, NotPermitted
from yobikake.accounts.permissions import Permission
from yobikake.accounts.selectors import has_permission, require
from yobikake.audit.models import Event
from yobikake.audit.services import append_event, audited, get_or_record_denial
from yobikake.audit.tags import AuditTag
from yobikake.custody.protocol import Heartbeat
from yobikake.exports import approvals, certificates, selectors, services
from yobikake.exports.models import Approval, DeletionCertificate
from yobikake.intake.models import TargetList
from yobikake.tenancy import deadlines
from yobikake.tenancy.models import Contract
from yobikake.vault.heartbeat import beat
from yobikake.vault.services import shred_expired_list, shred_list

TOKYO = ZoneInfo("Asia/Tokyo")


def today() -> date:
    """Deadlines are days in Japan."""
    return timezone.localdate(timezone.now(), timezone=TOKYO)


# Reads


def lists_with_deadlines() -> QuerySet[TargetList]:
    """Every list, with its contract's `retention_until` (None without a contract)."""
    deadline = Contract.objects.filter(
        insurer_id=OuterRef("insurer_id"), fiscal_year=OuterRef("fiscal_year")
    ).values("retention_until")[:1]
    return TargetList.objects.annotate(
        retention_until=Subquery(deadline, output_field=DateField())
    ).select_related("insurer")


def overdue_lists(on: date | None = None) -> QuerySet[TargetList]:
    """Active lists whose deadline — the one on the record (tenancy/deadlines.py) — is
    before `on` (today in Japan): to be shredded."""
    on = on or today()
    effective, _moved = deadlines.deadlines()
    due = [
        pk
        for pk, insurer_id, fiscal_year in TargetList.objects.filter(
            state=TargetList.State.ACTIVE
        ).values_list("pk", "insurer_id", "fiscal_year")
        if (deadline := effective.get((insurer_id, fiscal_year))) is not None and deadline < on
    ]
    return lists_with_deadlines().filter(pk__in=due).order_by("retention_until", "pk")


@transaction.atomic
def flag_moved_deadlines() -> list[int]:
    """Raise the `retention_moved` alert for each contract whose deadline column
    disagrees with its record, once per moved value; the contracts newly flagged."""
    _effective, moved = deadlines.deadlines()
    seen = {
        (d["contract_id"], d["column"])
        for d in (
            json.loads(details)
            for details in Event.objects.filter(tag=AuditTag.RETENTION_MOVED).values_list(
                "details", flat=True
            )
        )
    }
    new = []
    for m in moved:
        if (m.contract_id, deadlines.as_detail(m.column)) in seen:
            continue
        append_event(
            tag=AuditTag.RETENTION_MOVED,
            actor=None,
            insurer_id=m.insurer_id,
            details={
                "contract_id": m.contract_id,
                "fiscal_year": m.fiscal_year,
                "column": deadlines.as_detail(m.column),
                "recorded": deadlines.as_detail(m.recorded),
            },
        )
        new.append(m.contract_id)
    return new


def visible_lists(actor: Any) -> QuerySet[TargetList]:
    """All lists for the security officer; the insurer's own for its staff; else none."""
    if has_permission(actor, Permission.RETENTION_ANY_MANAGE):
        return lists_with_deadlines()
    insurer_id = actor.organization.insurer_id
    if insurer_id and has_permission(actor, Permission.EXPORT_OWN_REQUEST):
        return lists_with_deadlines().filter(insurer_id=insurer_id)
    return TargetList.objects.none()


def visible_certificates(actor: Any) -> QuerySet[DeletionCertificate]:
    if has_permission(actor, Permission.RETENTION_ANY_MANAGE):
        return DeletionCertificate.objects.select_related("insurer")
    insurer_id = actor.organization.insurer_id
    if insurer_id and has_permission(actor, Permission.INSURER_OWN_VIEW):
        return DeletionCertificate.objects.filter(insurer_id=insurer_id).select_related("insurer")
    return DeletionCertificate.objects.none()


def access_certificate(actor: Any, certificate_id: int) -> DeletionCertificate:
    """A certificate of the actor's insurer (any, for the security officer), or
    `DeletionCertificate.DoesNotExist` alike for "missing" and "another insurer's"."""
    return get_or_record_denial(
        visible_certificates(actor),
        certificate_id,
        actor=actor,
        tag=AuditTag.CERTIFICATE_DENY,
        ref="details:certificate_id",
    )


def access_own_list(actor: Any, list_id: int) -> TargetList:
    return get_or_record_denial(
        visible_lists(actor), list_id, actor=actor, tag=AuditTag.LIST_DENY, ref="list_id"
    )


def deletion_requests() -> QuerySet[Approval]:
    return Approval.objects.filter(kind=Approval.Kind.LIST_DELETION).select_related(
        "insurer", "requested_by", "decided_by"
    )


def access_deletion_request(actor: Any, approval_id: int) -> Approval:
    visible = deletion_requests()
    if not has_permission(actor, Permission.RETENTION_ANY_MANAGE):
        visible = visible.none()
    return get_or_record_denial(
        visible, approval_id, actor=actor, tag=AuditTag.EXPORT_DENY, ref="details:approval_id"
    )


# Writes


def _shred_and_certify(
    target_list: TargetList, shred: Any, approval: Approval | None = None
) -> DeletionCertificate:
    shredded = shred(target_list)
    return certificates.issue_certificate(target_list=shredded, approval=approval)


@dataclass
class Enforcement:
    """What one run of the schedule did (or, dry, would do)."""

    dry_run: bool
    shredded: list[DeletionCertificate] = field(default_factory=list)
    due: list[TargetList] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)  # list id → error
    flagged: list[int] = field(default_factory=list)  # lists alerted about for the first time
    moved: list[int] = field(default_factory=list)  # contracts whose deadline column moved

    def as_record(self) -> dict[str, Any]:
        """As the command's --json and the task's result print it."""
        return {
            "dry_run": self.dry_run,
            "due": [
                {
                    "list_id": t.pk,
                    "insurer": t.insurer.number,
                    "fiscal_year": t.fiscal_year,
                    "retention_until": t.retention_until.isoformat(),
                    "rows": t.row_count,
                }
                for t in self.due
            ],
            "shredded": [{"list_id": c.list_id, "certificate_id": c.pk} for c in self.shredded],
            "failed": [{"list_id": pk, "error": error} for pk, error in self.failed.items()],
            "flagged": self.flagged,
            "moved_deadlines": self.moved,
        }


def enforce_retention(*, dry_run: bool = False) -> Enforcement:
    """Shred every active list past its deadline and certify each; one list failing
    does not stop the others. Lists still past their deadline afterwards (all of them,
    in a dry run) are flagged to the security officer, once per list."""
    result = Enforcement(dry_run=dry_run, due=list(overdue_lists()))
    result.moved = flag_moved_deadlines()
    if not dry_run:
        for target_list in result.due:
            try:
                with transaction.atomic():
                    certificate = _shred_and_certify(
                        target_list, lambda t: shred_expired_list(target_list=t)
                    )
            except Exception as exc:
                result.failed[target_list.pk] = f"{type(exc).__name__}: {exc}"
            else:
                result.shredded.append(certificate)
    result.flagged = flag_overdue_lists()
    if not dry_run:
        # The schedule ran: the custodian alerts one that stops (custody/watch.py).
        beat(Heartbeat.RETENTION)
    return result


@transaction.atomic
def flag_overdue_lists() -> list[int]:
    """Raise the `retention_overdue` alert for each list past its deadline that has not
    been flagged before (the event, and with it the alert, is written once per list)."""
    flagged = Event.objects.filter(tag=AuditTag.RETENTION_OVERDUE, list_id=OuterRef("pk"))
    new = []
    for target_list in overdue_lists().exclude(Exists(flagged)):
        append_event(
            tag=AuditTag.RETENTION_OVERDUE,
            actor=None,
            insurer_id=target_list.insurer_id,
            list_id=target_list.pk,
            details={"retention_until": int(target_list.retention_until.strftime("%Y%m%d"))},
        )
        new.append(target_list.pk)
    return new


@audited(AuditTag.APPROVAL_REQUEST)
def request_list_deletion(*, actor: Any, target_list: TargetList) -> Approval:
    """The insurer's staff ask for their list to be shredded before its deadline; the
    security officer decides (`approve_list_deletion`)."""
    kind = Approval.Kind.LIST_DELETION
    require(actor, approvals.POLICIES[kind].request_permission)
    target_list = TargetList.objects.select_for_update().get(pk=target_list.pk)
    if target_list.insurer_id != actor.organization.insurer_id:
        raise NotPermitted(_("Only the list's own insurer may ask."), code="not_yours")
    if target_list.state != TargetList.State.ACTIVE:
        raise AccountError(_("This list has already been shredded."), code="already_shredded")
    subject = {"list_id": target_list.pk}
    if selectors.live_approval(kind, target_list.insurer_id, subject) is not None:
        raise AccountError(
            _("This has already been requested and is still open."), code="already_requested"
        )
    now = timezone.now()
    approval = Approval.objects.create(
        kind=kind,
        insurer_id=target_list.insurer_id,
        subject=subject,
        requested_by=actor,
        requested_at=now,
        expires_at=now + services.valid_for(),
    )
    approvals.seal(approval)
    append_event(
        tag=AuditTag.APPROVAL_REQUEST,
        actor=actor,
        insurer_id=target_list.insurer_id,
        list_id=target_list.pk,
        details={"approval_id": approval.pk, "kind": str(kind)},
    )
    return approval


def approve_list_deletion(*, actor: Any, approval: Approval) -> DeletionCertificate:
    """Approve an early deletion (a second person, under the kind's policy; a refusal is
    audited by `services.approve`), then shred the list and certify it."""
    if approval.kind != Approval.Kind.LIST_DELETION:
        raise AccountError(_("This is not a deletion request."), code="wrong_kind")
    approval = services.approve(actor=actor, approval=approval)
    return _carry_out(actor, approval)


@transaction.atomic
def _carry_out(actor: Any, approval: Approval) -> DeletionCertificate:
    approval = Approval.objects.select_for_update().get(pk=approval.pk)
    if not approvals.is_sealed(approval) or approval.current_state != Approval.State.APPROVED:
        raise NotPermitted(_("This request is damaged."), code="forged_authorization")
    target_list = TargetList.objects.get(
        pk=approval.subject["list_id"], insurer_id=approval.insurer_id
    )
    certificate = _shred_and_certify(
        target_list, lambda t: shred_list(actor=actor, target_list=t), approval
    )
    approval.state, approval.used_by, approval.used_at = (
        Approval.State.USED,
        actor,
        timezone.now(),
    )
    approval.save(update_fields=["state", "used_by", "used_at"])
    approvals.seal(approval)
    return certificate


def refuse_list_deletion(*, actor: Any, approval: Approval) -> Approval:
    """Refuse an early deletion (audited, as is a refusal to refuse)."""
    if approval.kind != Approval.Kind.LIST_DELETION:
        raise AccountError(_("This is not a deletion request."), code="wrong_kind")
    return services.refuse(actor=actor, approval=approval)
