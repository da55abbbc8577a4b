import hashlib

from django.contrib.auth.models import AbstractUser, UserManager
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from django.utils.crypto import constant_time_compare
from django.utils.translation import gettext_lazy as _

from yobikake.accounts.permissions import CONTRACTOR_KINDS, OrganizationKind, Role
from yobikake.tenancy.models import Insurer


class Organization(models.Model):
    """The federation, an insurer, or a contractor. Every user belongs to exactly one."""

    Kind = OrganizationKind

    name = models.CharField(_("name"), max_length=100, unique=True)
    kind = models.CharField(_("kind"), max_length=20, choices=OrganizationKind.choices)
    insurer = models.OneToOneField(
        Insurer, null=True, blank=True, on_delete=models.PROTECT, related_name="organization"
    )
    # Demo organisations are the only ones whose users' TOTP codes the CLI will print.
    is_demo = models.BooleanField(default=False)

    class Meta:
        ordering = ["kind", "name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind=OrganizationKind.INSURER, insurer__isnull=False)
                | (~Q(kind=OrganizationKind.INSURER) & Q(insurer__isnull=True)),
                name="organization_insurer_iff_insurer_kind",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_contractor(self) -> bool:
        return self.kind in CONTRACTOR_KINDS


class User(AbstractUser):
    organization = models.ForeignKey(
        Organization, on_delete=models.PROTECT, related_name="users", verbose_name=_("organization")
    )
    # Contractor accounts must expire (checked by the service that creates them).
    expires_at = models.DateTimeField(_("account expires"), null=True, blank=True)
    # MAC over organisation, active, expiry and superuser flags (accounts/authz.py).
    authz_mac = models.CharField(max_length=64, blank=True)

    objects = UserManager()
    REQUIRED_FIELDS = ["organization"]

    def __str__(self) -> str:
        return self.username

    def is_expired(self, now: "timezone.datetime | None" = None) -> bool:
        return self.expires_at is not None and self.expires_at <= (now or timezone.now())

    # Django's model permissions are not used: `accounts.permissions` is the only
    # authority, and `is_superuser` must not unlock anything through Django's route.
    def has_perm(self, perm: str, obj: object = None) -> bool:
        return False

    def has_module_perms(self, app_label: str) -> bool:
        return False


class RoleAssignment(models.Model):
    """A role held (or asked for) by a user. Roles that see personal data or approve
    others' actions become active only when a second person approves them."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Awaiting approval")
        ACTIVE = "active", _("Active")
        REFUSED = "refused", _("Refused")
        REVOKED = "revoked", _("Revoked")

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="role_assignments")
    role = models.CharField(_("role"), max_length=30, choices=Role.choices)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices)
    requested_by = models.ForeignKey(User, null=True, on_delete=models.PROTECT, related_name="+")
    requested_at = models.DateTimeField(default=timezone.now)
    decided_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)
    mac = models.CharField(max_length=64, blank=True)  # see accounts/authz.py

    class Meta:
        ordering = ["-requested_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "role"],
                condition=Q(status__in=["pending", "active"]),
                name="one_live_assignment_per_user_and_role",
            ),
            models.CheckConstraint(
                condition=~Q(decided_by=F("requested_by")), name="approver_is_not_requester"
            ),
            models.CheckConstraint(
                condition=~Q(decided_by=F("user")), name="approver_is_not_grantee"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} {self.role} ({self.status})"


def digest_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class ApiToken(models.Model):
    """A personal API token. Only its SHA-256 is stored (the token has 256 bits of
    entropy, so a fast hash is enough); the plaintext is shown once, at creation."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(_("name"), max_length=100)
    prefix = models.CharField(max_length=12)
    digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(_("expires"))
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    password_binding = models.CharField(max_length=128)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.name})"

    def is_usable(self, now: "timezone.datetime | None" = None) -> bool:
        return (
            self.revoked_at is None
            and self.expires_at > (now or timezone.now())
            and constant_time_compare(self.password_binding, self.user.get_session_auth_hash())
        )
