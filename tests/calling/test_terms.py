"""A campaign lies within its list's contract: its calling period, the list's retention
deadline (both as the audit log recorded them); calling hours outside the contract's, or
a control group below YOBIKAKE_CONTROL_GROUP_MIN_PERCENT, need the insurer's approval on
the record before it starts (calling/terms.py)."""

import json
from datetime import date, datetime, time
from io import StringIO

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils.translation import override

from tests.conftest import load_people, verified_client
from tests.pii import LOADED_PEOPLE
from tests.tenancy.test_api import bearer
from yobikake.accounts.errors import AccountError, NotPermitted
from yobikake.audit.models import Alert, Event
from yobikake.audit.tags import AuditTag
from yobikake.calling import services, terms
from yobikake.calling.models import Campaign
from yobikake.calling.rules import TOKYO
from yobikake.exports.models import Approval
from yobikake.intake.services import load_target_list
from yobikake.synth.people import synthetic_people
from yobikake.tenancy import services as tenancy
from yobikake.tenancy.models import Contract

ALL_DAY = {"window_start": time(0, 0), "window_end": time(23, 59), "saturdays": True}


def _denials(tag, reason):
    return Event.objects.filter(tag=tag, outcome=Event.Outcome.DENIED, reason=reason)


def _create(world, target_list, **settings):
    return services.create_campaign(
        actor=world.supervisor,
        insurer=world.insurer_a,
        fiscal_year=target_list.fiscal_year,
        lists=[target_list],
        **settings,
    )


def test_a_campaign_over_a_stale_list_outside_its_contract_is_refused(calling_day, world):
    # The seed's case: an old list called again today, all day, with no control group.
    target_list, _ = load_people(world, count=4, fiscal_year=2021)
    with override("ja"), pytest.raises(AccountError) as refused:
        _create(
            world,
            target_list,
            starts=date(2022, 10, 4),
            ends=date(2022, 10, 31),
            holdout_share=0,
            **ALL_DAY,
        )
    assert refused.value.code == "outside_contract_period"
    assert "契約の架電期間（2021-09-01〜2021-12-20）" in str(refused.value)
    assert not Campaign.objects.exists()
    denial = _denials(AuditTag.CAMPAIGN_CREATE, "outside_contract_period").get()
    assert denial.actor_user_id == world.supervisor.pk


def test_calling_days_beyond_the_contract_period_are_refused(calling_day, world):
    target_list, _ = load_people(world, count=4)
    with pytest.raises(AccountError, match="2022-09-01"):
        _create(world, target_list, starts=date(2022, 10, 4), ends=date(2022, 12, 27))
    assert not Campaign.objects.exists()


def test_a_list_past_its_recorded_retention_deadline_is_not_called_again(world):
    """The deadline goes by the contract's creation event: a column moved later in the
    database does not reopen the list."""
    with time_machine.travel(datetime(2023, 6, 1, 10, tzinfo=TOKYO), tick=True):
        contract = tenancy.create_contract(
            actor=world.fed_admin,
            insurer=world.insurer_b,
            fiscal_year=2023,
            calling_starts=date(2023, 9, 1),
            calling_ends=date(2023, 12, 20),
            retention_until=date(2024, 3, 31),
        )
    Contract.objects.filter(pk=contract.pk).update(retention_until=date(2030, 3, 31))
    with time_machine.travel(datetime(2024, 5, 7, 10, tzinfo=TOKYO), tick=True):
        people = synthetic_people(3, seed=2, fiscal_year=2023)
        LOADED_PEOPLE.extend(people)
        target_list = load_target_list(
            actor=world.staff_b, insurer=world.insurer_b, fiscal_year=2023, people=people
        )
        with override("ja"), pytest.raises(AccountError) as refused:
            services.create_campaign(
                actor=world.supervisor,
                insurer=world.insurer_b,
                fiscal_year=2023,
                lists=[target_list],
            )
    assert refused.value.code == "past_retention"
    assert "保存期限（2024-03-31）" in str(refused.value)
    assert _denials(AuditTag.CAMPAIGN_CREATE, "past_retention").exists()


def test_hours_outside_the_contract_need_the_insurers_approval_before_the_start(calling_day, world):
    target_list, _ = load_people(world, count=6)
    campaign = _create(world, target_list, **ALL_DAY)
    assert campaign.state == Campaign.State.DRAFT
    created = Event.objects.get(tag=AuditTag.CAMPAIGN_CREATE, outcome="allowed")
    assert json.loads(created.details)["needs_approval"] == "hours"
    request = terms.awaiting(campaign)
    assert request is not None and request.requested_by == world.supervisor
    asked = Event.objects.get(tag=AuditTag.APPROVAL_REQUEST)
    assert json.loads(asked.details) == {
        "approval_id": request.pk,
        "campaign_id": campaign.pk,
        "kind": "campaign_terms",
        "terms": "hours",
    }

    # Started without the approval: refused, on the record, and an alert.
    with override("ja"), pytest.raises(AccountError) as refused:
        services.start_campaign(actor=world.supervisor, campaign=campaign)
    assert refused.value.code == "approval_required"
    assert "契約の架電時間 09:00〜20:00 の外" in str(refused.value)
    denial = _denials(AuditTag.CAMPAIGN_START, "approval_required").get()
    assert json.loads(denial.details) == {"campaign_id": campaign.pk}
    assert denial.insurer_id == world.insurer_a.pk
    alert = Alert.objects.get(rule="campaign_unapproved")
    assert alert.event_seq == denial.seq and alert.subject_user_id == world.supervisor.pk
    campaign.refresh_from_db()
    assert campaign.state == Campaign.State.DRAFT and not campaign.call_targets.exists()

    # The supervisor cannot approve it; insurer B's staff neither.
    for stranger in (world.supervisor, world.staff_b):
        with pytest.raises(NotPermitted):
            services.approve_campaign_terms(actor=stranger, campaign=campaign)
    refusals = Event.objects.filter(tag=AuditTag.APPROVAL_APPROVE, outcome="denied")
    assert sorted(refusals.values_list("reason", flat=True)) == ["other_insurer", "own_request"]

    approval = services.approve_campaign_terms(actor=world.staff_a, campaign=campaign)
    assert approval.state == Approval.State.APPROVED and approval.decided_by == world.staff_a
    started = services.start_campaign(actor=world.supervisor, campaign=campaign, seed=3)
    assert started.state == Campaign.State.RUNNING
    approval.refresh_from_db()
    assert approval.state == Approval.State.USED and approval.used_by == world.supervisor
    start = Event.objects.get(tag=AuditTag.CAMPAIGN_START, outcome="allowed")
    assert json.loads(start.details)["approval_id"] == approval.pk


def test_a_control_group_below_the_minimum_needs_the_approval(calling_day, world, settings):
    target_list, _ = load_people(world, count=6)
    settings.YOBIKAKE_CONTROL_GROUP_MIN_PERCENT = 20
    campaign = _create(world, target_list, holdout_share=0.1)
    with override("ja"), pytest.raises(AccountError, match="対照群 10%（下限 20% 未満）"):
        services.start_campaign(actor=world.supervisor, campaign=campaign)
    settings.YOBIKAKE_CONTROL_GROUP_MIN_PERCENT = 10
    assert services.start_campaign(actor=world.supervisor, campaign=campaign).state == "running"


def test_the_approval_covers_only_the_terms_it_was_given_for(calling_day, world):
    target_list, _ = load_people(world, count=6)
    campaign = _create(world, target_list, holdout_share=0.02)
    services.approve_campaign_terms(actor=world.staff_a, campaign=campaign)
    # Edited in the database after the approval: no control group at all.
    Campaign.objects.filter(pk=campaign.pk).update(holdout_share=0)
    with pytest.raises(AccountError) as refused:
        services.start_campaign(actor=world.supervisor, campaign=campaign)
    assert refused.value.code == "approval_required"


def test_an_approval_written_into_the_database_is_refused_with_a_critical_alert(calling_day, world):
    target_list, _ = load_people(world, count=6)
    campaign = _create(world, target_list, **ALL_DAY)
    Approval.objects.filter(kind=terms.KIND).update(
        state=Approval.State.APPROVED, decided_by=world.staff_a
    )
    with pytest.raises(NotPermitted) as refused:
        services.start_campaign(actor=world.supervisor, campaign=campaign)
    assert refused.value.code == "forged_authorization"
    assert Alert.objects.filter(rule="forged_authorization", severity="critical").exists()


def test_the_contract_hours_as_recorded_hold_against_a_widened_column(calling_day, world):
    contract = tenancy.create_contract(
        actor=world.fed_admin,
        insurer=world.insurer_a,
        fiscal_year=2023,
        calling_starts=date(2023, 9, 1),
        calling_ends=date(2023, 12, 20),
        retention_until=date(2025, 3, 31),
        calling_from=time(10, 0),
        calling_until=time(19, 0),
    )
    made = json.loads(Event.objects.get(tag=AuditTag.CONTRACT_CREATE).details)
    assert (made["hours_from"], made["hours_until"]) == (1000, 1900)
    assert (made["period_starts"], made["period_ends"]) == (20230901, 20231220)
    Contract.objects.filter(pk=contract.pk).update(calling_from=time(0), calling_until=time(23, 59))
    target_list, _ = load_people(world, count=3, fiscal_year=2023)
    campaign = _create(world, target_list, window_start=time(9, 0), window_end=time(20, 0))
    assert terms.needs(campaign)[1] == [terms.Beyond.HOURS]


def test_the_insurer_approves_on_the_campaign_page_and_insurer_b_gets_404(calling_day, world):
    target_list, _ = load_people(world, count=6)
    supervisor = verified_client(world.supervisor)
    made = supervisor.post(
        "/campaigns/new/",
        {
            "target_list": target_list.pk,
            "window_start": "08:00",
            "window_end": "20:00",
            "max_attempts": 3,
            "holdout_share": "0.10",
        },
    )
    campaign = Campaign.objects.get()
    assert made.status_code == 302
    page = supervisor.get(f"/campaigns/{campaign.pk}/")
    assert "08:00〜20:00（契約の架電時間 09:00〜20:00 の外）" in page.text
    assert 'data-testid="terms-approve"' not in page.text
    refused = supervisor.post(f"/campaigns/{campaign.pk}/start/", follow=True)
    assert "保険者がこのキャンペーンの契約外の条件を承認していません" in refused.text

    other = verified_client(world.staff_b)
    assert other.get(f"/campaigns/{campaign.pk}/").status_code == 404
    assert other.post(f"/campaigns/{campaign.pk}/terms/approve/").status_code == 404
    assert terms.awaiting(campaign) is not None

    staff = verified_client(world.staff_a)
    page = staff.get(f"/campaigns/{campaign.pk}/")
    assert 'data-testid="terms-approve"' in page.text
    staff.post(f"/campaigns/{campaign.pk}/terms/approve/")
    decided = Event.objects.get(tag=AuditTag.APPROVAL_APPROVE, outcome="allowed")
    assert decided.actor_user_id == world.staff_a.pk and decided.insurer_id == world.insurer_a.pk
    supervisor.post(f"/campaigns/{campaign.pk}/start/")
    campaign.refresh_from_db()
    assert campaign.state == Campaign.State.RUNNING


def test_the_api_refuses_in_japanese_and_starts_only_what_the_insurer_approved(calling_day, world):
    old, _ = load_people(world, count=3, fiscal_year=2021)
    target_list, _ = load_people(world, count=3, seed=2)
    auth = bearer(world.supervisor)
    post = Client().post
    stale = post(
        "/api/v1/campaigns",
        json.dumps({"list_id": old.pk, "starts": "2022-10-04", "ends": "2022-10-31"}),
        content_type="application/json",
        **auth,
    )
    assert stale.status_code == 422
    assert "契約の架電期間" in stale.json()["detail"]
    made = post(
        "/api/v1/campaigns",
        json.dumps({"list_id": target_list.pk, "holdout_share": "0.00"}),
        content_type="application/json",
        **auth,
    )
    assert made.status_code == 201, made.content
    body = made.json()
    assert body["needs_approval"] == ["control_group"] and body["approval"] == "requested"
    start = post(f"/api/v1/campaigns/{body['id']}/start", **auth)
    assert start.status_code == 422 and "承認していません" in start.json()["detail"]
    assert post(f"/api/v1/campaigns/{body['id']}/start", **bearer(world.staff_b)).status_code == 403
    services.approve_campaign_terms(actor=world.staff_a, campaign=Campaign.objects.get())
    start = post(f"/api/v1/campaigns/{body['id']}/start", **auth)
    assert start.status_code == 200 and start.json()["state"] == "running"


def test_the_command_line_refuses_in_japanese_and_starts_only_what_the_insurer_approved(
    calling_day, world
):
    old, _ = load_people(world, count=3, fiscal_year=2021)
    target_list, _ = load_people(world, count=3, seed=2)
    with override("ja"), pytest.raises(CommandError, match="契約の架電期間"):
        call_command("calling", "create-campaign", "--list", str(old.pk), "--starts", "2022-10-04")
    out = StringIO()
    with override("ja"):
        call_command(
            "calling",
            "create-campaign",
            "--list",
            str(target_list.pk),
            "--calling-hours",
            "9:00-21:00",
            stdout=out,
        )
    campaign = Campaign.objects.get()
    assert "21:00" in out.getvalue()
    created = Event.objects.get(tag=AuditTag.CAMPAIGN_CREATE, outcome="allowed")
    assert created.actor_user_id is None and json.loads(created.details)["source"] == "cli"
    with override("ja"), pytest.raises(CommandError, match="承認していません"):
        call_command("calling", "start-campaign", str(campaign.pk))
    assert Alert.objects.filter(rule="campaign_unapproved").exists()
