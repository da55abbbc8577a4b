"""The queue: what "next call" hands out, what an outcome does, and who is never called."""

import json
from datetime import date, timedelta

import pytest
from django.utils import timezone

from tests.calling.conftest import approve_terms, running_campaign
from tests.conftest import load_people, make_user
from tests.custody_helpers import open_in_custody
from yobikake.accounts.errors import AccountError, NotPermitted
from yobikake.accounts.permissions import Role
from yobikake.audit.models import Event
from yobikake.audit.tags import AuditTag
from yobikake.calling import rules, services
from yobikake.calling.eligibility import Reason, reason
from yobikake.calling.models import Attempt, CallTarget, Campaign, DoNotCall
from yobikake.custody.sealing import CannotOpen
from yobikake.intake.models import Target
from yobikake.vault.models import Grant, Purpose
from yobikake.vault.reveal import RevealRefused, reveal


def work(operator, code="no_answer", **extra):
    """Check the next call out and record `code` for it; the call target."""
    checkout = services.next_call(operator=operator)
    services.record_outcome(
        actor=operator, call_target_id=checkout.call_target.pk, code=code, **extra
    )
    return checkout.call_target


def drain(operator, code):
    """Work calls until there is nothing to call; the call targets' ids in order."""
    worked = []
    while True:
        try:
            worked.append(work(operator, code).pk)
        except services.NothingToCall:
            return worked


def test_starting_fixes_a_reproducible_holdout_and_records_its_seed(calling_day, world):
    campaign, target_list, _ = running_campaign(world, count=60, seed=7)
    held = set(
        CallTarget.objects.filter(campaign=campaign, holdout=True).values_list(
            "target_id", flat=True
        )
    )
    ids = list(Target.objects.filter(target_list=target_list).values_list("pk", flat=True))
    assert len(held) == 6  # 10% of 60
    assert held == rules.holdout(7, ids, 0.10) == rules.holdout(7, list(reversed(ids)), 0.10)
    assert held != rules.holdout(8, ids, 0.10)
    event = Event.objects.get(tag=AuditTag.CAMPAIGN_START)
    assert json.loads(event.details) == {
        "campaign_id": campaign.pk,
        "holdout": 6,
        "holdout_seed": 7,
        "targets": 60,
    }
    assert campaign.holdout_seed == 7


def test_holdout_targets_are_never_offered(calling_day, world):
    campaign, _, _ = running_campaign(world, count=30, seed=3, max_attempts=1)
    offered = []
    while True:
        try:
            offered.append(work(world.operator).target_id)
        except services.NothingToCall as exc:
            assert exc.code == "queue_empty"
            break
    held = set(
        CallTarget.objects.filter(campaign=campaign, holdout=True).values_list(
            "target_id", flat=True
        )
    )
    callable_ = CallTarget.objects.filter(campaign=campaign, holdout=False, has_phone=True)
    assert held and not held & set(offered)
    assert sorted(offered) == sorted(callable_.values_list("target_id", flat=True))
    assert len(offered) == len(set(offered))


def test_an_operator_reveals_only_the_call_checked_out_to_them(calling_day, world):
    running_campaign(world, count=10)
    checkout = services.next_call(operator=world.operator)
    shown = reveal(world.operator, checkout.call_target.target, Purpose.CALL)
    assert shown["phone"]
    other = Target.objects.exclude(pk=checkout.call_target.target_id).filter(has_phone=True).first()
    with pytest.raises(RevealRefused) as refused:
        reveal(world.operator, other, Purpose.CALL)
    assert refused.value.code == "no_grant"
    grant = Grant.objects.get(pk=checkout.grant.pk)
    assert grant.holder_id == grant.issued_by_id == world.operator.pk
    issue = Event.objects.filter(tag=AuditTag.GRANT_ISSUE).latest("seq")
    assert json.loads(issue.details)["call_target_id"] == checkout.call_target.pk
    # After the outcome, the person is gone from the operator's reach.
    services.record_outcome(
        actor=world.operator, call_target_id=checkout.call_target.pk, code="busy"
    )
    with pytest.raises(RevealRefused):
        reveal(world.operator, checkout.call_target.target, Purpose.CALL)


def test_a_reloaded_page_gets_the_same_call_back(calling_day, world):
    running_campaign(world, count=10)
    first = services.next_call(operator=world.operator)
    again = services.next_call(operator=world.operator)
    assert again.call_target.pk == first.call_target.pk
    assert Grant.objects.filter(holder=world.operator, released_at__isnull=True).count() == 1


def test_only_assigned_operators_of_running_campaigns_get_calls(calling_day, world):
    running_campaign(world, count=5)
    other = make_user("operator-2", world.call_centre, Role.OPERATOR)
    with pytest.raises(services.NothingToCall) as nothing:
        services.next_call(operator=other)
    assert nothing.value.code == "no_campaign"
    with pytest.raises(NotPermitted):
        services.next_call(operator=world.researcher)


def test_outcomes_space_retries_and_stop_at_the_maximum(calling_day, world):
    running_campaign(world, count=3, seed=2, max_attempts=2)
    first = work(world.operator, "busy")
    ct = CallTarget.objects.get(pk=first.pk)
    assert ct.state == CallTarget.State.QUEUED and ct.attempts == 1
    assert reason(ct, timezone.now(), blocked=False) == Reason.SPACING
    calling_day.shift(timedelta(minutes=31))
    assert first.pk in drain(world.operator, "busy")
    calling_day.shift(timedelta(minutes=31))
    drain(world.operator, "busy")
    ct.refresh_from_db()
    assert ct.state == CallTarget.State.DONE and ct.attempts == 2
    assert reason(ct, timezone.now(), blocked=False) == Reason.MAX_ATTEMPTS
    assert Attempt.objects.filter(call_target=ct).count() == 2
    events = Event.objects.filter(tag=AuditTag.CALL_OUTCOME, target_id=ct.target_id)
    assert [json.loads(e.details)["outcome"] for e in events.order_by("seq")] == ["busy", "busy"]


def test_final_outcomes_end_the_calling(calling_day, world):
    running_campaign(world, count=4, seed=5)
    ct = work(world.operator, "intends")
    ct.refresh_from_db()
    assert ct.state == CallTarget.State.DONE and ct.intends_to_attend and ct.reached
    assert reason(ct, timezone.now(), blocked=False) == Reason.DONE


def test_a_wrong_number_goes_back_to_phone_research(calling_day, world):
    running_campaign(world, count=4, seed=5)
    ct = work(world.operator, "wrong_number")
    ct.refresh_from_db()
    assert ct.state == CallTarget.State.RESEARCH and not ct.has_phone
    assert not Target.objects.get(pk=ct.target_id).has_phone


def test_a_call_back_is_the_operators_own_then_released_to_the_pool(calling_day, world):
    campaign, _, _ = running_campaign(world, count=2, seed=4, holdout_share=0)
    colleague = make_user("operator-2", world.call_centre, Role.OPERATOR)
    services.assign_operators(
        actor=world.supervisor, campaign=campaign, operators=[world.operator, colleague]
    )
    at = timezone.now() + timedelta(hours=2)
    with pytest.raises(AccountError):
        work(world.operator, "callback")  # no time given
    ct = CallTarget.objects.get(state=CallTarget.State.CHECKED_OUT)
    services.record_outcome(
        actor=world.operator, call_target_id=ct.pk, code="callback", callback_at=at
    )
    other = work(colleague, "declined")  # the colleague gets the other person
    assert other.pk != ct.pk
    calling_day.shift(timedelta(hours=2, minutes=1))
    with pytest.raises(services.NothingToCall):
        services.next_call(operator=colleague)  # still reserved for its operator
    ct.refresh_from_db()
    assert reason(ct, timezone.now(), operator=colleague, blocked=False) == Reason.CALLBACK_RESERVED
    assert reason(ct, timezone.now(), operator=world.operator, blocked=False) is None
    calling_day.shift(timedelta(minutes=15))
    assert services.next_call(operator=colleague).call_target.pk == ct.pk


def test_an_abandoned_checkout_returns_to_the_pool(calling_day, world):
    campaign, _, _ = running_campaign(world, count=1, seed=6, holdout_share=0)
    colleague = make_user("operator-2", world.call_centre, Role.OPERATOR)
    services.assign_operators(
        actor=world.supervisor, campaign=campaign, operators=[world.operator, colleague]
    )
    taken = services.next_call(operator=world.operator)
    with pytest.raises(services.NothingToCall):
        services.next_call(operator=colleague)
    calling_day.shift(timedelta(minutes=campaign.checkout_minutes + 1))
    assert services.next_call(operator=colleague).call_target.pk == taken.call_target.pk
    with pytest.raises(NotPermitted):
        services.record_outcome(
            actor=world.operator, call_target_id=taken.call_target.pk, code="busy"
        )
    with pytest.raises(RevealRefused):
        reveal(world.operator, taken.call_target.target, Purpose.CALL)


def test_do_not_call_in_one_campaign_blocks_the_number_in_another(calling_day, world):
    # The same people on two lists of the insurer (a list and a supplementary one), one
    # campaign each.
    campaigns = []
    for _ in range(2):
        target_list, _ = load_people(world, count=6, seed=9, fiscal_year=2022)
        campaign = services.create_campaign(
            actor=world.supervisor,
            insurer=world.insurer_a,
            fiscal_year=2022,
            lists=[target_list],
            holdout_share=0,
            starts=timezone.localdate(),
            ends=timezone.localdate() + timedelta(days=30),
        )
        services.assign_operators(
            actor=world.supervisor, campaign=campaign, operators=[world.operator]
        )
        approve_terms(world, campaign)
        campaigns.append(services.start_campaign(actor=world.supervisor, campaign=campaign, seed=1))
    Campaign.objects.filter(pk=campaigns[1].pk).update(state=Campaign.State.DRAFT)
    stopped = work(world.operator, "do_not_call")
    number = Target.objects.get(pk=stopped.target_id).idx_phone
    assert DoNotCall.objects.filter(insurer=world.insurer_a, idx_phone=number).exists()
    Campaign.objects.filter(pk=campaigns[0].pk).update(state=Campaign.State.CLOSED)
    Campaign.objects.filter(pk=campaigns[1].pk).update(state=Campaign.State.RUNNING)
    twin = CallTarget.objects.get(campaign=campaigns[1], target__idx_phone=number)
    assert reason(twin, timezone.now(), blocked=True) == Reason.DO_NOT_CALL
    offered = drain(world.operator, "declined")
    assert twin.pk not in offered
    assert (
        len(offered) == CallTarget.objects.filter(campaign=campaigns[1], has_phone=True).count() - 1
    )


def test_the_note_is_sealed_to_the_list_s_public_key(calling_day, world):
    _campaign, target_list, _ = running_campaign(world, count=3, seed=2)
    ct = work(world.operator, "considering", note="夕方なら在宅とのこと")
    attempt = Attempt.objects.get(call_target=ct)
    assert attempt.note and "夕方".encode() not in bytes(attempt.note)
    # Under a batch key of its own, wrapped to the list's public key: only custody opens it,
    # bound to its attempt.
    table = Attempt._meta.db_table
    assert open_in_custody(target_list, table, "note", attempt.pk, attempt.note) == (
        "夕方なら在宅とのこと"
    )
    with pytest.raises(CannotOpen):
        open_in_custody(target_list, table, "note", attempt.pk + 1, attempt.note)


def test_a_call_back_may_not_be_booked_when_no_calls_are_made(calling_day, world):
    running_campaign(world, count=3, seed=5, holdout_share=0)
    checkout = services.next_call(operator=world.operator)
    sunday = timezone.now() + timedelta(days=5)  # Tuesday 10:00 + 5 days
    evening = timezone.now() + timedelta(hours=11)  # 21:00
    for when in (sunday, evening):
        with pytest.raises(AccountError) as refused:
            services.record_outcome(
                actor=world.operator,
                call_target_id=checkout.call_target.pk,
                code="callback",
                callback_at=when,
            )
        assert refused.value.code == "callback_closed"


def test_a_call_back_booked_on_the_last_attempt_is_still_made(calling_day, world):
    running_campaign(world, count=1, seed=6, holdout_share=0, max_attempts=1)
    ct = work(world.operator, "callback", callback_at=timezone.now() + timedelta(hours=2))
    calling_day.shift(timedelta(hours=2, minutes=1))
    again = services.next_call(operator=world.operator)
    assert again.call_target.pk == ct.pk


def test_an_abandoned_call_back_checkout_does_not_stall_the_others(calling_day, world):
    campaign, _, _ = running_campaign(world, count=4, seed=4, holdout_share=0)
    colleague = make_user("operator-2", world.call_centre, Role.OPERATOR)
    services.assign_operators(
        actor=world.supervisor, campaign=campaign, operators=[world.operator, colleague]
    )
    ct = work(world.operator, "callback", callback_at=timezone.now() + timedelta(hours=2))
    calling_day.shift(timedelta(hours=2))
    services.next_call(operator=world.operator)  # the call back, then left open
    calling_day.shift(timedelta(minutes=11))  # the checkout lapsed, the call back is not free
    taken = services.next_call(operator=colleague)
    assert taken.call_target.pk != ct.pk


def test_each_campaign_year_gets_its_blackout_days(calling_day, world):
    from yobikake.calling.models import BlackoutPeriod

    running_campaign(world, count=2, seed=1, fiscal_year=2021)
    running_campaign(world, count=2, seed=2, fiscal_year=2022)
    periods = set(BlackoutPeriod.objects.values_list("starts", "label"))
    assert (date(2022, 8, 13), "お盆") in periods and (date(2022, 12, 29), "年末年始") in periods
    assert (date(2021, 8, 13), "お盆") in periods
