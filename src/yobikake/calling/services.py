"""Every write of calling: campaigns, their queues, checkouts and outcomes.

"Next call" checks one target out atomically — on PostgreSQL by `SELECT … FOR UPDATE
SKIP LOCKED`, so operators never wait on each other's row; on SQLite every write
transaction takes the database's write lock at BEGIN (settings: IMMEDIATE), so
checkouts run one after another — and issues the operator a grant for that one person
(the vault's `queue_grant`). Eligibility is decided at that moment (eligibility.py), not
only when the queue was built.
"""

import functools
import random
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from yobikake.accounts.errors import AccountError, NotPermitted
from yobikake.accounts.permissions import Permission, Role
from yobikake.accounts.selectors import active_roles, require
from yobikake.audit.services import append_event, audited, record_denial
from yobikake.audit.tags import AuditTag
from yobikake.calling import dispositions, eligibility, rules, terms
from yobikake.calling.models import (
    Attempt,
    BlackoutPeriod,
    CallTarget,
    Campaign,
    Disposition,
    DoNotCall,
)
from yobikake.custody.protocol import CustodyUnavailable
from yobikake.exports import approvals
from yobikake.exports import services as exports
from yobikake.exports.models import Approval
from yobikake.incidents import canaries
from yobikake.intake.models import Target, TargetList
from yobikake.vault import batches
from yobikake.vault import services as vault
from yobikake.vault.models import Grant, Purpose


def _ids(ids: Iterable[int]) -> str:
    """Ids as one audit detail ("ids:3/4/9"): details are scalars."""
    return "ids:" + "/".join(str(pk) for pk in sorted(ids))


class NothingToCall(AccountError):
    """No target may be called now; `code` says why (a closed reason or "queue_empty")."""


def _require(actor: Any, permission: Permission) -> None:
    # `actor` None is the command line (`yobikake calling`), as for `yobikake tenancy`:
    # whoever runs commands on the application host holds every right the application
    # has. Its events carry no user, and `source: cli`.
    if actor is not None:
        require(actor, permission)


def _source(actor: Any) -> dict[str, str]:
    return {} if actor is not None else {"source": "cli"}


_Action = TypeVar("_Action", bound=Callable[..., Campaign])


@audited(AuditTag.CAMPAIGN_CREATE)
def create_campaign(
    *,
    actor: Any,
    insurer: Any,
    fiscal_year: int,
    lists: list[Any],
    name: str = "",
    **settings: Any,
) -> Campaign:
    """A campaign over some of the insurer's lists of one fiscal year, in draft. The
    insurer gets the usual blackout periods (New Year, Obon) of those years.

    Refused when its calling days fall outside the contract's calling period or past the
    list's retention deadline (calling/terms.py). Terms that go beyond the contract
    (calling hours, a small control group) are allowed in a draft; the insurer's
    approval is asked for at once (by a supervisor; from the command line, later on the
    campaign's page) and the campaign cannot start without it."""
    _require(actor, Permission.CAMPAIGN_ANY_RUN)
    if not lists:
        raise AccountError(_("A campaign needs at least one list."), code="no_lists")
    for target_list in lists:
        if (target_list.insurer_id, target_list.fiscal_year) != (insurer.pk, fiscal_year):
            raise AccountError(
                _("Every list must be the insurer's own, of the campaign's fiscal year."),
                code="list_mismatch",
            )
        if target_list.state != TargetList.State.ACTIVE:
            raise AccountError(_("This list has been shredded."), code="list_shredded")
    start, end = settings.get("window_start"), settings.get("window_end")
    if start is not None and end is not None and start >= end:
        raise AccountError(_("The calling hours end before they start."), code="hours_order")
    contract = terms.contract_of(insurer.pk, fiscal_year)
    if contract is not None:
        settings.setdefault("starts", contract.calling_starts)
        settings.setdefault("ends", contract.calling_ends)
    terms.check_dates(
        contract=contract,
        starts=settings.get("starts"),
        ends=settings.get("ends"),
        today=timezone.localdate(),
    )
    campaign = Campaign.objects.create(
        insurer=insurer,
        fiscal_year=fiscal_year,
        name=name or f"{insurer.name} {fiscal_year}年度 受診勧奨",
        created_by=actor,
        **settings,
    )
    campaign.lists.set(lists)
    # The usual blackout days around the campaign's year, each added once.
    for starts, ends, label in rules.default_blackouts([fiscal_year - 1, fiscal_year]):
        BlackoutPeriod.objects.get_or_create(
            insurer=insurer, starts=starts, ends=ends, defaults={"label": label}
        )
    beyond = terms.beyond(campaign, contract) if contract is not None else []
    append_event(
        tag=AuditTag.CAMPAIGN_CREATE,
        actor=actor,
        insurer_id=insurer.pk,
        details={"campaign_id": campaign.pk, "lists": _ids(tl.pk for tl in lists)}
        | ({"needs_approval": terms.codes(beyond)} if beyond else {})
        | _source(actor),
    )
    if beyond and actor is not None:
        _request_terms(actor, campaign, beyond)
    return campaign


@audited(AuditTag.APPROVAL_REQUEST)
def request_campaign_approval(*, actor: Any, campaign: Campaign) -> Approval:
    """Ask the insurer to approve a draft campaign's terms that go beyond its contract
    (a supervisor; `create_campaign` asks at once when a supervisor creates one)."""
    require(actor, Permission.CAMPAIGN_ANY_RUN)
    campaign = Campaign.objects.select_for_update().get(pk=campaign.pk)
    if campaign.state != Campaign.State.DRAFT:
        raise AccountError(_("This campaign has already started."), code="already_started")
    _contract, beyond = terms.needs(campaign)
    if not beyond:
        raise AccountError(
            _("This campaign keeps to its contract: it needs no approval."), code="within_contract"
        )
    latest = terms.latest(campaign)
    if latest is not None and latest.current_state in (
        Approval.State.REQUESTED,
        Approval.State.APPROVED,
    ):
        raise AccountError(
            _("This has already been requested and is still open."), code="already_requested"
        )
    return _request_terms(actor, campaign, beyond)


def _request_terms(actor: Any, campaign: Campaign, beyond: list[terms.Beyond]) -> Approval:
    now = timezone.now()
    approval = Approval.objects.create(
        kind=terms.KIND,
        insurer_id=campaign.insurer_id,
        subject=terms.subject(campaign),
        requested_by=actor,
        requested_at=now,
        expires_at=now + exports.valid_for(),
    )
    approvals.seal(approval)
    append_event(
        tag=AuditTag.APPROVAL_REQUEST,
        actor=actor,
        insurer_id=campaign.insurer_id,
        details={
            "approval_id": approval.pk,
            "kind": str(terms.KIND),
            "campaign_id": campaign.pk,
            "terms": terms.codes(beyond),
        },
    )
    return approval


def _decide_terms(
    actor: Any, campaign: Campaign, decide: Callable[..., Approval], tag: AuditTag
) -> Approval:
    approval = terms.awaiting(campaign)
    if approval is None:
        record_denial(
            tag=tag,
            actor=actor,
            reason="no_request",
            insurer_id=campaign.insurer_id,
            details={"campaign_id": campaign.pk},
        )
        raise AccountError(_("There is no request to decide on."), code="no_request")
    # The approvals' own rules: the policy (the insurer's own staff, not the requester),
    # the MAC, the time; the decision and any refusal of it are on the record.
    return decide(actor=actor, approval=approval)


def approve_campaign_terms(*, actor: Any, campaign: Campaign) -> Approval:
    """The insurer's staff approve their campaign's terms beyond the contract, as the
    request stated them."""
    return _decide_terms(actor, campaign, exports.approve, AuditTag.APPROVAL_APPROVE)


def refuse_campaign_terms(*, actor: Any, campaign: Campaign) -> Approval:
    """The insurer's staff refuse them (the campaign stays a draft)."""
    return _decide_terms(actor, campaign, exports.refuse, AuditTag.APPROVAL_REFUSE)


def _audited_campaign(tag: AuditTag) -> Callable[[_Action], _Action]:
    """Like `audited`, with the campaign and its insurer named in the refusal's event."""

    def decorator(service: _Action) -> _Action:
        @functools.wraps(service)
        def wrapper(*, actor: Any, campaign: Campaign, **kwargs: Any) -> Campaign:
            try:
                with transaction.atomic():
                    return service(actor=actor, campaign=campaign, **kwargs)
            except AccountError as exc:
                record_denial(
                    tag=tag,
                    actor=actor,
                    reason=exc.code,
                    insurer_id=campaign.insurer_id,
                    details={"campaign_id": campaign.pk},
                )
                raise

        return cast(_Action, wrapper)

    return decorator


@_audited_campaign(AuditTag.CAMPAIGN_START)
def start_campaign(*, actor: Any, campaign: Campaign, seed: int | None = None) -> Campaign:
    """Build the queue and fix the holdout before the first call: the seed is drawn
    (or given, to reproduce one), recorded on the campaign and in the audit log, and
    decides who is never called.

    The contract is checked again (the campaign may have waited, or been edited in the
    database), and terms beyond it need the insurer's approval of exactly these terms,
    on the record; it is used up by the start. A start refused for want of it raises an
    alert."""
    _require(actor, Permission.CAMPAIGN_ANY_RUN)
    campaign = Campaign.objects.select_for_update().get(pk=campaign.pk)
    if campaign.state != Campaign.State.DRAFT:
        raise AccountError(_("This campaign has already started."), code="already_started")
    contract, beyond = terms.needs(campaign)
    terms.check_dates(
        contract=contract, starts=campaign.starts, ends=campaign.ends, today=timezone.localdate()
    )
    approval = terms.approval_for(campaign) if beyond else None
    if beyond and approval is None:
        raise AccountError(
            _("The insurer has not approved this campaign's terms: %(terms)s.")
            % {"terms": "; ".join(terms.describe(beyond, campaign, contract))},
            code="approval_required",
        )
    lists = list(campaign.lists.all())
    try:
        # Which rows are canaries only the custodian says: never called, never counted.
        hidden = canaries.of_lists(lists, campaign_id=campaign.pk)
    except CustodyUnavailable:
        raise AccountError(
            _("The custodian cannot be reached; the campaign cannot start now."),
            code="custodian_unavailable",
        ) from None
    people = [
        row
        for row in Target.objects.filter(target_list__in=lists)
        .order_by("pk")
        .values_list("pk", "sex", "age", "has_phone")
        if row[0] not in hidden
    ]
    campaign.holdout_seed = secrets.randbits(62) if seed is None else seed
    held = rules.holdout(
        campaign.holdout_seed, [pk for pk, *_rest in people], float(campaign.holdout_share)
    )
    CallTarget.objects.bulk_create(
        (
            CallTarget(
                campaign=campaign,
                target_id=pk,
                insurer_id=campaign.insurer_id,
                sex=sex,
                age=age,
                holdout=pk in held,
                has_phone=has_phone,
                state=_initial_state(pk in held, has_phone),
            )
            for pk, sex, age, has_phone in people
        ),
        batch_size=2000,
    )
    campaign.state = Campaign.State.RUNNING
    campaign.started_at = timezone.now()
    campaign.save(update_fields=["state", "started_at", "holdout_seed"])
    if approval is not None:
        approval.state, approval.used_by, approval.used_at = (
            Approval.State.USED,
            actor,
            campaign.started_at,
        )
        approval.save(update_fields=["state", "used_by", "used_at"])
        approvals.seal(approval)
    append_event(
        tag=AuditTag.CAMPAIGN_START,
        actor=actor,
        insurer_id=campaign.insurer_id,
        details={
            "campaign_id": campaign.pk,
            "holdout_seed": campaign.holdout_seed,
            "holdout": len(held),
            "targets": len(people),
        }
        | ({"approval_id": approval.pk} if approval is not None else {})
        | _source(actor),
    )
    return campaign


@audited(AuditTag.CAMPAIGN_CLOSE)
def close_campaign(*, actor: Any, campaign: Campaign) -> Campaign:
    """End calling: nobody in the campaign is called again, and its queue as it stands
    is its result (people never reached count as not reached; the effect is measured
    on everyone assigned, as before). Refused while an operator is on one of its calls
    (their checkout's time not up): the call is recorded first. A checkout abandoned
    (its time up, its grant expired with it) goes back to the queue it is closing."""
    require(actor, Permission.CAMPAIGN_ANY_RUN)
    campaign = Campaign.objects.select_for_update().get(pk=campaign.pk)
    if campaign.state != Campaign.State.RUNNING:
        raise AccountError(_("Only a running campaign can be closed."), code="not_running")
    now = timezone.now()
    checked_out = campaign.call_targets.filter(state=CallTarget.State.CHECKED_OUT)
    if checked_out.filter(checked_out_until__gt=now).exists():
        raise AccountError(
            _("An operator is on one of this campaign's calls; close it when it is recorded."),
            code="calls_in_progress",
        )
    checked_out.update(
        state=CallTarget.State.QUEUED, checked_out_by=None, checked_out_until=None, grant_id=None
    )
    campaign.state = Campaign.State.CLOSED
    campaign.closed_at = now
    campaign.save(update_fields=["state", "closed_at"])
    called = campaign.call_targets.filter(holdout=False)
    append_event(
        tag=AuditTag.CAMPAIGN_CLOSE,
        actor=actor,
        insurer_id=campaign.insurer_id,
        details={
            "campaign_id": campaign.pk,
            "called_arm": called.count(),
            "attempted": called.filter(attempts__gt=0).count(),
            "reached": called.filter(reached=True).count(),
        },
    )
    return campaign


def _initial_state(held: bool, has_phone: bool) -> str:
    if held:
        return CallTarget.State.HOLDOUT
    return CallTarget.State.QUEUED if has_phone else CallTarget.State.RESEARCH


@audited(AuditTag.CAMPAIGN_ASSIGN)
def assign_operators(*, actor: Any, campaign: Campaign, operators: list[Any]) -> None:
    """The operators who work this campaign's queue (replacing the previous set)."""
    require(actor, Permission.OPERATOR_ANY_ASSIGN)
    if campaign.state == Campaign.State.CLOSED:
        raise AccountError(_("This campaign is closed."), code="closed")
    for operator in operators:
        if Role.OPERATOR not in active_roles(operator):
            raise NotPermitted(
                _("%(user)s is not an operator.") % {"user": operator.username},
                code="not_an_operator",
            )
    before = set(campaign.operators.all())
    campaign.operators.set(operators)
    # One event per operator added or taken off, naming them.
    for operator, change in [
        *((o, "added") for o in set(operators) - before),
        *((o, "removed") for o in before - set(operators)),
    ]:
        append_event(
            tag=AuditTag.CAMPAIGN_ASSIGN,
            actor=actor,
            subject=operator,
            insurer_id=campaign.insurer_id,
            details={"campaign_id": campaign.pk, "change": change},
        )


@dataclass(frozen=True)
class Checkout:
    call_target: CallTarget
    grant: Any


def current_checkout(operator: Any, now: datetime | None = None) -> CallTarget | None:
    """The call the operator has checked out and not finished, if its time is not up."""
    now = now or timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(_CHECKED_OUT, [operator.pk, connection.ops.adapt_datetimefield_value(now)])
        row = cursor.fetchone()
    if row is None:  # the usual case: answered without building a query
        return None
    return CallTarget.objects.select_related("campaign", "target").get(pk=row[0])


_CHECKED_OUT = (
    f"SELECT id FROM {CallTarget._meta.db_table} "  # noqa: S608 - fixed names
    f"WHERE checked_out_by_id = %s AND state = '{CallTarget.State.CHECKED_OUT.value}' "
    "AND checked_out_until > %s AND target_id IS NOT NULL ORDER BY checked_out_until DESC LIMIT 1"
)


def next_call(*, operator: Any) -> Checkout:
    """Check the next callable target out to `operator` and give them a grant to reveal
    it. An operator with a call still checked out gets that one again (a reloaded page
    must not skip a person). Raises `NothingToCall` with the reason when none may be
    called now."""
    require(operator, Permission.TARGET_REVEAL_CALL)
    now = timezone.now()
    campaigns = list(
        Campaign.objects.filter(operators=operator, state=Campaign.State.RUNNING)
        .select_related("insurer")
        .prefetch_related("insurer__blackouts")
    )
    closed = {c.pk: eligibility.campaign_closed(c, now) for c in campaigns}
    open_ids = [pk for pk, reason in closed.items() if reason is None]
    with transaction.atomic():
        # One checkout at a time per operator (the account's row is the lock): a double
        # press must not check out two people, the first then stranded.
        vault.lock_holder(operator)
        held = current_checkout(operator, now)
        if held is not None and held.grant_id:
            grant = Grant.objects.filter(pk=held.grant_id).first()
            return Checkout(held, grant)
        if not open_ids:
            reasons = sorted({str(r) for r in closed.values() if r})
            raise NothingToCall(
                _("There is nothing to call now."), code=reasons[0] if reasons else "no_campaign"
            )
        call_target = _pick(operator, [c for c in campaigns if c.pk in open_ids], now)
        if call_target is None:
            raise NothingToCall(_("There is nothing to call now."), code="queue_empty")
        campaign = next(c for c in campaigns if c.pk == call_target.campaign_id)
        call_target.campaign = campaign
        # Checked again on the row as locked: what the queue's query decided, the rules
        # decide too (one set of rules; the query is only the fast way to find a row).
        reason = eligibility.reason(call_target, now, operator=operator, blocked=False)
        if reason is not None:
            raise NothingToCall(_("There is nothing to call now."), code=str(reason))
        grant = vault.queue_grant(
            holder=operator,
            target=call_target.target,
            purpose=Purpose.CALL,
            minutes=campaign.checkout_minutes,
            campaign_id=campaign.pk,
            call_target_id=call_target.pk,
        )
        call_target.state = CallTarget.State.CHECKED_OUT
        call_target.checked_out_by = operator
        call_target.checked_out_until = now + timedelta(minutes=campaign.checkout_minutes)
        call_target.grant_id = grant.pk
        call_target.save(update_fields=["state", "checked_out_by", "checked_out_until", "grant_id"])
    return Checkout(call_target, grant)


def skip_locked() -> dict[str, Any]:
    """How a queue locks the row it hands out: on PostgreSQL passing over rows others
    hold (and locking the queue's row alone, not the rows it joins); SQLite's IMMEDIATE
    transactions already run checkouts one after another."""
    if connection.features.has_select_for_update_skip_locked:
        return {"skip_locked": True, "of": ("self",)}
    return {}


_CT = CallTarget._meta.db_table
_T = Target._meta.db_table
_DNC = DoNotCall._meta.db_table
_QUEUED, _CHECKED = CallTarget.State.QUEUED.value, CallTarget.State.CHECKED_OUT.value
# The three places the next call comes from, in order; each walks an index and stops at
# the first row it may take. Written out because they run in every checkout, where
# building them with the ORM cost more than running them (bench/calling.py).
_CALLABLE = (
    f"SELECT ct.id FROM {_CT} ct JOIN {_T} t ON t.id = ct.target_id "  # noqa: S608 - fixed names
    "WHERE ct.campaign_id = %(campaign)s AND ct.has_phone "
    f"AND NOT EXISTS (SELECT 1 FROM {_DNC} d "
    "WHERE d.insurer_id = ct.insurer_id AND d.idx_phone = t.idx_phone) AND "
)
_TAKEABLE = _CALLABLE + "ct.attempts < %(max_attempts)s AND "
# Not reserved for someone else's call back.
_FREE = (
    "(ct.callback_owner_id IS NULL OR ct.callback_owner_id = %(operator)s "
    "OR ct.callback_release_at <= %(now)s) "
)
# The operator's own call backs that are due (made even on the last attempt: the person
# asked for it).
_CALLBACKS = (
    _CALLABLE + f"ct.state = '{_QUEUED}' AND ct.callback_owner_id = %(operator)s "
    "AND ct.callback_at <= %(now)s ORDER BY ct.callback_at"
)
_PICKS = (
    # Checkouts abandoned (their time ran out).
    _TAKEABLE
    + f"ct.state = '{_CHECKED}' AND ct.checked_out_until <= %(now)s AND "
    + _FREE
    + "ORDER BY ct.checked_out_until",
    # The pool: spaced, not reserved for someone's call back; fewer attempts first.
    _TAKEABLE + f"ct.state = '{_QUEUED}' AND (ct.next_at IS NULL OR ct.next_at <= %(now)s) "
    "AND (ct.callback_owner_id IS NULL OR ct.callback_release_at <= %(now)s) "
    "ORDER BY ct.attempts, ct.id",
)


def _pick(operator: Any, campaigns: list[Campaign], now: datetime) -> CallTarget | None:
    """The row to call next, locked: the operator's own call backs that are due, then
    checkouts abandoned by others, then the pool — fewer attempts first. Each is one
    walk down an index that stops at the first row it may take (a queue of a hundred
    thousand costs what one of a hundred does); the campaigns are tried in a random
    order, so an operator on several works them all. Time-of-day rotation is decided
    when an attempt is recorded (its next try falls in another band), not here."""
    lock = " LIMIT 1"
    if connection.features.has_select_for_update_skip_locked:
        lock += " FOR UPDATE OF ct SKIP LOCKED"
    at = connection.ops.adapt_datetimefield_value(now)
    order = random.sample(campaigns, len(campaigns))
    # The operator's due call backs in every campaign first, then each campaign's pool.
    steps = [(c, _CALLBACKS) for c in order] + [(c, sql) for c in order for sql in _PICKS]
    with connection.cursor() as cursor:
        for campaign, sql in steps:
            params = {
                "campaign": campaign.pk,
                "max_attempts": campaign.max_attempts,
                "operator": operator.pk,
                "now": at,
            }
            cursor.execute(sql + lock, params)
            row = cursor.fetchone()
            if row is not None:
                # Locked above; read whole, with its person and list, in this transaction.
                return CallTarget.objects.select_related("target__target_list").get(pk=row[0])
    return None


@audited(AuditTag.CALL_OUTCOME)
def record_outcome(
    *,
    actor: Any,
    call_target_id: int,
    code: str,
    note: str = "",
    callback_at: datetime | None = None,
    simulated: bool = False,
) -> Attempt:
    """What the call checked out to `actor` came to. Ends the checkout and its grant;
    sets when (and whether) the person is tried again."""
    now = timezone.now()
    call_target = (
        CallTarget.objects.select_for_update(of=("self",))
        .select_related("campaign", "target__target_list")
        .filter(pk=call_target_id, checked_out_by=actor, state=CallTarget.State.CHECKED_OUT)
        .first()
    )
    if call_target is None:
        raise NotPermitted(_("This call is not checked out to you."), code="not_checked_out")
    disposition = dispositions.by_code(code)
    if disposition is None:
        raise AccountError(_("Unknown outcome."), code="unknown_outcome")
    campaign = call_target.campaign
    if disposition.callback and (callback_at is None or callback_at <= now):
        raise AccountError(_("A call back needs a time in the future."), code="callback_time")
    if disposition.callback and callback_at is not None:
        closed = rules.closed_reason(eligibility.calendar(campaign), callback_at)
        if closed is not None:
            raise AccountError(
                _("No calls can be made at that time: %(reason)s")
                % {"reason": eligibility.LABELS[closed]},
                code="callback_closed",
            )
    if call_target.target is None:  # its list shredded meanwhile
        raise AccountError(_("This list has been deleted."), code="list_shredded")
    attempt = Attempt.objects.create(
        call_target=call_target,
        operator=actor,
        disposition=disposition,
        started_at=call_target.checked_out_until - timedelta(minutes=campaign.checkout_minutes),
        ended_at=now,
        band=rules.band(now),
        simulated=simulated,
    )
    if note.strip():
        attempt.note = batches.seal_value(
            call_target.target.target_list, Attempt._meta.db_table, "note", attempt.pk, note
        )
        attempt.save(update_fields=["note"])
    grant_id = call_target.grant_id
    _apply(call_target, disposition, campaign, now, actor, callback_at)
    if disposition.do_not_call and call_target.target.idx_phone:
        DoNotCall.objects.get_or_create(
            insurer_id=call_target.insurer_id,
            idx_phone=bytes(call_target.target.idx_phone),
            defaults={"attempt": attempt},
        )
    vault.release_queue_grant(holder=actor, grant_id=grant_id, target=call_target.target)
    append_event(
        tag=AuditTag.CALL_OUTCOME,
        actor=actor,
        insurer_id=call_target.insurer_id,
        list_id=call_target.target.target_list_id,
        target_id=call_target.target_id,
        details={
            "attempt_id": attempt.pk,
            "campaign_id": campaign.pk,
            "outcome": disposition.code,
        }
        | ({"simulated": True} if simulated else {}),
    )
    return attempt


def _apply(
    call_target: CallTarget,
    disposition: Disposition,
    campaign: Campaign,
    now: datetime,
    operator: Any,
    callback_at: datetime | None,
) -> None:
    call_target.attempts += 1
    call_target.last_band = rules.band(now)
    call_target.last_disposition = disposition
    call_target.reached = call_target.reached or disposition.reached_person
    call_target.intends_to_attend = disposition.intends_to_attend
    call_target.checked_out_by = None
    call_target.checked_out_until = None
    call_target.grant_id = None
    call_target.callback_at = call_target.callback_owner = call_target.callback_release_at = None
    minutes = int(campaign.retry_minutes.get(disposition.code, disposition.retry_minutes))
    if disposition.callback and callback_at is not None:  # (record_outcome requires one)
        call_target.state = CallTarget.State.QUEUED
        call_target.callback_at = call_target.next_at = callback_at
        call_target.callback_owner = operator
        call_target.callback_release_at = callback_at + timedelta(
            minutes=campaign.callback_release_minutes
        )
    elif disposition.number_bad:  # back to phone research
        call_target.state = CallTarget.State.RESEARCH
        call_target.has_phone = False
        Target.objects.filter(pk=call_target.target_id).update(has_phone=False)
        # The same person waiting in other campaigns is not called on it either.
        CallTarget.objects.filter(
            target_id=call_target.target_id, state=CallTarget.State.QUEUED
        ).exclude(pk=call_target.pk).update(has_phone=False, state=CallTarget.State.RESEARCH)
    elif not disposition.callable_again or call_target.attempts >= campaign.max_attempts:
        call_target.state = CallTarget.State.DONE
    else:
        call_target.state = CallTarget.State.QUEUED
        call_target.next_at = now + timedelta(minutes=minutes)
        if not (disposition.reached_person or disposition.reached_household) and minutes >= 60:
            # Nobody answered: try them next at another time of day.
            call_target.next_at = rules.in_another_band(call_target.next_at, now)
    call_target.save(update_fields=_OUTCOME_FIELDS)


# What an outcome changes on the call target (`_apply`).
_OUTCOME_FIELDS = [
    "attempts",
    "last_band",
    "last_disposition",
    "reached",
    "intends_to_attend",
    "checked_out_by",
    "checked_out_until",
    "grant_id",
    "callback_at",
    "callback_owner",
    "callback_release_at",
    "state",
    "next_at",
    "has_phone",
]
