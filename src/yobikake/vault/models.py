"""What the vault keeps in the database: insurers' blind-index keys (wrapped) and grants
(the right to reveal one target for one purpose, MAC'd)."""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from yobikake.intake.models import Target
from yobikake.tenancy.models import Insurer


class IndexKey(models.Model):
    """An insurer's blind-index key, only as wrapped by the key service's insurer key."""

    insurer = models.OneToOneField(Insurer, on_delete=models.PROTECT, related_name="+")
    # Wrapped by the key service's `yobikake-insurer-<insurer id>` (vault/datakeys.py).
    wrapped_key = models.TextField()

    def __str__(self) -> str:
        return f"index key of insurer #{self.insurer_id}"


class Purpose(models.TextChoices):
    CALL = "call", _("Call")
    RESEARCH = "research", _("Phone research")
    EXPORT = "export", _("Approved export")


class Grant(models.Model):
    """The right of `holder` to reveal `target` for `purpose` until `expires_at`: a call
    task checked out, a research task, an approved export. Written only by
    `vault.services.issue_grant`, which seals it with a MAC (see vault/grants.py)."""

    holder = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    target = models.ForeignKey(Target, on_delete=models.CASCADE, related_name="+")
    purpose = models.CharField(max_length=10, choices=Purpose.choices)
    issued_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    issued_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    released_at = models.DateTimeField(null=True, blank=True)
    mac = models.CharField(max_length=64, blank=True)

    class Meta:
        indexes = [models.Index(fields=["holder", "target", "purpose"], name="grant_lookup")]

    def __str__(self) -> str:
        return f"grant #{self.pk} ({self.purpose})"
