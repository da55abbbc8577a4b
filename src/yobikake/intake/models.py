"""Target lists and the people on them. Personal fields are sealed to the list's public
key (custody/protocol.py: each batch under a fresh key, that key wrapped to the list's
public key, associated data naming table, column, row, list and insurer); only the
custodian opens them. Only what statistics need is in the clear: sex, age at the fiscal
year's end, the postal area (first three digits)."""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from yobikake.intake import sealing
from yobikake.tenancy.models import Insurer
from yobikake.vault.fields import SealedField


class TargetList(models.Model):
    """One insurer's list of insured people for one fiscal year."""

    class State(models.TextChoices):
        ACTIVE = "active", _("Active")
        SHREDDED = "shredded", _("Shredded")

    insurer = models.ForeignKey(Insurer, on_delete=models.PROTECT, related_name="target_lists")
    fiscal_year = models.PositiveSmallIntegerField(_("fiscal year"))
    state = models.CharField(max_length=10, choices=State.choices, default=State.ACTIVE)
    rows_submitted = models.PositiveIntegerField(default=0)  # data rows in what was sent
    row_count = models.PositiveIntegerField(default=0)  # rows accepted and stored
    # Counts by sex and age band; they survive shredding (they name no one).
    aggregates = models.JSONField(default=dict)
    # The public half of the list's key pair (PEM), from the custodian: rows are sealed
    # to it; its private half exists only in custody.
    public_key = models.TextField(blank=True)
    # Once shredded: the custodian's certificate that the private key is destroyed (its
    # fingerprint, when, the custody key's signature: custody.core.verify_certificate).
    custody_receipt = models.JSONField(default=dict, blank=True)
    source_sha256 = models.CharField(max_length=64, blank=True)
    # Empty for lists imported from the command line (the audit log says so).
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    shredded_at = models.DateTimeField(null=True, blank=True)
    # The list sent to replace this one (import "replace"): from then on this one takes
    # no part in checks for people already listed; it stays, still under its retention
    # deadline, until it is shredded (its deletion is requested as it is superseded).
    superseded_by = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="supersedes"
    )

    class Meta:
        ordering = ["insurer", "fiscal_year", "pk"]

    def __str__(self) -> str:
        return f"list #{self.pk} ({self.insurer_id}, FY{self.fiscal_year})"


class Target(models.Model):
    """One insured person on one list."""

    id = models.BigIntegerField(primary_key=True)
    # No index of their own: the unique (list, row) serves lookups by list, and every
    # index a row carries costs a list import (bench/intake.py).
    target_list = models.ForeignKey(
        TargetList, on_delete=models.CASCADE, related_name="targets", db_index=False
    )
    insurer = models.ForeignKey(Insurer, on_delete=models.PROTECT, related_name="+", db_index=False)
    row_number = models.PositiveIntegerField()
    sex = models.CharField(max_length=1)  # "1" male, "2" female (the national codes)
    age = models.PositiveSmallIntegerField()  # at the end of the fiscal year
    postal_area = models.CharField(max_length=3, blank=True)
    has_phone = models.BooleanField(default=False)
    name_kanji = SealedField()
    name_kana = SealedField()
    birth_date = SealedField()
    phone = SealedField()
    postal_code = SealedField()
    address = SealedField()
    insured_number = SealedField()
    # Blind indexes (vault/blind.py): one column per kind. Those looked up by value have a
    # database index under their list (LOOKED_UP): a list's entries then sit together at
    # the end of each B-tree, so storing a list touches only its own pages. The others
    # are only read with their row (by id), or a list's or all at once (the phone
    # directory's matching, leak scoping): an index on them would cost every import.
    idx_phone = models.BinaryField(max_length=16, null=True)
    idx_insured_number = models.BinaryField(max_length=16, null=True)
    idx_kana_birth = models.BinaryField(max_length=16, null=True)
    idx_name_birth = models.BinaryField(max_length=16, null=True)
    idx_kana_address = models.BinaryField(max_length=16, null=True)
    idx_name_address = models.BinaryField(max_length=16, null=True)
    idx_kana_phone = models.BinaryField(max_length=16, null=True)

    SEALED_FIELDS = sealing.SEALED_FIELDS  # the table is sealing.TABLE

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["target_list", "row_number"], name="target_row_once")
        ]
        indexes = [
            models.Index(fields=["target_list", column], name=f"target_list_{column}")
            for column in sealing.LOOKED_UP
        ]

    def __str__(self) -> str:
        return f"target #{self.pk}"


class SealedBatch(models.Model):
    """The key one batch of a list's values was sealed under, wrapped to the list's public
    key: only the custodian unwraps it. Each sealed value names its batch
    (custody/sealing.py), so values sealed later (a researched phone number, a call
    note) carry their own."""

    id = models.BigAutoField(primary_key=True)
    target_list = models.ForeignKey(
        TargetList, on_delete=models.CASCADE, related_name="sealed_batches"
    )
    wrapped_key = models.BinaryField()

    def __str__(self) -> str:
        return f"sealed batch #{self.pk}"


class ListImport(models.Model):
    """One file sent in: what became of it. The file itself is never stored (only its
    SHA-256); its findings name rows, columns and reasons, never values."""

    class State(models.TextChoices):
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Importing")
        ACCEPTED = "accepted", _("Accepted")
        REJECTED = "rejected", _("Rejected")
        FAILED = "failed", _("Failed")

    class Policy(models.TextChoices):
        REJECT = "reject", _("Reject the whole file on any error")
        EXCLUDE = "exclude", _("Accept valid rows, exclude the rest")

    class Existing(models.TextChoices):
        """What the sender chose to do with the insurer's earlier list of the year."""

        ADD = "add", _("Add to it (a supplementary list)")
        REPLACE = (
            "replace",
            _("Replace it (the earlier list is withdrawn, and its early deletion requested)"),
        )

    insurer = models.ForeignKey(Insurer, on_delete=models.PROTECT, related_name="imports")
    fiscal_year = models.PositiveSmallIntegerField(_("fiscal year"))
    policy = models.CharField(max_length=10, choices=Policy.choices, default=Policy.REJECT)
    # Empty when the sender knew of no earlier list for the year (there was none).
    existing = models.CharField(max_length=10, choices=Existing.choices, blank=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED)
    file_name = models.CharField(max_length=255, blank=True)
    file_sha256 = models.CharField(max_length=64, blank=True)
    file_kind = models.CharField(max_length=10, blank=True)  # csv, tsv, xlsx
    encoding = models.CharField(max_length=12, blank=True)
    rows_submitted = models.PositiveIntegerField(default=0)
    rows_accepted = models.PositiveIntegerField(default=0)
    rows_excluded = models.PositiveIntegerField(default=0)
    findings_count = models.PositiveIntegerField(default=0)
    # When the file as a whole could not be taken: a code, and our own words (never values).
    error_code = models.CharField(max_length=40, blank=True)
    error_message = models.TextField(blank=True)
    target_list = models.OneToOneField(
        TargetList, null=True, blank=True, on_delete=models.SET_NULL, related_name="source"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"import #{self.pk} ({self.state})"


class ImportFinding(models.Model):
    """A row-level problem: where (row, column, cell) and why (a code), never the value."""

    list_import = models.ForeignKey(ListImport, on_delete=models.CASCADE, related_name="findings")
    row = models.PositiveIntegerField()  # as a spreadsheet numbers it: the header is row 1
    field = models.CharField(max_length=20, blank=True)
    cell = models.CharField(max_length=12, blank=True)  # e.g. "D17"
    code = models.CharField(max_length=40)
    ref_row = models.PositiveIntegerField(null=True, blank=True)  # the row it repeats

    class Meta:
        ordering = ["row", "pk"]

    def __str__(self) -> str:
        return f"row {self.row}: {self.code}"

    @property
    def message(self) -> str:
        from yobikake.intake.validation import FINDING_MESSAGES

        return str(FINDING_MESSAGES.get(self.code, self.code))


class ColumnMapping(models.Model):
    """An insurer's own header for one of Yobikake's fields, saved once and used for
    every later file of theirs."""

    insurer = models.ForeignKey(Insurer, on_delete=models.CASCADE, related_name="column_mappings")
    header = models.CharField(max_length=100)
    field = models.CharField(max_length=20)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["insurer", "header"], name="one_field_per_header")
        ]

    def __str__(self) -> str:
        return f"{self.header} → {self.field}"
