from datetime import time

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

from yobikake.jp.insurer_numbers import InsurerNumber, InvalidInsurerNumber, parse_insurer_number
from yobikake.tenancy.fiscal import FiscalYear

INSURER_NUMBER_ERRORS = {
    "not_digits": _("An insurer number has digits only."),
    "length": _("An insurer number has 6 digits (NHI) or 8 digits."),
    "prefecture": _("The insurer number's prefecture code does not exist."),
    "check_digit": _("The insurer number's check digit (its last digit) does not match."),
    "not_nhi": _("Municipal NHI and NHI associations have 6-digit insurer numbers."),
}


def validate_insurer_number(value: str) -> None:
    try:
        parse_insurer_number(value)
    except InvalidInsurerNumber as exc:
        raise ValidationError(INSURER_NUMBER_ERRORS[exc.reason], code=exc.reason) from exc


class Insurer(models.Model):
    """A member insurer of the federation: a municipality's NHI or an NHI association."""

    class Kind(models.TextChoices):
        MUNICIPALITY = "municipality", _("Municipality")
        NHI_ASSOCIATION = "nhi_association", _("NHI association")

    number = models.CharField(
        _("insurer number"), max_length=6, unique=True, validators=[validate_insurer_number]
    )
    name = models.CharField(_("name"), max_length=100)
    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices)

    class Meta:
        ordering = ["number"]
        constraints = [
            # Both kinds are NHI insurers, whose numbers have six digits.
            models.CheckConstraint(
                condition=Q(number__regex=r"^[0-9]{6}$"), name="insurer_number_six_digits"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def parsed_number(self) -> InsurerNumber:
        return parse_insurer_number(self.number)

    @property
    def prefecture(self) -> str:
        return self.parsed_number.prefecture_name


class BillingRule(models.TextChoices):
    """What the insurer pays for: `tenancy.billing.cases` counts the cases by it."""

    REACHED_OR_TRIES = "reached_or_tries", _("A person reached, or not reached after N tries")
    PER_PERSON_REACHED = "per_person_reached", _("A person reached")
    PER_PERSON_ATTEMPTED = "per_person_attempted", _("A person called at least once")
    PER_ATTEMPT = "per_attempt", _("Every call made")


class Contract(models.Model):
    """The outreach work an insurer entrusted to the federation for one fiscal year,
    and what it pays: the unit price (integer yen) times the cases its rule counts."""

    insurer = models.ForeignKey(Insurer, on_delete=models.PROTECT, related_name="contracts")
    fiscal_year = models.PositiveSmallIntegerField(_("fiscal year"))
    calling_starts = models.DateField(_("calling starts"))
    calling_ends = models.DateField(_("calling ends"))
    retention_until = models.DateField(_("retention deadline"))
    # The hours of the day (Asia/Tokyo) the insurer lets its residents be called; a
    # campaign calling outside them needs the insurer's approval (calling/terms.py).
    calling_from = models.TimeField(_("calls from"), default=time(9, 0))
    calling_until = models.TimeField(_("calls until"), default=time(20, 0))
    unit_price_yen = models.PositiveIntegerField(_("unit price (yen per case)"), default=0)
    billing_rule = models.CharField(
        _("billing rule"),
        max_length=30,
        choices=BillingRule.choices,
        default=BillingRule.REACHED_OR_TRIES,
    )
    # For REACHED_OR_TRIES: this many calls without reaching the person make one case.
    unanswered_tries = models.PositiveSmallIntegerField(_("tries that count as a case"), default=3)

    class Meta:
        ordering = ["insurer__number", "fiscal_year"]
        constraints = [
            models.UniqueConstraint(
                fields=["insurer", "fiscal_year"], name="one_contract_per_insurer_and_year"
            ),
            models.CheckConstraint(
                condition=Q(calling_starts__lte=F("calling_ends")),
                name="contract_calling_period_ordered",
            ),
            models.CheckConstraint(
                condition=Q(retention_until__gte=F("calling_ends")),
                name="contract_retention_after_calling",
            ),
            models.CheckConstraint(
                condition=Q(unanswered_tries__gte=1), name="contract_unanswered_tries_positive"
            ),
            models.CheckConstraint(
                condition=Q(calling_from__lt=F("calling_until")),
                name="contract_calling_hours_ordered",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.insurer} {self.fy}"

    @property
    def fy(self) -> FiscalYear:
        return FiscalYear(self.fiscal_year)
