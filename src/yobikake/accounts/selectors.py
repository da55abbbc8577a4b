"""Reads about users and what they may do."""

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
    held = [
        a
        for a in RoleAssignment.objects.filter(user=user, status=RoleAssignment.Status.ACTIVE)
        if _genuine(a)
    ]
    roles = frozenset(
        Role(a.role) for a in held if ROLE_ORGANIZATION_KIND[Role(a.role)] == user.organization.kind
    )
    setattr(user, _ROLES_ATTR, roles)
    return roles


def _genuine(assignment: RoleAssignment) -> bool:
    """An assignment written by the services (see accounts/authz.py). One written
    straight into the database grants nothing, and is reported."""
    from yobikake.accounts import authz  # the key service is consulted only here
    from yobikake.audit.services import record_denial
    from yobikake.audit.tags import AuditTag

    if authz.is_sealed(assignment):
        return True
    record_denial(
        tag=AuditTag.AUTHZ_FORGED,
        actor=None,
        subject=assignment.user,
        reason="bad_mac",
        details={"assignment_id": assignment.pk, "role": assignment.role},
    )
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
    return [a for a in pending_role_requests() if _genuine(a)]


def live_api_tokens(user: User) -> QuerySet:
    return user.api_tokens.filter(revoked_at__isnull=True, expires_at__gt=timezone.now())
