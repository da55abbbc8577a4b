"""Reads of calling, scoped to what the actor may see: counts, funnels, reasons and
operators' states. Nothing here decrypts; nothing names a person."""

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, Exists, Max, OuterRef, Q, QuerySet
from django.utils import timezone

from yobikake.accounts.models import User
from yobikake.accounts.permissions import Permission
from yobikake.accounts.selectors import has_permission
from yobikake.audit.services import get_or_record_denial
from yobikake.audit.tags import AuditTag
from yobikake.calling import eligibility
from yobikake.calling.models import Attempt, CallTarget, Campaign, Disposition, DoNotCall


def visible_campaigns(actor: User) -> QuerySet[Campaign]:
    """Every campaign for the federation and the call centre's supervisors; one's own
    insurer's for its staff; none for anyone else (operators work the queue, they do
    not browse campaigns)."""
    campaigns = Campaign.objects.select_related("insurer")
    if any(
        has_permission(actor, p)
        for p in (Permission.AGGREGATE_ANY_VIEW, Permission.PROGRESS_LIVE_VIEW)
    ):
        return campaigns
    if has_permission(actor, Permission.PROGRESS_OWN_VIEW) and actor.organization.insurer_id:
        return campaigns.filter(insurer_id=actor.organization.insurer_id)
    return campaigns.none()


def access_campaign(actor: User, campaign_id: int) -> Campaign:
    """The campaign, or `Campaign.DoesNotExist` alike for "missing" and "not yours";
    the refusal is on the record."""
    return get_or_record_denial(
        visible_campaigns(actor),
        campaign_id,
        actor=actor,
        tag=AuditTag.CAMPAIGN_DENY,
        ref="details:campaign_id",
    )


@dataclass(frozen=True)
class Funnel:
    """Targets assigned to be called → with a number → attempted → reached → intends
    to attend; beside them the held-out control group."""

    targets: int
    number_known: int
    attempted: int
    reached: int
    intends: int
    holdout: int

    def steps(self) -> list[tuple[str, int]]:
        return [
            ("targets", self.targets),
            ("number_known", self.number_known),
            ("attempted", self.attempted),
            ("reached", self.reached),
            ("intends", self.intends),
        ]


def funnel(campaign: Campaign) -> Funnel:
    called = Q(holdout=False)
    figures = CallTarget.objects.filter(campaign=campaign).aggregate(
        targets=Count("pk", filter=called),
        number_known=Count("pk", filter=called & Q(has_phone=True)),
        attempted=Count("pk", filter=called & Q(attempts__gt=0)),
        reached=Count("pk", filter=called & Q(reached=True)),
        intends=Count("pk", filter=called & Q(intends_to_attend=True)),
        holdout=Count("pk", filter=Q(holdout=True)),
    )
    return Funnel(**figures)


def simulated_calls(campaign: Campaign) -> int:
    """Attempts made by the demo's simulation, not by a person."""
    return Attempt.objects.filter(call_target__campaign=campaign, simulated=True).count()


def outcome_counts(campaign: Campaign) -> list[tuple[Disposition, int]]:
    """Attempts per outcome, in the dispositions' order (every outcome, zeros too)."""
    counts = dict(
        Attempt.objects.filter(call_target__campaign=campaign)
        .values_list("disposition")
        .annotate(n=Count("pk"))
        .values_list("disposition", "n")
    )
    return [(d, counts.get(d.pk, 0)) for d in Disposition.objects.all()]


# What eligibility.reason reads of a row.
_REASON_FIELDS = (
    "holdout", "target_id", "state", "attempts", "has_phone", "checked_out_until",
    "checked_out_by_id", "callback_owner_id", "callback_release_at", "next_at",
    "last_disposition",
)  # fmt: skip


def reason_counts(campaign: Campaign, now: datetime | None = None) -> list[tuple[str, int]]:
    """Why the targets that cannot be called now cannot: one reason each, counted
    (eligibility.reason over every row; "callable" for those that can)."""
    now = now or timezone.now()
    closed = eligibility.campaign_closed(campaign, now)
    blocked = DoNotCall.objects.filter(
        insurer_id=OuterRef("insurer_id"), idx_phone=OuterRef("target__idx_phone")
    )
    rows = (
        CallTarget.objects.filter(campaign=campaign)
        .select_related("last_disposition")
        .annotate(blocked=Exists(blocked))
        .only(*_REASON_FIELDS)
    )
    counts: Counter[str] = Counter()
    for row in rows.iterator(chunk_size=2000):
        row.campaign = campaign
        reason = eligibility.reason(row, now, blocked=row.blocked, closed=closed)
        counts[str(reason) if reason else "callable"] += 1
    return sorted(counts.items(), key=lambda item: -item[1])


def reason_label(code: str) -> str:
    """A reason code (eligibility.LABELS) in words."""
    return str(eligibility.LABELS.get(code, code))


@dataclass(frozen=True)
class OperatorState:
    operator: Any
    on_call_since: datetime | None
    calls_last_hour: int
    last_call_at: datetime | None


def operator_states(campaigns: list[Campaign], now: datetime | None = None) -> list[OperatorState]:
    """Each operator assigned to these campaigns: on a call (since when) or not, calls
    in the last hour, the time of their last outcome."""
    now = now or timezone.now()
    operators = list(User.objects.filter(campaigns__in=campaigns).distinct().order_by("username"))
    attempts = Attempt.objects.filter(operator__in=operators).values_list("operator")
    hour = dict(
        attempts.filter(ended_at__gt=now - timedelta(hours=1))
        .annotate(n=Count("pk"))
        .values_list("operator", "n")
    )
    last = dict(attempts.annotate(at=Max("ended_at")).values_list("operator", "at"))
    on_call = {
        operator_id: until - timedelta(minutes=minutes)
        for operator_id, until, minutes in CallTarget.objects.filter(
            checked_out_by__in=operators,
            state=CallTarget.State.CHECKED_OUT,
            checked_out_until__gt=now,
        ).values_list("checked_out_by", "checked_out_until", "campaign__checkout_minutes")
    }
    return [
        OperatorState(o, on_call.get(o.pk), hour.get(o.pk, 0), last.get(o.pk)) for o in operators
    ]
