"""Exports: the only bulk road from the vault, for one insurer at a time, and only after
a second person approved it; the file is encrypted to the insurer's own age key.

Both tables carry a MAC under the authorization key (exports/approvals.py): a database
administrator who approves a request, revives a used approval or swaps an insurer's
public key for their own in the database gets nothing out."""

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from yobikake.tenancy.models import Insurer


class InsurerKey(models.Model):
    """An insurer's age public key (`age1…`), registered by its own staff: exports for
    the insurer are encrypted to it, and only the holder of the private key — who never
    gives it to anyone — can open them. The newest registration is the one in force."""

    insurer = models.ForeignKey(Insurer, on_delete=models.PROTECT, related_name="+")
    public_key = models.CharField(_("age public key"), max_length=100)
    registered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    registered_at = models.DateTimeField()
    mac = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["insurer", "-registered_at", "-pk"]

    def __str__(self) -> str:
        return f"age key #{self.pk} of insurer #{self.insurer_id}"

    @property
    def short(self) -> str:
        """The key as a person compares it by eye: its start and end."""
        return f"{self.public_key[:12]}…{self.public_key[-6:]}"


class Approval(models.Model):
    """A request to release personal data of one insurer's residents to that insurer,
    and a second person's decision on it. Valid until `expires_at` (a request waits
    that long for its decision; an approval, that long for its download), used once."""

    class Kind(models.TextChoices):
        NOTIFICATION_LIST = "notification_list", _("Affected persons for notification letters")

    class State(models.TextChoices):
        REQUESTED = "requested", _("Awaiting approval")
        APPROVED = "approved", _("Approved")
        REFUSED = "refused", _("Refused")
        EXPIRED = "expired", _("Expired")
        USED = "used", _("Downloaded")

    kind = models.CharField(max_length=30, choices=Kind.choices)
    insurer = models.ForeignKey(Insurer, on_delete=models.PROTECT, related_name="+")
    # What is to be released, in the kind's own terms: ids only ({"incident_id": 7}).
    subject = models.JSONField(default=dict)
    # The insurer's key when the request was made: what the approver approves sending to.
    recipient = models.ForeignKey(InsurerKey, on_delete=models.PROTECT, related_name="+")
    state = models.CharField(max_length=10, choices=State.choices, default=State.REQUESTED)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    requested_at = models.DateTimeField()
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField()
    used_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    used_at = models.DateTimeField(null=True, blank=True)
    mac = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-requested_at", "-pk"]
        indexes = [models.Index(fields=["kind", "insurer", "state"], name="approval_lookup")]

    def __str__(self) -> str:
        return f"approval #{self.pk} ({self.kind}, {self.state})"

    @property
    def current_state(self) -> str:
        """The state as of now: a request or approval past its time has expired, whether
        or not anything has written that down yet."""
        live = self.state in (self.State.REQUESTED, self.State.APPROVED)
        if live and self.expires_at <= timezone.now():
            return self.State.EXPIRED
        return self.state

    def get_current_state_display(self) -> str:
        return str(self.State(self.current_state).label)
