"""Reads of target lists, scoped to what the actor may see. No read here decrypts."""

from django.db.models import QuerySet

from yobikake.accounts.models import User
from yobikake.accounts.permissions import Permission
from yobikake.accounts.selectors import has_permission
from yobikake.audit.services import get_or_record_denial
from yobikake.audit.tags import AuditTag
from yobikake.intake.models import ListImport, TargetList


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


def visible_imports(actor: User) -> QuerySet[ListImport]:
    """The files an insurer's staff sent (their own insurer's); all for the federation."""
    imports = ListImport.objects.select_related("insurer", "target_list")
    if has_permission(actor, Permission.AGGREGATE_ANY_VIEW) or has_permission(
        actor, Permission.RETENTION_ANY_MANAGE
    ):
        return imports
    if has_permission(actor, Permission.LIST_OWN_IMPORT) and actor.organization.insurer_id:
        return imports.filter(insurer_id=actor.organization.insurer_id)
    return imports.none()


def access_import(actor: User, import_id: int) -> ListImport:
    return get_or_record_denial(
        visible_imports(actor),
        import_id,
        actor=actor,
        tag=AuditTag.LIST_DENY,
        ref="details:import_id",
    )
