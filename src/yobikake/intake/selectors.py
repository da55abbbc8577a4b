"""Reads of target lists, scoped to what the actor may see. No read here decrypts."""

from django.db.models import QuerySet

from yobikake.accounts.models import User
from yobikake.accounts.permissions import Permission
from yobikake.accounts.selectors import has_permission
from yobikake.audit.services import get_or_record_denial
from yobikake.audit.tags import AuditTag
from yobikake.intake.models import TargetList


def visible_lists(actor: User) -> QuerySet[TargetList]:
    """Every list for the federation's roles; one's own insurer's for its staff."""
    lists = TargetList.objects.select_related("insurer")
    if has_permission(actor, Permission.AGGREGATE_ANY_VIEW) or has_permission(
        actor, Permission.RETENTION_ANY_MANAGE
    ):
        return lists
    if has_permission(actor, Permission.PROGRESS_OWN_VIEW) and actor.organization.insurer_id:
        return lists.filter(insurer_id=actor.organization.insurer_id)
    return lists.none()


def access_target_list(actor: User, list_id: int) -> TargetList:
    """The list, or `TargetList.DoesNotExist` alike for "missing" and "not yours"; the
    refusal is on the record."""
    return get_or_record_denial(
        visible_lists(actor), list_id, actor=actor, tag=AuditTag.LIST_DENY, ref="list_id"
    )
