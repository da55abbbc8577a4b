"""Incidents: a leaked file scoped against every stored list, what it matched, and the
canary residents planted in each list to be found in such files.

Nothing here holds plaintext. A match names a target by id (and the list, insurer and
fiscal year it was on, so the table outlives a list's shredding); which targets are
canaries only the custodian knows (incidents/canaries.py), so a copy of the database
does not say which rows to leave out of a stolen copy."""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class Incident(models.Model):
    """One leaked file, as the security officer received it, and what scoping found."""

    class State(models.TextChoices):
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Scoping")
        SCOPED = "scoped", _("Scoped")
        FAILED = "failed", _("Failed")

    title = models.CharField(_("title"), max_length=200)
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED)
    # The day the federation became aware of the leak: the reporting deadlines run from it.
    aware_on = models.DateField(_("date of awareness"))
    malicious = models.BooleanField(
        _("caused by a wrongful act"), default=True
    )  # final report within 60 days instead of 30
    file_name = models.CharField(max_length=255, blank=True)
    file_sha256 = models.CharField(max_length=64, blank=True)
    file_kind = models.CharField(max_length=10, blank=True)
    encoding = models.CharField(max_length=12, blank=True)
    rows = models.PositiveIntegerField(default=0)
    # Column number → what its content looked like (phone, kana, name, birth, …).
    columns = models.JSONField(default=dict)
    # The kinds of personal data the file holds (items leaked), in report order.
    items = models.JSONField(default=list)
    # Leaked rows per confidence tier, and rows that matched no one.
    tiers = models.JSONField(default=dict)
    unmatched = models.PositiveIntegerField(default=0)
    # List entries named (targets): a person on two years' lists is two.
    persons = models.PositiveIntegerField(default=0)
    # Persons named: a person on two years' lists is one (told apart by blind index).
    people = models.PositiveIntegerField(default=0)
    seconds = models.FloatField(default=0)
    error_code = models.CharField(max_length=40, blank=True)
    error_message = models.TextField(blank=True)
    # The regulator report's free-text items (cause, secondary damage, …), as drafted.
    report = models.JSONField(default=dict)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"incident #{self.pk}"


class Match(models.Model):
    """A stored target (a list entry) that a leaked row names, at a confidence tier. The
    person, list, insurer and fiscal year are copied: the affected-persons table
    outlives shredding."""

    class Tier(models.TextChoices):
        CERTAIN = "certain", _("Certain")
        PROBABLE = "probable", _("Probable")
        POSSIBLE = "possible", _("Possible")

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="matches")
    leak_row = models.PositiveIntegerField()  # as a spreadsheet numbers it
    target_id = models.BigIntegerField()
    # The person the target is, numbered within the incident: one person's targets on
    # several years' lists (told apart by blind index) share it.
    person = models.PositiveIntegerField(default=0)
    target_list_id = models.BigIntegerField()
    insurer_id = models.BigIntegerField()
    fiscal_year = models.PositiveSmallIntegerField()
    tier = models.CharField(max_length=10, choices=Tier.choices)
    keys = models.CharField(max_length=120)  # the index kinds that agreed, comma-separated
    canary = models.BooleanField(default=False)

    class Meta:
        ordering = ["leak_row", "target_id"]
        indexes = [
            models.Index(fields=["incident", "insurer_id", "fiscal_year"], name="match_table"),
            models.Index(fields=["incident", "target_id"], name="match_target"),
        ]

    def __str__(self) -> str:
        return f"row {self.leak_row} → target #{self.target_id} ({self.tier})"


class WatermarkMatch(models.Model):
    """A leaked row that is one of an export's watermark rows: the file is a copy of
    that export (`approval_id`, exports.models.Approval), for `insurer_id`. Ids only,
    copied, like a match's: the incident outlives what it names."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="watermarks")
    leak_row = models.PositiveIntegerField()
    watermark_id = models.BigIntegerField()
    approval_id = models.BigIntegerField()
    insurer_id = models.BigIntegerField()
    keys = models.CharField(max_length=120)  # the index kinds that agreed, comma-separated

    class Meta:
        ordering = ["approval_id", "leak_row"]

    def __str__(self) -> str:
        return f"row {self.leak_row} → watermark of export #{self.approval_id}"
