"""Every write to accounts: organisations, users, roles, API tokens."""

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django_otp.plugins.otp_totp.models import TOTPDevice

from yobikake.accounts.models import ApiToken, Organization, RoleAssignment, User, digest_token
from yobikake.accounts.permissions import (
    ROLE_ORGANIZATION_KIND,
    OrganizationKind,
    Permission,
    Role,
    needs_second_person,
    sees_personal_data,
)
from yobikake.accounts.selectors import forget_permissions, has_permission
from yobikake.tenancy.models import Insurer

API_TOKEN_PREFIX = "ybk_"  # noqa: S105 - a public prefix
LONGEST_CONTRACTOR_ACCOUNT = timedelta(days=366)


class AccountError(Exception):
    """A refusal the user can understand and act on; the message is shown as it is."""


class NotPermitted(AccountError):
    pass


def require(actor: User, permission: Permission) -> None:
    if not has_permission(actor, permission):
        raise NotPermitted(_("You do not have the permission “%(p)s”.") % {"p": permission})


@transaction.atomic
def create_organization(
    *, actor: User | None, name: str, kind: OrganizationKind, insurer: Insurer | None = None
) -> Organization:
    """Create an organisation. `actor=None` only at installation (see `bootstrap_user`)."""
    if actor is not None:
        require(actor, Permission.ACCOUNT_USER_MANAGE)
    return Organization.objects.create(name=name, kind=kind, insurer=insurer)


def _check_expiry(organization: Organization, expires_at: datetime | None) -> None:
    if not organization.is_contractor:
        return
    if expires_at is None:
        raise AccountError(_("A contractor's account needs an expiry date."))
    if expires_at > timezone.now() + LONGEST_CONTRACTOR_ACCOUNT:
        raise AccountError(_("A contractor's account may last one year at most."))


def _new_user(
    *,
    username: str,
    organization: Organization,
    password: str,
    expires_at: datetime | None,
    email: str,
) -> User:
    _check_expiry(organization, expires_at)
    if User.objects.filter(username=username).exists():
        raise AccountError(_("The user name “%(u)s” is taken.") % {"u": username})
    user = User(username=username, organization=organization, expires_at=expires_at, email=email)
    try:
        validate_password(password, user)
    except ValidationError as exc:
        raise AccountError(" ".join(exc.messages)) from exc
    user.set_password(password)
    user.save()
    return user


@transaction.atomic
def create_user(
    *,
    actor: User,
    username: str,
    organization: Organization,
    password: str,
    expires_at: datetime | None = None,
    email: str = "",
) -> User:
    """Create an account with no roles; roles are asked for with `request_role`."""
    require(actor, Permission.ACCOUNT_USER_MANAGE)
    return _new_user(
        username=username,
        organization=organization,
        password=password,
        expires_at=expires_at,
        email=email,
    )


@dataclass(frozen=True)
class FirstAccount:
    username: str
    organization: Organization
    password: str
    role: Role
    expires_at: datetime | None = None


@transaction.atomic
def bootstrap_installation(*, accounts: Sequence[FirstAccount]) -> list[User]:
    """Create an installation's first accounts with their roles active at once.

    Refused once any role is active: after that, every account goes through
    `create_user` and `request_role`, with a second person where the role needs one.
    """
    if RoleAssignment.objects.filter(status=RoleAssignment.Status.ACTIVE).exists():
        raise AccountError(_("The installation already has accounts; ask the sysadmin."))
    users = []
    for account in accounts:
        _check_role_fits(account.organization, account.role)
        user = _new_user(
            username=account.username,
            organization=account.organization,
            password=account.password,
            expires_at=account.expires_at,
            email="",
        )
        RoleAssignment.objects.create(
            user=user, role=account.role, status=RoleAssignment.Status.ACTIVE
        )
        users.append(user)
    return users


def _check_role_fits(organization: Organization, role: Role) -> None:
    if ROLE_ORGANIZATION_KIND[role] != organization.kind:
        raise AccountError(
            _("The role “%(role)s” cannot be held by a member of “%(org)s”.")
            % {"role": role.label, "org": organization.name}
        )


def _holds(user: User, roles: set[Role]) -> bool:
    return RoleAssignment.objects.filter(
        user=user,
        role__in=roles,
        status__in=[RoleAssignment.Status.PENDING, RoleAssignment.Status.ACTIVE],
    ).exists()


_PERSONAL_DATA_ROLES = {r for r in Role if sees_personal_data(r)}


@transaction.atomic
def request_role(*, actor: User, user: User, role: Role) -> RoleAssignment:
    """Ask for a role for a user. Roles that see personal data or approve others' work
    wait for a second person (`approve_role`); the others are active at once."""
    require(actor, Permission.ACCOUNT_ROLE_REQUEST)
    _check_role_fits(user.organization, role)
    if sees_personal_data(role) and (user.is_superuser or _holds(user, {Role.SYSADMIN})):
        raise AccountError(
            _("A system administrator or superuser can never hold a role that sees personal data.")
        )
    if role == Role.SYSADMIN and _holds(user, _PERSONAL_DATA_ROLES):
        raise AccountError(
            _("A user who sees personal data cannot also be a system administrator.")
        )
    if _holds(user, {role}):
        raise AccountError(_("This user already holds or awaits that role."))
    status = (
        RoleAssignment.Status.PENDING if needs_second_person(role) else RoleAssignment.Status.ACTIVE
    )
    assignment = RoleAssignment.objects.create(
        user=user, role=role, status=status, requested_by=actor
    )
    forget_permissions(user)
    return assignment


def _decide(actor: User, assignment: RoleAssignment, status: RoleAssignment.Status) -> None:
    require(actor, Permission.ACCOUNT_ROLE_APPROVE)
    if assignment.status != RoleAssignment.Status.PENDING:
        raise AccountError(_("This request has already been decided."))
    if actor.pk in (assignment.requested_by_id, assignment.user_id):
        raise AccountError(
            _("A second person must decide: not the one who asked, nor the one who gets the role.")
        )
    assignment.status = status
    assignment.decided_by = actor
    assignment.decided_at = timezone.now()
    assignment.save(update_fields=["status", "decided_by", "decided_at"])
    forget_permissions(assignment.user)


@dataclass(frozen=True)
class Approval:
    assignment: RoleAssignment
    # Set when the role sees personal data: the account's new password, for the approver
    # to hand to the person (see `approve_role`).
    handover_password: str | None


def generate_initial_password() -> str:
    return secrets.token_urlsafe(12)


@transaction.atomic
def approve_role(*, actor: User, assignment: RoleAssignment) -> Approval:
    """Second-person approval of a pending role request.

    For a role that sees personal data, the account's password is replaced and its
    authenticators removed, and the new password goes to the approver. Otherwise the
    sysadmin who created the account, knowing its first password, could have enrolled an
    authenticator of their own and would now hold the role.
    """
    _decide(actor, assignment, RoleAssignment.Status.ACTIVE)
    if not sees_personal_data(Role(assignment.role)):
        return Approval(assignment, None)
    user = assignment.user
    password = generate_initial_password()
    user.set_password(password)
    user.save(update_fields=["password"])
    TOTPDevice.objects.filter(user=user).delete()
    return Approval(assignment, password)


@transaction.atomic
def refuse_role(*, actor: User, assignment: RoleAssignment) -> RoleAssignment:
    _decide(actor, assignment, RoleAssignment.Status.REFUSED)
    return assignment


@transaction.atomic
def revoke_role(*, actor: User, assignment: RoleAssignment) -> RoleAssignment:
    """Take a role away; the requester's side or an approver may do it."""
    if not (
        has_permission(actor, Permission.ACCOUNT_ROLE_REQUEST)
        or has_permission(actor, Permission.ACCOUNT_ROLE_APPROVE)
    ):
        raise NotPermitted(_("You may not revoke roles."))
    if assignment.status not in (RoleAssignment.Status.PENDING, RoleAssignment.Status.ACTIVE):
        raise AccountError(_("This role is not held."))
    assignment.status = RoleAssignment.Status.REVOKED
    assignment.decided_by = actor if actor.pk != assignment.requested_by_id else None
    assignment.decided_at = timezone.now()
    assignment.save(update_fields=["status", "decided_by", "decided_at"])
    forget_permissions(assignment.user)
    return assignment


@transaction.atomic
def create_api_token(*, actor: User, name: str, days: int) -> tuple[ApiToken, str]:
    """A personal token for the API, bound to `actor`. Returns the row and the plaintext,
    which is never stored and cannot be shown again."""
    require(actor, Permission.API_TOKEN_CREATE)
    name = name.strip()
    if not name:
        raise AccountError(_("Give the token a name."))
    longest = settings.YOBIKAKE_API_TOKEN_MAX_DAYS
    if not 1 <= days <= longest:
        raise AccountError(_("A token may live 1 to %(n)d days.") % {"n": longest})
    expires_at = timezone.now() + timedelta(days=days)
    if actor.expires_at is not None:
        expires_at = min(expires_at, actor.expires_at)
    plaintext = API_TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=actor,
        name=name,
        prefix=plaintext[: len(API_TOKEN_PREFIX) + 6],
        digest=digest_token(plaintext),
        expires_at=expires_at,
    )
    return token, plaintext


@transaction.atomic
def revoke_api_token(*, actor: User, token: ApiToken) -> None:
    if token.user_id != actor.pk:
        raise ApiToken.DoesNotExist
    token.revoked_at = timezone.now()
    token.save(update_fields=["revoked_at"])
