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
        RESULTS = "results", _("Results of a campaign")
        # Not an export: the insurer asks for its list to be shredded before its deadline
        # (exports/retention.py). Nothing is released; the approval only authorises it.
        LIST_DELETION = "list_deletion", _("Early deletion of a list")
        # Not an export either: the insurer lets a campaign of its own call outside the
        # contract's hours or hold out fewer people than the floor (calling/terms.py).
        CAMPAIGN_TERMS = "campaign_terms", _("Campaign terms beyond the contract")

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
    # The insurer's key when the request was made: what the approver approves sending to
    # (none for a kind that releases nothing, such as an early deletion).
    recipient = models.ForeignKey(
        InsurerKey, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
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

    # Set by the approval itself: where the approver confirms it in custody (not stored).
    custody_url = ""

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


class DeletionCertificate(models.Model):
    """データ消去証明書: the proof, for the insurer, that one of its lists was shredded.

    It names what was destroyed (the list, the SHA-256 of the file it came from, its row
    count, the key service key and version) and where the log says so (the LIST_SHRED
    event and a signed checkpoint covering it), and is itself signed by the key service's
    checkpoint key (exports/certificates.py), so the values cannot be edited unseen."""

    insurer = models.ForeignKey(Insurer, on_delete=models.PROTECT, related_name="+")
    insurer_number = models.CharField(max_length=6)
    fiscal_year = models.PositiveSmallIntegerField()
    list_id = models.PositiveIntegerField(unique=True)
    source_sha256 = models.CharField(max_length=64, blank=True)
    row_count = models.PositiveIntegerField()
    key_name = models.CharField(max_length=100)
    key_version = models.PositiveIntegerField()
    # Why: "retention" (the deadline passed) or "early" (the insurer asked, a second
    # person approved: `approval`).
    reason = models.CharField(max_length=10)
    approval = models.ForeignKey(
        "Approval", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    shredded_at = models.DateTimeField()
    event_seq = models.BigIntegerField()
    event_hash = models.CharField(max_length=64)
    checkpoint_seq = models.BigIntegerField()
    checkpoint_hash = models.CharField(max_length=64)
    checkpoint_at = models.DateTimeField()
    checkpoint_signature = models.CharField(max_length=128)
    issued_at = models.DateTimeField()
    key_id = models.CharField(max_length=100)
    signature = models.CharField(max_length=128)  # hex Ed25519 over certificates.message

    class Meta:
        ordering = ["-issued_at", "-pk"]

    def __str__(self) -> str:
        return f"deletion certificate #{self.pk} (list #{self.list_id})"


class WatermarkRow(models.Model):
    """One of an export's own canary rows (its watermark): a synthetic person mixed into
    the file when it was produced, stored only as its blind indexes under the insurer's
    index key, like a target's — never in plaintext. Leak scoping looks the indexes up,
    so a leaked copy of the file names the export (the approval) it came from."""

    approval = models.ForeignKey(Approval, on_delete=models.PROTECT, related_name="watermark")
    insurer_id = models.BigIntegerField()
    idx_phone = models.BinaryField(max_length=16, null=True)
    idx_insured_number = models.BinaryField(max_length=16, null=True)
    idx_kana_birth = models.BinaryField(max_length=16, null=True)
    idx_name_birth = models.BinaryField(max_length=16, null=True)
    idx_kana_address = models.BinaryField(max_length=16, null=True)
    idx_name_address = models.BinaryField(max_length=16, null=True)
    idx_kana_phone = models.BinaryField(max_length=16, null=True)

    class Meta:
        ordering = ["approval", "pk"]

    def __str__(self) -> str:
        return f"watermark row #{self.pk} of approval #{self.approval_id}"
