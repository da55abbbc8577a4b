"""Why a target may not be called now — one answer per target, so that "why isn't it
dialling?" always has one. The queue's query finds callable rows fast; these rules are
the definition, applied again to the row a checkout locked, and used by the supervisor's
board to count the reasons.
"""

from datetime import datetime
from enum import StrEnum
from typing import Any

from django.utils.translation import gettext_lazy as _

from yobikake.calling import rules
from yobikake.calling.models import CallTarget, Campaign


class Reason(StrEnum):
    HOLDOUT = "holdout"
    NO_PHONE = "no_phone"
    NOT_FOUND = "not_found"
    DONE = "done"
    MAX_ATTEMPTS = "max_attempts"
    DO_NOT_CALL = "do_not_call"
    ATTENDED = "attended"
    ON_A_CALL = "on_a_call"
    CALLBACK_RESERVED = "callback_reserved"
    SPACING = "spacing"
    LIST_SHREDDED = "list_shredded"


LABELS: dict[str, object] = {
    Reason.HOLDOUT: _("Held out (control group)"),
    Reason.NO_PHONE: _("No phone number yet (research)"),
    Reason.NOT_FOUND: _("No phone number found (research gave up)"),
    Reason.DONE: _("Finished (final outcome)"),
    Reason.MAX_ATTEMPTS: _("Maximum attempts reached"),
    Reason.DO_NOT_CALL: _("Do not call"),
    Reason.ATTENDED: _("Already attended"),
    Reason.ON_A_CALL: _("On a call now"),
    Reason.CALLBACK_RESERVED: _("Call back reserved for an operator"),
    Reason.SPACING: _("Waiting for retry spacing"),
    Reason.LIST_SHREDDED: _("List deleted"),
    "callable": _("Callable now"),
    "queue_empty": _("no one is waiting to be called"),
    "no_campaign": _("you are not assigned to a running campaign"),
    rules.Closed.NOT_RUNNING: _("Campaign not running"),
    rules.Closed.BEFORE_PERIOD: _("Before the calling period"),
    rules.Closed.AFTER_PERIOD: _("After the calling period"),
    rules.Closed.HOLIDAY: _("Public holiday"),
    rules.Closed.BLACKOUT: _("Insurer's blackout days"),
    rules.Closed.NON_CALLING_DAY: _("Not a calling day"),
    rules.Closed.OUTSIDE_WINDOW: _("Outside the calling hours"),
}


def calendar(campaign: Campaign) -> rules.Calendar:
    return rules.Calendar(
        starts=campaign.starts,
        ends=campaign.ends,
        window_start=campaign.window_start,
        window_end=campaign.window_end,
        saturdays=campaign.saturdays,
        blackouts=tuple((b.starts, b.ends) for b in campaign.insurer.blackouts.all()),
    )


def campaign_closed(campaign: Campaign, now: datetime) -> rules.Closed | None:
    if campaign.state != Campaign.State.RUNNING:
        return rules.Closed.NOT_RUNNING
    return rules.closed_reason(calendar(campaign), now)


def reason(
    call_target: CallTarget,
    now: datetime,
    *,
    operator: Any = None,
    blocked: bool,
    closed: rules.Closed | None = None,
) -> StrEnum | None:
    """Why `call_target` may not be called at `now` by `operator` (None: it may).
    `blocked` says whether its number is on the do-not-call list; `closed` is the
    campaign's own reason, if it is closed now."""
    ct, campaign = call_target, call_target.campaign
    if ct.holdout:
        return Reason.HOLDOUT
    if ct.target_id is None:
        return Reason.LIST_SHREDDED
    if ct.state == CallTarget.State.DONE:
        if ct.last_disposition is not None and ct.last_disposition.attended:
            return Reason.ATTENDED
        if ct.attempts >= campaign.max_attempts and (
            ct.last_disposition is None or ct.last_disposition.callable_again
        ):
            return Reason.MAX_ATTEMPTS
        return Reason.DONE
    if ct.state == CallTarget.State.NOT_FOUND:
        return Reason.NOT_FOUND
    if not ct.has_phone or ct.state == CallTarget.State.RESEARCH:
        return Reason.NO_PHONE
    if blocked:
        return Reason.DO_NOT_CALL
    own_callback = operator is not None and ct.callback_owner_id == operator.pk
    if ct.attempts >= campaign.max_attempts and not own_callback:
        return Reason.MAX_ATTEMPTS
    if closed is not None:
        return closed
    if (
        ct.state == CallTarget.State.CHECKED_OUT
        and ct.checked_out_until
        and ct.checked_out_until > now
    ):
        return (
            None
            if operator is not None and ct.checked_out_by_id == operator.pk
            else Reason.ON_A_CALL
        )
    if (
        ct.callback_owner_id is not None
        and (operator is None or ct.callback_owner_id != operator.pk)
        and ct.callback_release_at is not None
        and ct.callback_release_at > now
    ):
        return Reason.CALLBACK_RESERVED
    if ct.next_at is not None and ct.next_at > now:
        return Reason.SPACING
    return None
