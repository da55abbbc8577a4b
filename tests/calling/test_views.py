"""The pages and the API of calling: the operator's one-call screen, the board, the
insurer's progress — and that another insurer's staff get 404."""

import json

from tests.calling.conftest import running_campaign
from tests.conftest import verified_client
from yobikake.audit.models import Event
from yobikake.audit.tags import AuditTag
from yobikake.calling.models import CallTarget


def test_the_operator_works_a_call_on_one_screen(calling_day, world):
    campaign, _, people = running_campaign(
        world, count=6, holdout_share=0, script="{氏名}様、{保険者}です。"
    )
    client = verified_client(world.operator)
    idle = client.get("/calls/")
    assert idle.status_code == 200 and 'data-testid="next-call"' in idle.text
    shown = client.post("/calls/next/")
    assert shown.status_code == 200
    ct = CallTarget.objects.get(state=CallTarget.State.CHECKED_OUT)
    person = next(p for p in people if p.name_kanji in shown.text)
    assert f'href="tel:{"".join(c for c in person.phone if c.isdigit())}"' in shown.text
    assert f"{person.name_kanji}様、{world.insurer_a.name}です。" in shown.text
    assert person.address not in shown.text and person.insured_number not in shown.text
    assert Event.objects.filter(tag=AuditTag.REVEAL_CALL, target_id=ct.target_id).exists()
    # The outcome, then straight to the next call.
    after = client.post(f"/calls/{ct.pk}/outcome/", {"code": "busy", "then": "next"})
    assert after.status_code == 200
    ct.refresh_from_db()
    assert ct.state == CallTarget.State.QUEUED and ct.attempts == 1
    assert CallTarget.objects.get(state=CallTarget.State.CHECKED_OUT).pk != ct.pk
    assert campaign.call_targets.count() == 6


def test_an_outcome_for_a_call_not_yours_is_refused(calling_day, world):
    running_campaign(world, count=3, holdout_share=0)
    ct = CallTarget.objects.filter(has_phone=True).first()
    response = verified_client(world.operator).post(
        f"/calls/{ct.pk}/outcome/", {"code": "declined"}, follow=True
    )
    assert "この架電はあなたに割り当てられていません。" in response.text
    ct.refresh_from_db()
    assert ct.attempts == 0
    assert Event.objects.filter(tag=AuditTag.CALL_OUTCOME, outcome=Event.Outcome.DENIED).exists()


def test_operators_do_not_browse_campaigns_or_the_board(calling_day, world):
    campaign, _, _ = running_campaign(world, count=2)
    client = verified_client(world.operator)
    for path in ("/campaigns/", "/campaigns/board/", f"/campaigns/{campaign.pk}/"):
        assert client.get(path).status_code == 403, path


def test_the_supervisor_board_shows_the_funnel_reasons_and_operators(calling_day, world):
    campaign, _, _ = running_campaign(world, count=20, seed=3)
    operator = verified_client(world.operator)
    operator.post("/calls/next/")
    board = verified_client(world.supervisor).get("/campaigns/board/live/")
    assert board.status_code == 200
    assert 'data-testid="reason-holdout">2<' in board.text
    assert 'data-testid="reason-on_a_call">1<' in board.text
    assert world.operator.username in board.text
    assert f'data-testid="funnel-{campaign.pk}"' in board.text


def test_the_insurer_sees_its_own_progress_and_another_insurer_gets_404(calling_day, world):
    campaign, _, _ = running_campaign(world, count=10, seed=4, holdout_share=0)
    operator = verified_client(world.operator)
    operator.post("/calls/next/")
    ct = CallTarget.objects.get(state=CallTarget.State.CHECKED_OUT)
    operator.post(f"/calls/{ct.pk}/outcome/", {"code": "intends"})
    own = verified_client(world.staff_a)
    page = own.get(f"/campaigns/{campaign.pk}/")
    assert page.status_code == 200 and 'data-testid="funnel-intends">1<' in page.text
    api = own.get(f"/api/v1/campaigns/{campaign.pk}/progress")
    assert api.status_code == 200
    body = api.json()
    assert body["funnel"]["intends"] == 1 and body["outcomes"]["intends"] == 1
    assert body["funnel"]["targets"] == 10
    other = verified_client(world.staff_b)
    assert other.get(f"/campaigns/{campaign.pk}/").status_code == 404
    assert other.get(f"/api/v1/campaigns/{campaign.pk}/progress").status_code == 404
    assert other.get("/api/v1/campaigns/999999/progress").status_code == 404
    denials = Event.objects.filter(tag=AuditTag.CAMPAIGN_DENY, actor_user_id=world.staff_b.pk)
    reasons = sorted(e.reason for e in denials)
    assert reasons == ["missing", "not_yours", "not_yours"]
    assert json.loads(denials.filter(reason="not_yours").first().details) == {
        "campaign_id": campaign.pk
    }
    assert campaign.name not in other.get("/campaigns/").text


def test_a_supervisor_creates_assigns_and_starts_a_campaign_on_its_pages(calling_day, world):
    from tests.conftest import load_people
    from yobikake.calling.models import Campaign

    target_list, _ = load_people(world, count=30, seed=8)
    supervisor = verified_client(world.supervisor)
    form = supervisor.get("/campaigns/new/")
    assert form.status_code == 200 and "テスト市A 2022年度（30人）" in form.text
    refused = supervisor.post(
        "/campaigns/new/",
        {"target_list": target_list.pk, "window_start": "20:00", "window_end": "09:00",
         "max_attempts": 3, "holdout_share": "0.10"},
    )  # fmt: skip
    assert refused.status_code == 200 and not Campaign.objects.exists()
    created = supervisor.post(
        "/campaigns/new/",
        {"target_list": target_list.pk, "window_start": "09:00", "window_end": "20:00",
         "max_attempts": 2, "holdout_share": "0.20", "script": "{氏名}様"},
    )  # fmt: skip
    campaign = Campaign.objects.get()
    assert created.status_code == 302 and created["Location"] == f"/campaigns/{campaign.pk}/"
    assert (campaign.state, campaign.max_attempts, campaign.starts.isoformat()) == (
        "draft",
        2,
        "2022-09-01",
    )  # the contract's calling period
    draft = supervisor.get(f"/campaigns/{campaign.pk}/").text
    assert f"<title>{campaign.name} |" in draft
    body = draft.split("</title>", 1)[1]
    assert 'data-testid="operators-form"' in body and 'data-testid="start"' in body
    staff_page = verified_client(world.staff_a).get(f"/campaigns/{campaign.pk}/").text
    assert "operators-form" not in staff_page and 'data-testid="start"' not in staff_page
    supervisor.post(f"/campaigns/{campaign.pk}/operators/", {"operators": [world.operator.pk]})
    assert list(campaign.operators.all()) == [world.operator]
    page = supervisor.post(f"/campaigns/{campaign.pk}/start/", follow=True)
    campaign.refresh_from_db()
    assert campaign.state == "running" and campaign.holdout_seed is not None
    assert f'data-testid="holdout-seed">{campaign.holdout_seed}<' in page.text
    assert CallTarget.objects.filter(campaign=campaign, holdout=True).count() == 6
    assert services_next(world.operator).campaign_id == campaign.pk
    # Insurer staff and operators may not create or start campaigns.
    for user in (world.staff_a, world.operator):
        client = verified_client(user)
        assert client.get("/campaigns/new/").status_code == 403
        assert client.post(f"/campaigns/{campaign.pk}/start/").status_code == 403


def services_next(operator):
    from yobikake.calling import services

    return services.next_call(operator=operator).call_target


def test_a_call_back_time_typed_on_the_screen_is_tokyo_time(calling_day, world):
    from datetime import datetime

    from yobikake.calling.rules import TOKYO

    running_campaign(world, count=3, holdout_share=0)
    client = verified_client(world.operator)
    client.post("/calls/next/")
    ct = CallTarget.objects.get(state=CallTarget.State.CHECKED_OUT)
    client.post(f"/calls/{ct.pk}/outcome/", {"code": "callback", "callback_at": "2022-10-04T15:30"})
    ct.refresh_from_db()
    assert ct.callback_at == datetime(2022, 10, 4, 15, 30, tzinfo=TOKYO)


def test_a_supervisor_closes_a_campaign_and_nobody_in_it_is_called_again(calling_day, world):
    from datetime import timedelta

    import pytest

    from yobikake.accounts.errors import AccountError
    from yobikake.calling import services
    from yobikake.calling.models import Campaign

    campaign, _, _ = running_campaign(world, count=10, seed=9, holdout_share=0)
    operator = verified_client(world.operator)
    operator.post("/calls/next/")
    on_call = CallTarget.objects.get(state=CallTarget.State.CHECKED_OUT)
    supervisor = verified_client(world.supervisor)
    page = supervisor.get(f"/campaigns/{campaign.pk}/").text
    assert 'data-testid="close"' in page
    # Not while the operator is on the phone.
    refused = supervisor.post(f"/campaigns/{campaign.pk}/close/", follow=True)
    assert "オペレーターがこのキャンペーンの架電中です" in refused.text
    campaign.refresh_from_db()
    assert campaign.state == Campaign.State.RUNNING
    assert Event.objects.filter(
        tag=AuditTag.CAMPAIGN_CLOSE, outcome=Event.Outcome.DENIED, reason="calls_in_progress"
    ).exists()
    # The checkout's time runs out (the operator walked away): now it closes.
    calling_day.shift(timedelta(minutes=campaign.checkout_minutes + 1))
    closed = supervisor.post(f"/campaigns/{campaign.pk}/close/", follow=True)
    assert "キャンペーンを終了しました" in closed.text and 'data-testid="closed-at"' in closed.text
    assert 'data-testid="close"' not in closed.text
    campaign.refresh_from_db()
    on_call.refresh_from_db()
    assert campaign.state == Campaign.State.CLOSED and campaign.closed_at is not None
    assert on_call.state == CallTarget.State.QUEUED and on_call.checked_out_by is None
    event = Event.objects.get(tag=AuditTag.CAMPAIGN_CLOSE, outcome=Event.Outcome.ALLOWED)
    assert event.actor_user_id == world.supervisor.pk and event.insurer_id == world.insurer_a.pk
    assert json.loads(event.details) == {
        "campaign_id": campaign.pk,
        "called_arm": 10,
        "attempted": 0,
        "reached": 0,
    }
    with pytest.raises(services.NothingToCall):
        services.next_call(operator=world.operator)
    with pytest.raises(AccountError) as again:
        services.close_campaign(actor=world.supervisor, campaign=campaign)
    assert again.value.code == "not_running"
    with pytest.raises(AccountError) as staffed:
        services.assign_operators(actor=world.supervisor, campaign=campaign, operators=[])
    assert staffed.value.code == "closed" and campaign.operators.count() == 1
    assert 'data-testid="operators-form"' not in closed.text
    # Insurer staff and operators may not close one; another insurer's staff see nothing.
    for user in (world.staff_a, world.operator):
        assert verified_client(user).post(f"/campaigns/{campaign.pk}/close/").status_code == 403
    assert verified_client(world.staff_b).get(f"/campaigns/{campaign.pk}/").status_code == 404
