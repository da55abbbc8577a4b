"""Campaigns, their call queue, attempts and what they came to.

A campaign's queue holds one `CallTarget` per person on its lists (canaries never),
carrying in the clear only what statistics and the queue need: sex, age, whether a
number is known, attempts, outcomes. Who the person is stays sealed on the target; an
operator sees it only through a reveal for the call checked out to them. Call targets
outlive their list's shredding (the person's link is cut, the counts stay).
"""

from datetime import time

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from yobikake.intake.models import Target, TargetList
from yobikake.tenancy.models import Insurer
from yobikake.vault.fields import SealedField


class Disposition(models.Model):
    """What a call came to, with the flags the queue acts on. Data, not code: seeded by
    the migration, extendable by the federation."""

    code = models.SlugField(max_length=30, unique=True)
    label = models.CharField(max_length=40)
    order = models.PositiveSmallIntegerField(default=0)
    shortcut = models.CharField(max_length=1, unique=True)  # the operator's key
    reached_person = models.BooleanField(default=False)
    reached_household = models.BooleanField(default=False)
    callable_again = models.BooleanField(default=True)
    number_bad = models.BooleanField(default=False)  # back to phone research
    do_not_call = models.BooleanField(default=False)  # the number is never called again
    intends_to_attend = models.BooleanField(default=False)
    attended = models.BooleanField(default=False)  # says they have taken it already
    not_eligible = models.BooleanField(default=False)  # moved away, died, in hospital
    callback = models.BooleanField(default=False)  # a call back at a time they asked for
    retry_minutes = models.PositiveIntegerField(default=24 * 60)

    class Meta:
        ordering = ["order"]

    def __str__(self) -> str:
        return self.label


class Campaign(models.Model):
    """Calling one insurer's lists of one fiscal year."""

    class State(models.TextChoices):
        DRAFT = "draft", _("Draft")
        RUNNING = "running", _("Running")
        CLOSED = "closed", _("Closed")

    insurer = models.ForeignKey(Insurer, on_delete=models.PROTECT, related_name="campaigns")
    fiscal_year = models.PositiveSmallIntegerField(_("fiscal year"))
    name = models.CharField(_("name"), max_length=100)
    lists = models.ManyToManyField(TargetList, related_name="campaigns")
    state = models.CharField(max_length=10, choices=State.choices, default=State.DRAFT)
    starts = models.DateField(_("calling starts"))
    ends = models.DateField(_("calling ends"))
    window_start = models.TimeField(_("calls from"), default=time(9, 0))
    window_end = models.TimeField(_("calls until"), default=time(20, 0))
    saturdays = models.BooleanField(_("Saturdays"), default=False)
    max_attempts = models.PositiveSmallIntegerField(_("maximum attempts"), default=3)
    # Minutes before the next try, per disposition code, over the dispositions' own.
    retry_minutes = models.JSONField(default=dict, blank=True)
    checkout_minutes = models.PositiveSmallIntegerField(default=10)
    callback_release_minutes = models.PositiveSmallIntegerField(default=15)
    script = models.TextField(_("talk script"), blank=True)
    holdout_share = models.DecimalField(max_digits=3, decimal_places=2, default=0.10)
    # Fixed (and recorded in the audit log) when the campaign starts, before any call.
    holdout_seed = models.BigIntegerField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    operators = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="campaigns")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-fiscal_year", "insurer", "pk"]

    def __str__(self) -> str:
        return self.name


class BlackoutPeriod(models.Model):
    """Days an insurer does not want its residents called (New Year, Obon …)."""

    insurer = models.ForeignKey(Insurer, on_delete=models.CASCADE, related_name="blackouts")
    starts = models.DateField()
    ends = models.DateField()
    label = models.CharField(max_length=40)

    class Meta:
        ordering = ["starts"]

    def __str__(self) -> str:
        return f"{self.label} {self.starts}–{self.ends}"


class ResearchResult(models.TextChoices):
    FOUND = "found", _("Found by a researcher")
    DIRECTORY = "directory", _("Found in the directory")
    NOT_FOUND = "not_found", _("Number not found")


class CallTarget(models.Model):
    """One person in one campaign's queue.

    A person without a phone number waits in state RESEARCH until a researcher (or the
    directory import) finds one — then QUEUED — or gives up: NOT_FOUND, out of the
    queue. `research_result` keeps how the last research ended."""

    class State(models.TextChoices):
        QUEUED = "queued", _("Waiting")
        CHECKED_OUT = "checked_out", _("On a call")
        RESEARCH = "research", _("Number to be found")
        NOT_FOUND = "not_found", _("No number found")
        DONE = "done", _("Done")
        HOLDOUT = "holdout", _("Held out (control group)")

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="call_targets")
    target = models.ForeignKey(Target, null=True, on_delete=models.SET_NULL, related_name="+")
    insurer = models.ForeignKey(Insurer, on_delete=models.PROTECT, related_name="+")
    sex = models.CharField(max_length=1)
    age = models.PositiveSmallIntegerField()
    holdout = models.BooleanField(default=False)
    has_phone = models.BooleanField(default=False)
    state = models.CharField(max_length=12, choices=State.choices, default=State.QUEUED)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_at = models.DateTimeField(null=True, blank=True)  # not before (retry spacing)
    last_band = models.CharField(max_length=10, blank=True)
    last_disposition = models.ForeignKey(
        Disposition, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    reached = models.BooleanField(default=False)
    intends_to_attend = models.BooleanField(default=False)
    checked_out_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    checked_out_until = models.DateTimeField(null=True, blank=True)
    grant_id = models.BigIntegerField(null=True, blank=True)
    # A call back the person asked for: the operator's own until released to the pool.
    callback_at = models.DateTimeField(null=True, blank=True)
    callback_owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    callback_release_at = models.DateTimeField(null=True, blank=True)
    # Phone research: the task checked out to a researcher, like a call to an operator.
    research_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    research_until = models.DateTimeField(null=True, blank=True)
    research_grant_id = models.BigIntegerField(null=True, blank=True)
    research_result = models.CharField(max_length=10, choices=ResearchResult.choices, blank=True)
    # Numbers the directory held for this name and address when it could not decide
    # alone (several people or several numbers): a count, never the numbers.
    directory_candidates = models.PositiveSmallIntegerField(default=0)
    # The day the insurer's checkup results say the person took the checkup, when it
    # falls in the campaign's fiscal year; only this match result is kept, never the file.
    attended_on = models.DateField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["campaign", "target"], name="call_target_once")
        ]
        indexes = [
            models.Index(fields=["campaign", "state", "next_at"], name="call_queue"),
            # The pool's order (services._pick): an index walk that stops at the first.
            models.Index(fields=["campaign", "state", "attempts", "id"], name="call_pool"),
            models.Index(fields=["checked_out_by", "state"], name="call_checked_out"),
            models.Index(fields=["callback_owner", "callback_at"], name="call_callbacks"),
            models.Index(fields=["research_by", "state"], name="research_checked_out"),
        ]

    def __str__(self) -> str:
        return f"call target #{self.pk}"


class Attempt(models.Model):
    """One call made: who, when, what it came to. The operator's note is sealed with
    the list's key; the outcome is in the clear (it names no one)."""

    call_target = models.ForeignKey(CallTarget, on_delete=models.CASCADE, related_name="history")
    operator = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    disposition = models.ForeignKey(Disposition, on_delete=models.PROTECT, related_name="+")
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField()
    band = models.CharField(max_length=10)
    note = SealedField(null=True, blank=True)
    simulated = models.BooleanField(default=False)  # made by `yobikake demo`, not a person

    class Meta:
        ordering = ["call_target", "ended_at"]
        indexes = [models.Index(fields=["operator", "ended_at"], name="attempt_operator")]

    def __str__(self) -> str:
        return f"attempt #{self.pk}"


class DoNotCall(models.Model):
    """A number that asked never to be called again, by its blind index under the
    insurer's key: it blocks the number in every campaign of the insurer."""

    insurer = models.ForeignKey(Insurer, on_delete=models.PROTECT, related_name="+")
    idx_phone = models.BinaryField(max_length=16)
    created_at = models.DateTimeField(auto_now_add=True)
    attempt = models.ForeignKey(Attempt, null=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["insurer", "idx_phone"], name="do_not_call_once")
        ]

    def __str__(self) -> str:
        return f"do-not-call #{self.pk}"
