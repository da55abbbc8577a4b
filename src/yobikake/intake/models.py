"""Target lists and the people on them. Personal fields are sealed by the vault (per-list
data key, associated data naming table, column and row); only what statistics need is in
the clear: sex, age at the fiscal year's end, the postal area (first three digits)."""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from yobikake.tenancy.models import Insurer
from yobikake.vault.fields import SealedField

# A target's id is its list's id times this plus its row number, so the id — which the
# sealed values are bound to — is known before the row is written. A prefecture's whole
# NHI is a few million people; no list comes near ten million rows.
ROWS_PER_LIST = 10_000_000


class TargetList(models.Model):
    """One insurer's list of insured people for one fiscal year."""

    class State(models.TextChoices):
        ACTIVE = "active", _("Active")
        SHREDDED = "shredded", _("Shredded")

    insurer = models.ForeignKey(Insurer, on_delete=models.PROTECT, related_name="target_lists")
    fiscal_year = models.PositiveSmallIntegerField(_("fiscal year"))
    state = models.CharField(max_length=10, choices=State.choices, default=State.ACTIVE)
    row_count = models.PositiveIntegerField(default=0)
    # Counts by sex and age band; they survive shredding (they name no one).
    aggregates = models.JSONField(default=dict)
    # The list's data key, only as wrapped by the key service's key
    # `yobikake-list-<list id>` (the token names the key version; vault/datakeys.py).
    wrapped_key = models.TextField(blank=True)
    source_sha256 = models.CharField(max_length=64, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    shredded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["insurer", "fiscal_year", "pk"]

    def __str__(self) -> str:
        return f"list #{self.pk} ({self.insurer_id}, FY{self.fiscal_year})"


class Target(models.Model):
    """One insured person on one list."""

    id = models.BigIntegerField(primary_key=True)
    target_list = models.ForeignKey(TargetList, on_delete=models.CASCADE, related_name="targets")
    insurer = models.ForeignKey(Insurer, on_delete=models.PROTECT, related_name="+")
    row_number = models.PositiveIntegerField()
    sex = models.CharField(max_length=1)  # "1" male, "2" female (the national codes)
    age = models.PositiveSmallIntegerField()  # at the end of the fiscal year
    postal_area = models.CharField(max_length=3, blank=True)
    has_phone = models.BooleanField(default=False)
    is_canary = models.BooleanField(default=False)
    name_kanji = SealedField()
    name_kana = SealedField()
    birth_date = SealedField()
    phone = SealedField()
    postal_code = SealedField()
    address = SealedField()
    insured_number = SealedField()

    SEALED_FIELDS = (
        "name_kanji",
        "name_kana",
        "birth_date",
        "phone",
        "postal_code",
        "address",
        "insured_number",
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["target_list", "row_number"], name="target_row_once")
        ]

    def __str__(self) -> str:
        return f"target #{self.pk}"


class TargetIndex(models.Model):
    """One blind-index value of one target (see vault/blind.py): how people are found
    again — by leak scoping, directory matching, do-not-call — without decrypting."""

    target = models.ForeignKey(Target, on_delete=models.CASCADE, related_name="+")
    target_list = models.ForeignKey(TargetList, on_delete=models.CASCADE, related_name="+")
    insurer = models.ForeignKey(Insurer, on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=16)
    value = models.BinaryField(max_length=16)

    class Meta:
        indexes = [models.Index(fields=["insurer", "kind", "value"], name="target_index_lookup")]

    def __str__(self) -> str:
        return f"{self.kind} index of target #{self.target_id}"
