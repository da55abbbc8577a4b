"""What a campaign may be, by its insurer's contract for the fiscal year.

Refused outright: calling days outside the contract's calling period, and a campaign
that would call past the list's retention deadline or start after it — a list kept
eight years and called again is how the 2023 leak began. Allowed only with the
insurer's approval on the record: calling hours outside the contract's, and a control
group below `YOBIKAKE_CONTROL_GROUP_MIN_PERCENT` (with fewer people held out, the effect
of calling cannot be measured).

The contract is read as its creation event recorded it (tenancy/deadlines.py), not from
columns the database administrator could move. The approval is an `exports` approval of
kind CAMPAIGN_TERMS (MAC'd, decided by the insurer's own staff under its policy), bound
to the terms it allowed; it counts only with its decision in the audit log, genuine.
"""

from datetime import date, time
from decimal import Decimal
from enum import StrEnum

from django.conf import settings
from django.db.models import QuerySet
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from yobikake.accounts.errors import AccountError, NotPermitted
from yobikake.audit.keys import audit_keys
from yobikake.audit.models import Event
from yobikake.audit.tags import AuditTag
from yobikake.audit.verify import genuine
from yobikake.calling.models import Campaign
from yobikake.exports import approvals
from yobikake.exports.models import Approval
from yobikake.tenancy.deadlines import as_detail, on_record, time_as_detail
from yobikake.tenancy.models import Contract

KIND = Approval.Kind.CAMPAIGN_TERMS


class Beyond(StrEnum):
    """A term of a campaign that goes beyond its contract."""

    HOURS = "hours"
    CONTROL_GROUP = "control_group"


LABELS = {
    Beyond.HOURS: gettext_lazy("Calling hours outside the contract's"),
    Beyond.CONTROL_GROUP: gettext_lazy("Control group below the minimum"),
}


def contract_of(insurer_id: int, fiscal_year: int) -> Contract | None:
    """The insurer's contract for the fiscal year, as its creation event recorded it."""
    contract = Contract.objects.filter(insurer_id=insurer_id, fiscal_year=fiscal_year).first()
    return None if contract is None else on_record(contract)


def check_dates(*, contract: Contract | None, starts: date, ends: date, today: date) -> None:
    """Refuse (`AccountError`) calling days outside the contract's calling period, or
    past the retention deadline, or a campaign made or started after that deadline."""
    if contract is None:
        raise AccountError(_("The insurer has no contract for this fiscal year."), "no_contract")
    period = (contract.calling_starts, contract.calling_ends)
    if not (period[0] <= starts <= period[1] and period[0] <= ends <= period[1]):
        raise AccountError(
            _(
                "The calling period must lie within the contract's calling period "
                "(%(starts)s – %(ends)s)."
            )
            % {"starts": contract.calling_starts, "ends": contract.calling_ends},
            code="outside_contract_period",
        )
    if starts > ends:
        raise AccountError(_("The calling period ends before it starts."), code="period_order")
    if ends > contract.retention_until or today > contract.retention_until:
        raise AccountError(
            _(
                "The list's retention deadline (%(deadline)s) has passed or falls before "
                "calling ends: it cannot be called."
            )
            % {"deadline": contract.retention_until},
            code="past_retention",
        )


def _minute(at: time) -> int:
    return at.hour * 60 + at.minute


def _percent(campaign: Campaign) -> Decimal:
    # Through text: a share given as a float (0.29) is the decimal it was written as.
    return Decimal(str(campaign.holdout_share)) * 100


def beyond(campaign: Campaign, contract: Contract) -> list[Beyond]:
    """The campaign's terms that need the insurer's approval (none: it may start)."""
    found = []
    if _minute(campaign.window_start) < _minute(contract.calling_from) or _minute(
        campaign.window_end
    ) > _minute(contract.calling_until):
        found.append(Beyond.HOURS)
    if _percent(campaign) < settings.YOBIKAKE_CONTROL_GROUP_MIN_PERCENT:
        found.append(Beyond.CONTROL_GROUP)
    return found


def subject(campaign: Campaign) -> dict[str, int]:
    """What an approval allows: this campaign with these terms (a change after the
    approval, in the database or anywhere, leaves it unapproved)."""
    return {
        "campaign_id": campaign.pk,
        "starts": as_detail(campaign.starts),
        "ends": as_detail(campaign.ends),
        "window_start": time_as_detail(campaign.window_start),
        "window_end": time_as_detail(campaign.window_end),
        "holdout_percent": int(_percent(campaign)),
    }


def requests(campaign: Campaign) -> QuerySet[Approval]:
    """Every approval asked for this campaign, newest first."""
    return Approval.objects.filter(
        kind=KIND, insurer_id=campaign.insurer_id, subject__campaign_id=campaign.pk
    ).select_related("requested_by", "decided_by")


def _binds(approval: Approval, campaign: Campaign) -> bool:
    wanted = subject(campaign)
    return {key: approval.subject.get(key) for key in wanted} == wanted


def latest(campaign: Campaign) -> Approval | None:
    """The newest request for the campaign's terms as they are now."""
    return next((a for a in requests(campaign) if _binds(a, campaign)), None)


def awaiting(campaign: Campaign) -> Approval | None:
    """The request for the campaign's present terms still waiting for the insurer."""
    approval = latest(campaign)
    if approval is None or approval.current_state != Approval.State.REQUESTED:
        return None
    return approval


def _decision_on_record(approval: Approval) -> bool:
    """The insurer's decision is in the log, written by Yobikake, by the one who decided."""
    mac_key = audit_keys().mac_key()
    events = Event.objects.filter(
        tag=AuditTag.APPROVAL_APPROVE,
        outcome=Event.Outcome.ALLOWED,
        actor_user_id=approval.decided_by_id,
        details__startswith=f'{{"approval_id":{approval.pk},',
    )
    return any(genuine(event, mac_key) for event in events)


def approval_for(campaign: Campaign) -> Approval | None:
    """The insurer's approval of the campaign's present terms, unused, in time; None
    when there is none. Raises `NotPermitted` (forged_authorization) for an approval
    written into the database rather than decided."""
    approval = latest(campaign)
    if approval is None or approval.current_state != Approval.State.APPROVED:
        return None
    if not approvals.is_sealed(approval) or not _decision_on_record(approval):
        raise NotPermitted(
            _("The insurer's approval of this campaign is damaged."), code="forged_authorization"
        )
    return approval


def describe(found: list[Beyond], campaign: Campaign, contract: Contract) -> list[str]:
    """Each term beyond the contract, said with its figures."""
    said = []
    for item in found:
        if item is Beyond.HOURS:
            said.append(
                _("Calls %(start)s–%(end)s, outside the contract's hours %(from)s–%(until)s")
                % {
                    "start": f"{campaign.window_start:%H:%M}",
                    "end": f"{campaign.window_end:%H:%M}",
                    "from": f"{contract.calling_from:%H:%M}",
                    "until": f"{contract.calling_until:%H:%M}",
                }
            )
        else:
            said.append(
                _("Control group %(share)s%%, below the minimum of %(minimum)s%%")
                % {
                    "share": int(_percent(campaign)),
                    "minimum": settings.YOBIKAKE_CONTROL_GROUP_MIN_PERCENT,
                }
            )
    return said


def codes(found: list[Beyond]) -> str:
    """The terms as one audit detail ("hours/control_group")."""
    return "/".join(str(item) for item in found)


def needs(campaign: Campaign) -> tuple[Contract | None, list[Beyond]]:
    """The campaign's contract (as recorded) and what of its terms needs approval."""
    contract = contract_of(campaign.insurer_id, campaign.fiscal_year)
    return contract, ([] if contract is None else beyond(campaign, contract))
