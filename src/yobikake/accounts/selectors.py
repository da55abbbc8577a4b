"""Reads about users and what they may do."""

from django.db import connection
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from yobikake.accounts.errors import NotPermitted
from yobikake.accounts.models import RoleAssignment, User
from yobikake.accounts.permissions import (
    ROLE_ORGANIZATION_KIND,
    ROLE_PERMISSIONS,
    Permission,
    Role,
)

_CACHE_ATTR = "_yobikake_permissions"


_ROLES_ATTR = "_yobikake_roles"


def active_roles(user: User) -> frozenset[Role]:
    """The roles a user holds now; a role held in the wrong kind of organisation counts
    for nothing, whatever the row says. Cached on the user object (one request's worth)
    until `forget_permissions`."""
    if not user.is_authenticated or not user.is_active or user.is_expired():
        return frozenset()
    cached: frozenset[Role] | None = getattr(user, _ROLES_ATTR, None)
    if cached is not None:
        return cached
    active = list(
        RoleAssignment.objects.raw(_ACTIVE, [user.pk, RoleAssignment.Status.ACTIVE.value])
    )
    if active and not _standing_genuine(user):
        active = []
    revoked = _revoked_assignment_ids(user) if active else set()
    held = [a for a in active if _genuine(a, revoked)]
    roles = frozenset(
        Role(a.role) for a in held if ROLE_ORGANIZATION_KIND[Role(a.role)] == user.organization.kind
    )
    setattr(user, _ROLES_ATTR, roles)
    return roles


# Written out: it runs in every request, where building it with the ORM cost more than
# running it (bench/calling.py). In the model's order, newest request first.
_ACTIVE = (
    f"SELECT * FROM {RoleAssignment._meta.db_table} "  # noqa: S608 - fixed names
    "WHERE user_id = %s AND status = %s ORDER BY requested_at DESC"
)


def _report_forgery(user: User, reason: str, **details: int | str) -> None:
    from yobikake.audit.services import record_denial
    from yobikake.audit.tags import AuditTag

    record_denial(
        tag=AuditTag.AUTHZ_FORGED, actor=None, subject=user, reason=reason, details=details
    )


def _standing_genuine(user: User) -> bool:
    """The user's organisation, active flag, expiry and superuser flag as the services
    left them (see accounts/authz.py)."""
    from yobikake.accounts import authz

    if authz.user_is_sealed(user):
        return True
    _report_forgery(user, "user_bad_mac")
    return False


def _revoked_assignment_ids(user: User) -> set[int]:
    """Assignments of this user the audit log says were revoked."""
    import json

    from yobikake.audit.models import Event
    from yobikake.audit.tags import AuditTag

    # Written out: it runs in every request, where building it with the ORM cost more
    # than running it (bench/calling.py).
    with connection.cursor() as cursor:
        cursor.execute(
            _REVOKED % Event._meta.db_table,
            [AuditTag.ROLE_REVOKE.value, Event.Outcome.ALLOWED.value, user.pk],
        )
        details = [row[0] for row in cursor.fetchall()]
    return {json.loads(d)["assignment_id"] for d in details if d}


_REVOKED = "SELECT details FROM %s WHERE tag = %%s AND outcome = %%s AND subject_user_id = %%s"


def _genuine(assignment: RoleAssignment, revoked: set[int]) -> bool:
    """An assignment written by the services (see accounts/authz.py) and never revoked.
    One written straight into the database, or revived from an earlier state, grants
    nothing and is reported."""
    from yobikake.accounts import authz  # the key service is consulted only here

    if assignment.pk in revoked:
        _report_forgery(assignment.user, "revoked_role_revived", assignment_id=assignment.pk)
        return False
    if authz.is_sealed(assignment):
        return True
    _report_forgery(assignment.user, "bad_mac", assignment_id=assignment.pk, role=assignment.role)
    return False


def user_permissions(user: User) -> frozenset[Permission]:
    cached: frozenset[Permission] | None = getattr(user, _CACHE_ATTR, None)
    if cached is not None:
        return cached
    permissions = frozenset(p for role in active_roles(user) for p in ROLE_PERMISSIONS[role])
    if user.is_authenticated and user.is_superuser:
        # The superuser flag never reaches beyond what a sysadmin may do, whatever roles
        # the account holds; on its own it grants nothing.
        permissions &= ROLE_PERMISSIONS[Role.SYSADMIN]
    setattr(user, _CACHE_ATTR, permissions)
    return permissions


def forget_permissions(user: User) -> None:
    """Drop the per-request caches after the user's roles changed."""
    for attr in (_CACHE_ATTR, _ROLES_ATTR):
        if hasattr(user, attr):
            delattr(user, attr)


def has_permission(user: User, permission: Permission) -> bool:
    return permission in user_permissions(user)


def require(actor: User, permission: Permission) -> None:
    if not has_permission(actor, permission):
        raise NotPermitted(
            _("You do not have the permission “%(p)s”.") % {"p": permission},
            code=f"missing:{permission}",
        )


def pending_role_requests() -> QuerySet[RoleAssignment]:
    return RoleAssignment.objects.filter(status=RoleAssignment.Status.PENDING).select_related(
        "user", "user__organization", "requested_by"
    )


def genuine_pending_requests() -> list[RoleAssignment]:
    """Pending requests made through the services; forged ones are left out and reported."""
    return [a for a in pending_role_requests() if _genuine(a, set())]


def live_api_tokens(user: User) -> QuerySet:
    return user.api_tokens.filter(revoked_at__isnull=True, expires_at__gt=timezone.now())
