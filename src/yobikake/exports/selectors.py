"""Reads of approvals and insurers' keys, scoped to what the actor may see."""

from typing import Any

from django.db.models import F, Q, QuerySet
from django.utils import timezone

from yobikake.accounts.permissions import Permission
from yobikake.accounts.selectors import has_permission
from yobikake.audit.services import get_or_record_denial
from yobikake.audit.tags import AuditTag
from yobikake.exports.models import Approval, InsurerKey


def current_key(insurer_id: int) -> InsurerKey | None:
    """The insurer's key in force: the newest registered."""
    return InsurerKey.objects.filter(insurer_id=insurer_id).select_related("registered_by").first()


def _exports() -> QuerySet[Approval]:
    # Early deletions and campaign terms use the same approvals but release nothing:
    # they have their own pages (retention, the campaign's), and their own approvers.
    return Approval.objects.exclude(
        kind__in=[Approval.Kind.LIST_DELETION, Approval.Kind.CAMPAIGN_TERMS]
    )


def _live() -> Q:
    return Q(
        state__in=[Approval.State.REQUESTED, Approval.State.APPROVED],
        expires_at__gt=timezone.now(),
    )


def _about(subject: dict[str, int]) -> Q:
    # A stored subject also holds the people the request bound (approvals.bind_targets).
    return Q(**{f"subject__{key}": value for key, value in subject.items()})


def live_approval(kind: str, insurer_id: int, subject: dict[str, int]) -> Approval | None:
    """A request for the same thing still waiting for its decision or its download."""
    return (
        Approval.objects.filter(_live(), _about(subject), kind=kind, insurer_id=insurer_id)
        .order_by("-pk")
        .first()
    )


def latest_approvals(kind: str, subject: dict[str, int]) -> dict[int, Approval]:
    """The newest request for `subject` per insurer."""
    latest: dict[int, Approval] = {}
    rows = Approval.objects.filter(_about(subject), kind=kind).select_related(
        "requested_by", "decided_by", "used_by"
    )
    for approval in rows.order_by("pk"):
        latest[approval.insurer_id] = approval
    return latest


def waiting_for_decision() -> QuerySet[Approval]:
    """Requests a second person may still approve, oldest first."""
    return (
        _exports()
        .filter(_live(), state=Approval.State.REQUESTED)
        .select_related("insurer", "requested_by", "recipient")
        .order_by("requested_at", "pk")
    )


def decided_recently(limit: int = 50) -> list[Approval]:
    """Requests no longer waiting (decided, used or expired), newest first."""
    decided = _exports().exclude(_live() & Q(state=Approval.State.REQUESTED))
    decided = decided.select_related("insurer", "requested_by", "decided_by", "used_by")
    newest = (F("decided_at").desc(nulls_last=True), F("requested_at").desc(), "-pk")
    return list(decided.order_by(*newest)[:limit])


def own_approvals(actor: Any) -> QuerySet[Approval]:
    """Exports for the actor's own insurer (its staff download them); none for others."""
    insurer_id = actor.organization.insurer_id
    if not insurer_id or not has_permission(actor, Permission.EXPORT_OWN_DOWNLOAD):
        return Approval.objects.none()
    return (
        _exports()
        .filter(insurer_id=insurer_id)
        .select_related("insurer", "recipient", "requested_by", "decided_by", "used_by")
    )


def access_own_approval(actor: Any, approval_id: int) -> Approval:
    """An export of the actor's own insurer, or `Approval.DoesNotExist` alike for
    "missing" and "another insurer's"; the refusal is on the record."""
    return get_or_record_denial(
        own_approvals(actor),
        approval_id,
        actor=actor,
        tag=AuditTag.EXPORT_DENY,
        ref="details:approval_id",
    )


def access_pending_approval(actor: Any, approval_id: int) -> Approval:
    """A request for the approvers' decision (the view checks the permission)."""
    visible = _exports()
    if not has_permission(actor, Permission.EXPORT_ANY_APPROVE):
        visible = visible.none()
    return get_or_record_denial(
        visible.select_related("requested_by", "insurer"),
        approval_id,
        actor=actor,
        tag=AuditTag.EXPORT_DENY,
        ref="details:approval_id",
    )
