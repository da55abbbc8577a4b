"""Reads of target lists, scoped to what the actor may see. No read here decrypts."""

from django.db.models import QuerySet

from yobikake.accounts.models import User
from yobikake.accounts.permissions import Permission
from yobikake.accounts.selectors import has_permission
from yobikake.audit.services import get_or_record_denial
from yobikake.audit.tags import AuditTag
from yobikake.intake.models import ListImport, TargetList


def _scoped[Rows: (TargetList, ListImport)](
    actor: User, rows: QuerySet[Rows], own: Permission
) -> QuerySet[Rows]:
    """All rows for the federation's roles; one's own insurer's for its staff (with
    `own`); none for anyone else."""
    if has_permission(actor, Permission.AGGREGATE_ANY_VIEW) or has_permission(
        actor, Permission.RETENTION_ANY_MANAGE
    ):
        return rows
    if has_permission(actor, own) and actor.organization.insurer_id:
        return rows.filter(insurer_id=actor.organization.insurer_id)
    return rows.none()


def visible_lists(actor: User) -> QuerySet[TargetList]:
    return _scoped(
        actor, TargetList.objects.select_related("insurer"), Permission.PROGRESS_OWN_VIEW
    )


def access_target_list(actor: User, list_id: int) -> TargetList:
    """The list, or `TargetList.DoesNotExist` alike for "missing" and "not yours"; the
    refusal is on the record."""
    return get_or_record_denial(
        visible_lists(actor), list_id, actor=actor, tag=AuditTag.LIST_DENY, ref="list_id"
    )


def visible_imports(actor: User) -> QuerySet[ListImport]:
    """The files sent: one's own insurer's for the staff who send them."""
    imports = ListImport.objects.select_related("insurer", "target_list")
    return _scoped(actor, imports, Permission.LIST_OWN_IMPORT)


def access_import(actor: User, import_id: int) -> ListImport:
    return get_or_record_denial(
        visible_imports(actor),
        import_id,
        actor=actor,
        tag=AuditTag.LIST_DENY,
        ref="details:import_id",
    )
