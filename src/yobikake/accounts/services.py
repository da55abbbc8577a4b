"""Every write to accounts: organisations, users, roles, API tokens."""

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import login as auth_login
from django.contrib.auth import logout as auth_logout
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext as _
from django_otp import login as otp_login
from django_otp.plugins.otp_totp.models import TOTPDevice

from yobikake.accounts import authz, sessions
from yobikake.accounts.errors import AccountError, NotPermitted
from yobikake.accounts.models import ApiToken, Organization, RoleAssignment, User, digest_token
from yobikake.accounts.permissions import (
    ROLE_ORGANIZATION_KIND,
    OrganizationKind,
    Permission,
    Role,
    needs_second_person,
    sees_personal_data,
)
from yobikake.accounts.selectors import forget_permissions, has_permission, require
from yobikake.audit.models import Event
from yobikake.audit.services import Detail, append_event, audited
from yobikake.audit.tags import AuditTag
from yobikake.custody.protocol import ApprovalRequest, CustodyRefused, CustodyUnavailable
from yobikake.tenancy.models import Insurer
from yobikake.vault.custodian import custodian

USERNAME = re.compile(r"^[A-Za-z0-9._-]{1,150}$")
API_TOKEN_PREFIX = "ybk_"  # noqa: S105 - a public prefix
LONGEST_CONTRACTOR_ACCOUNT = timedelta(days=366)


@audited(AuditTag.ORGANIZATION_CREATE)
def create_organization(
    *, actor: User, name: str, kind: OrganizationKind, insurer: Insurer | None = None
) -> Organization:
    """Create an organisation (a contractor, say); insurers' come with `register_insurer`."""
    require(actor, Permission.ACCOUNT_USER_MANAGE)
    org = Organization.objects.create(name=name, kind=kind, insurer=insurer)
    append_event(
        tag=AuditTag.ORGANIZATION_CREATE,
        actor=actor,
        insurer_id=insurer.pk if insurer else None,
        details={"organization_id": org.pk, "kind": str(kind)},
    )
    return org


def _check_expiry(organization: Organization, expires_at: datetime | None) -> None:
    if expires_at is not None and expires_at <= timezone.now():
        raise AccountError(_("The expiry date must lie in the future."))
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
    if not USERNAME.match(username):
        # Ids, not names: the audit log records user names, and must hold no one's name.
        raise AccountError(_("Use letters, digits, dots, hyphens and underscores."))
    if User.objects.filter(username=username).exists():
        raise AccountError(_("The user name “%(u)s” is taken.") % {"u": username})
    user = User(username=username, organization=organization, expires_at=expires_at, email=email)
    try:
        validate_password(password, user)
    except ValidationError as exc:
        raise AccountError(" ".join(exc.messages)) from exc
    user.set_password(password)
    try:
        with transaction.atomic():
            user.save()
    except IntegrityError:  # created meanwhile by a concurrent request
        raise AccountError(_("The user name “%(u)s” is taken.") % {"u": username}) from None
    authz.seal_user(user)
    return user


@audited(AuditTag.USER_CREATE)
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
    user = _new_user(
        username=username,
        organization=organization,
        password=password,
        expires_at=expires_at,
        email=email,
    )
    append_event(
        tag=AuditTag.USER_CREATE,
        actor=actor,
        subject=user,
        details={"organization_id": organization.pk, "expires": expires_at is not None},
    )
    return user


@dataclass(frozen=True)
class FirstAccount:
    username: str
    organization: Organization  # not yet saved: made with the account
    password: str
    role: Role
    expires_at: datetime | None = None


@audited(AuditTag.INSTALL_BOOTSTRAP)
def bootstrap_installation(*, accounts: Sequence[FirstAccount]) -> list[User]:
    """Create an installation's first accounts with their roles active at once, and
    the organisations they belong to that are not saved yet (the federation's, the
    maintenance contractor's: no account exists that could create them).

    Refused once any account exists, or ever did: after that, every account goes through
    `create_user` and `request_role`, with a second person where the role needs one.
    (Refusing only while no role is active would reopen it to whoever revoked them all.)
    """
    if User.objects.exists():
        raise AccountError(_("The installation already has accounts; ask the sysadmin."))
    # Accounts deleted in the database must not reopen it: the log keeps the first
    # bootstrap, and a log cut short fails verification (audit/chain.py).
    if Event.objects.filter(tag=AuditTag.INSTALL_BOOTSTRAP, outcome=Event.Outcome.ALLOWED).exists():
        raise AccountError(
            _(
                "The audit log shows this installation was set up before; its accounts "
                "are gone from the database. Tell the security officer."
            ),
            code="bootstrapped_before",
        )
    new_organizations = {
        id(a.organization): a.organization for a in accounts if a.organization.pk is None
    }
    for organization in new_organizations.values():
        try:
            organization.full_clean()
        except ValidationError as exc:
            raise AccountError(" ".join(exc.messages)) from exc
        organization.save()
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
        authz.seal(
            RoleAssignment.objects.create(
                user=user, role=account.role, status=RoleAssignment.Status.ACTIVE
            )
        )
        users.append(user)
    append_event(
        tag=AuditTag.INSTALL_BOOTSTRAP,
        actor=None,
        details={"accounts": len(users), "organizations": len(new_organizations)},
    )
    return users


def _check_role_fits(organization: Organization, role: Role) -> None:
    if ROLE_ORGANIZATION_KIND[role] != organization.kind:
        raise AccountError(
            _("The role “%(role)s” cannot be held by a member of “%(org)s”.")
            % {"role": role.label, "org": organization.name},
            code="role_outside_organization",
        )


def _holds(user: User, roles: set[Role]) -> bool:
    return RoleAssignment.objects.filter(
        user=user,
        role__in=roles,
        status__in=[RoleAssignment.Status.PENDING, RoleAssignment.Status.ACTIVE],
    ).exists()


_PERSONAL_DATA_ROLES = {r for r in Role if sees_personal_data(r)}


def _role_event(tag: AuditTag, actor: User, assignment: RoleAssignment, **details: Detail) -> None:
    append_event(
        tag=tag,
        actor=actor,
        subject=assignment.user,
        details={
            "assignment_id": assignment.pk,
            "role": assignment.role,
            "status": assignment.status,
            "contractor": assignment.user.organization.is_contractor,
            **details,
        },
    )


@audited(AuditTag.ROLE_REQUEST)
def request_role(*, actor: User, user: User, role: Role) -> RoleAssignment:
    """Ask for a role for a user. Roles that see personal data or approve others' work
    wait for a second person (`approve_role`); the others are active at once."""
    require(actor, Permission.ACCOUNT_ROLE_REQUEST)
    _check_role_fits(user.organization, role)
    if sees_personal_data(role) and (user.is_superuser or _holds(user, {Role.SYSADMIN})):
        raise AccountError(
            _("A system administrator or superuser can never hold a role that sees personal data."),
            code="personal_data_role_for_admin",
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
    try:
        with transaction.atomic():
            assignment = RoleAssignment.objects.create(
                user=user, role=role, status=status, requested_by=actor
            )
            authz.seal(assignment)
    except IntegrityError:  # the same request made concurrently
        raise AccountError(_("This user already holds or awaits that role.")) from None
    forget_permissions(user)
    _role_event(AuditTag.ROLE_REQUEST, actor, assignment)
    return assignment


def _lock_genuine(assignment: RoleAssignment) -> RoleAssignment:
    """The assignment's row, locked, sealed by the services, and still about the same
    user, role and requester as the copy the decision was made on. Every change is made
    to (and sealed on) this locked row, never to the caller's copy."""
    locked = RoleAssignment.objects.select_for_update().get(pk=assignment.pk)
    if not authz.is_sealed(locked):
        raise AccountError(
            _("This request was not made through Yobikake and cannot be decided."),
            code="forged_authorization",
        )
    seen = (assignment.user_id, assignment.role, assignment.requested_by_id)
    if seen != (locked.user_id, locked.role, locked.requested_by_id):
        raise AccountError(
            _("This request was not made through Yobikake and cannot be decided."),
            code="forged_authorization",
        )
    return locked


def _decide(
    actor: User, assignment: RoleAssignment, status: RoleAssignment.Status
) -> RoleAssignment:
    require(actor, Permission.ACCOUNT_ROLE_APPROVE)
    # Under a row lock: two approvers deciding at once must not both succeed.
    locked = _lock_genuine(assignment)
    if locked.status != RoleAssignment.Status.PENDING:
        raise AccountError(_("This request has already been decided."))
    if actor.pk in (locked.requested_by_id, locked.user_id):
        raise AccountError(
            _("A second person must decide: not the one who asked, nor the one who gets the role."),
            code="needs_second_person",
        )
    locked.status = status
    locked.decided_by = actor
    locked.decided_at = timezone.now()
    locked.save(update_fields=["status", "decided_by", "decided_at"])
    authz.seal(locked)
    forget_permissions(locked.user)
    return locked


@dataclass(frozen=True)
class Approval:
    assignment: RoleAssignment
    # The account's new password, for the approver to hand to the person (see
    # `approve_role`); None for roles that are granted without a second person.
    handover_password: str | None
    # Where the approver confirms the approval in custody, with their passkey: until
    # then the custodian opens nothing for the role.
    custody_url: str = ""


# The longest a role approved here lasts in custody's registry before it is approved
# again (custody caps it with its own `holder_max_days`).
CUSTODY_ROLE_DAYS = 366


def _file_with_custody(actor: User, assignment: RoleAssignment) -> str:
    """File the approval with the custodian, which keeps the registry of holders; the
    address of its confirmation page. Refused here when custody cannot take it: an
    approval custody never heard of would look done and open nothing."""
    user = assignment.user
    until = timezone.now() + timedelta(days=CUSTODY_ROLE_DAYS)
    if user.expires_at is not None:
        until = min(until, user.expires_at)
    request = ApprovalRequest(
        kind="role",
        holder_user_id=user.pk,
        holder_name=user.username,
        role=assignment.role,
        insurer_id=user.organization.insurer_id,
        until=until.isoformat(),
        summary=f"{Role(assignment.role).label} — {user.organization.name}",
        app_ref=assignment.pk,
        approved_by_user_id=actor.pk,
    )
    try:
        return custodian().file_approval(request).url
    except (CustodyRefused, CustodyUnavailable):
        raise AccountError(
            _("The custodian cannot take the approval now; nothing was approved. Try again later."),
            code="custodian_unavailable",
        ) from None


def _report_revocation(assignment: RoleAssignment) -> None:
    """Tell custody that a role is taken away, before it is taken away here: should
    custody be unreachable, nothing changes anywhere and the approver tries again (the
    other order could leave custody opening for a role the application shows revoked)."""
    try:
        custodian().revoke_holder(assignment.user_id, assignment.role)
    except (CustodyRefused, CustodyUnavailable):
        raise AccountError(
            _("The custodian cannot be told of the revocation now; try again."),
            code="custodian_unavailable",
        ) from None


def generate_initial_password() -> str:
    return secrets.token_urlsafe(12)


def _reset_credentials(user: User) -> str:
    """Take every way in away from whoever had one: a new password (which also ends the
    account's sessions and half-finished logins, see `accounts.views`), no
    authenticators, no API tokens. Returns the new password."""
    # The account row is locked first, as every login step locks it first.
    user = User.objects.select_for_update().get(pk=user.pk)
    password = generate_initial_password()
    user.set_password(password)
    user.save(update_fields=["password"])
    TOTPDevice.objects.filter(user=user).delete()
    ApiToken.objects.filter(user=user, revoked_at__isnull=True).update(revoked_at=timezone.now())
    return password


@audited(AuditTag.ROLE_APPROVE)
def approve_role(*, actor: User, assignment: RoleAssignment) -> Approval:
    """Second-person approval of a pending role request.

    The account's credentials are reset and the new password goes to the approver, who
    hands it over. Otherwise the sysadmin who created the account — knowing its first
    password, able to enrol an authenticator or make a token with it — would now hold a
    role that sees personal data or approves others' work.
    """
    assignment = _decide(actor, assignment, RoleAssignment.Status.ACTIVE)
    password = _reset_credentials(assignment.user)
    url = _file_with_custody(actor, assignment)
    _role_event(AuditTag.ROLE_APPROVE, actor, assignment, credentials_reset=True)
    return Approval(assignment, password, url)


@audited(AuditTag.ROLE_REFUSE)
def refuse_role(*, actor: User, assignment: RoleAssignment) -> RoleAssignment:
    assignment = _decide(actor, assignment, RoleAssignment.Status.REFUSED)
    _role_event(AuditTag.ROLE_REFUSE, actor, assignment)
    return assignment


@audited(AuditTag.ROLE_REVOKE)
def revoke_role(*, actor: User, assignment: RoleAssignment) -> RoleAssignment:
    """Take a role away. A role granted by a second person is taken away by one too
    (an approver), so a sysadmin cannot strip the federation of its approvers."""
    needed = (
        Permission.ACCOUNT_ROLE_APPROVE
        if needs_second_person(Role(assignment.role))
        else Permission.ACCOUNT_ROLE_REQUEST
    )
    if not (
        has_permission(actor, needed) or has_permission(actor, Permission.ACCOUNT_ROLE_APPROVE)
    ):
        raise NotPermitted(_("You may not revoke this role."))
    if actor.pk == assignment.user_id:
        raise AccountError(_("Someone else must take your own role away."), code="own_role")
    assignment = _lock_genuine(assignment)
    if assignment.status not in (RoleAssignment.Status.PENDING, RoleAssignment.Status.ACTIVE):
        raise AccountError(_("This role is not held."))
    _report_revocation(assignment)
    assignment.status = RoleAssignment.Status.REVOKED
    assignment.revoked_by = actor
    assignment.revoked_at = timezone.now()
    assignment.save(update_fields=["status", "revoked_by", "revoked_at"])
    authz.seal(assignment)
    forget_permissions(assignment.user)
    _role_event(AuditTag.ROLE_REVOKE, actor, assignment)
    return assignment


@audited(AuditTag.API_TOKEN_CREATE)
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
        # Bound to the password: a credential reset ends the token even if it was
        # being created while the reset ran.
        password_binding=actor.get_session_auth_hash(),
    )
    append_event(
        tag=AuditTag.API_TOKEN_CREATE,
        actor=actor,
        details={"token_id": token.pk, "prefix": token.prefix, "days": days},
    )
    return token, plaintext


@audited(AuditTag.API_TOKEN_REVOKE)
def revoke_api_token(*, actor: User, token: ApiToken) -> None:
    if token.user_id != actor.pk:
        raise ApiToken.DoesNotExist
    token.revoked_at = timezone.now()
    token.save(update_fields=["revoked_at"])
    append_event(tag=AuditTag.API_TOKEN_REVOKE, actor=actor, details={"token_id": token.pk})


# Logging in and out. These take the request because logging in is about the session.

PASSWORD_BACKEND = "yobikake.accounts.backends.ExpiringAccountBackend"  # noqa: S105 - a path


@audited(AuditTag.MFA_ENROLL)
def enroll_authenticator(*, actor: User, device: TOTPDevice) -> None:
    """Confirm the authenticator the person just proved they hold; drop any others
    that were started and never finished."""
    device.confirmed = True
    device.save(update_fields=["confirmed"])
    TOTPDevice.objects.filter(user=actor, confirmed=False).delete()
    append_event(tag=AuditTag.MFA_ENROLL, actor=actor, details={"device_id": device.pk})


@transaction.atomic
def complete_login(*, request: HttpRequest, user: User, device: TOTPDevice) -> None:
    """Log in after both the password and the TOTP step; the login's event names the
    session it made, and the custodian is told of it (accounts/sessions.py)."""
    auth_login(request, user, backend=PASSWORD_BACKEND)
    otp_login(request, device)
    sessions.record_login(session=request.session, user=user, details={"device_id": device.pk})


@transaction.atomic
def record_login_failure(*, user: User | None, stage: str, locked: bool) -> None:
    """A failed password or TOTP step (`stage`), or one refused because the account is
    locked. The name typed is never recorded, only the account it names, if any."""
    append_event(
        tag=AuditTag.LOGIN_LOCKOUT if locked else AuditTag.LOGIN_FAILURE,
        actor=None,
        subject=user,
        denied="locked" if locked else f"bad_{stage}",
    )


@transaction.atomic
def log_out(*, request: HttpRequest) -> None:
    append_event(tag=AuditTag.LOGOUT, actor=request.user)
    if request.user.is_authenticated:
        sessions.record_logout(session=request.session, user=request.user)
    auth_logout(request)


@transaction.atomic
def end_unbound_session(*, request: HttpRequest, user: User) -> None:
    """A session without the login that should have made it (written into the session
    store, not logged in): end it, on the record. The custodian has alerted already
    (accounts/sessions.py)."""
    append_event(tag=AuditTag.SESSION_UNBOUND, actor=None, subject=user, denied="session_unbound")
    auth_logout(request)


@transaction.atomic
def end_expired_session(*, request: HttpRequest, user: User | None) -> None:
    """An account expired (or was disabled) while logged in: end its session, on the
    record."""
    reason = "account_disabled" if user is not None and not user.is_active else "account_expired"
    append_event(tag=AuditTag.ACCOUNT_EXPIRED, actor=None, subject=user, denied=reason)
    auth_logout(request)
