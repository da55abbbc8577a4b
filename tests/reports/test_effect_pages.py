"""The effect of a campaign from the database: the numbers, the API, the page with its
chart, the downloads and `yobikake report effect` — and another insurer gets 404."""

import csv
import io
import json

from django.core.management import call_command

from tests.calling.conftest import running_campaign
from tests.conftest import verified_client
from yobikake.audit.models import Event
from yobikake.audit.tags import AuditTag
from yobikake.calling.models import CallTarget
from yobikake.reports.effect import Tally
from yobikake.reports.selectors import campaign_effect
from yobikake.synth.results import plant_checkup_results


def started(world, count=60):
    campaign, _, _ = running_campaign(world, count=count, seed=11, holdout_share=0.4)
    plant_checkup_results(campaign, p0=0.3, effect=0.2, seed=3)
    return campaign


def arm(campaign, holdout):
    targets = CallTarget.objects.filter(campaign=campaign, holdout=holdout)
    return Tally(targets.count(), targets.filter(attended_on__isnull=False).count())


def test_the_effect_compares_everyone_assigned_to_be_called_with_the_holdout(calling_day, world):
    campaign = started(world)
    # Reached or not, everyone assigned counts (intention to treat).
    CallTarget.objects.filter(campaign=campaign, holdout=False, has_phone=True).update(reached=True)
    effect = campaign_effect(campaign)
    called, holdout = arm(campaign, False), arm(campaign, True)
    assert called.n + holdout.n == 60 and holdout.n >= 10
    assert effect.overall.called == called and effect.overall.holdout == holdout
    assert effect.overall.difference == called.uptake - holdout.uptake
    # The few not reached are a small cell: suppressed, and the reached with them (shown,
    # they would give the not reached back from the called arm's total).
    assert effect.not_reached == Tally() and effect.reached == Tally()


def test_the_insurer_gets_its_campaigns_effect_and_another_insurer_404(calling_day, world):
    campaign = started(world)
    body = verified_client(world.staff_a).get(f"/api/v1/campaigns/{campaign.pk}/effect").json()
    called = arm(campaign, False)
    assert body["overall"]["called"] == {
        "n": called.n,
        "attended": called.attended,
        "uptake": round(called.uptake, 6),
    }
    assert body["reached_split"]["biased"] is True and "Newcombe" in body["method"]
    assert [c["cell"] for c in body["by_sex"]] == ["sex-1", "sex-2"]
    for path in (f"/api/v1/campaigns/{campaign.pk}/effect", f"/campaigns/{campaign.pk}/effect/"):
        assert verified_client(world.staff_b).get(path).status_code == 404, path
    denials = Event.objects.filter(tag=AuditTag.CAMPAIGN_DENY, actor_user_id=world.staff_b.pk)
    assert denials.count() == 2 and {e.reason for e in denials} == {"not_yours"}


def test_the_effect_page_draws_its_chart_and_offers_downloads(calling_day, world):
    campaign = started(world)
    client = verified_client(world.staff_a)
    page = client.get(f"/campaigns/{campaign.pk}/effect/")
    assert page.status_code == 200
    assert 'data-testid="effect-chart"' in page.text and "<svg" in page.text
    assert (
        'data-testid="bar-all-called"' in page.text
        and "<script" not in page.text.split("<svg")[1].split("</svg>")[0]
    )
    assert 'data-testid="biased"' in page.text
    # Planted by synth, and calling still running: both said on the page and in the API.
    assert "合成データの受診結果です" in page.text and 'data-testid="interim"' in page.text
    event = Event.objects.get(tag=AuditTag.CHECKUP_RESULTS_SYNTHETIC)
    assert event.insurer_id == world.insurer_a.pk
    assert json.loads(event.details)["campaign_id"] == campaign.pk
    api = client.get(f"/api/v1/campaigns/{campaign.pk}/effect").json()
    assert api["synthetic_results"] is True and api["state"] == "running"
    assert api["has_results"] is True
    other, _, _ = running_campaign(world, count=12, seed=12)
    other_page = client.get(f"/campaigns/{other.pk}/effect/").text
    assert 'data-testid="synthetic-results"' not in other_page
    # No result has come for it: said so, no headline, no chart, not pooled.
    assert 'data-testid="no-results"' in other_page
    assert 'data-testid="effect-headline"' not in other_page and "<svg" not in other_page
    listed = verified_client(world.fed_admin).get("/effect/").text
    assert f'data-testid="no-results-{other.pk}"' in listed
    assert f'data-testid="synthetic-{campaign.pk}"' in listed
    assert "1件のキャンペーン全体" in listed
    rows = list(csv.reader(io.StringIO(client.get(f"/campaigns/{campaign.pk}/effect.csv").text)))
    assert rows[0][0] == "cell" and rows[1][0] == "all" and rows[-1][-1].startswith("biased")
    xlsx = client.get(f"/campaigns/{campaign.pk}/effect.xlsx")
    assert xlsx.status_code == 200 and xlsx.content[:2] == b"PK"
    assert (
        verified_client(world.staff_b).get(f"/campaigns/{campaign.pk}/effect.csv").status_code
        == 404
    )
    summary = verified_client(world.fed_admin).get("/effect/")
    assert summary.status_code == 200 and f'data-testid="summary-{campaign.pk}"' in summary.text
    assert f'summary-{campaign.pk}"' not in verified_client(world.staff_b).get("/effect/").text


def test_the_effect_command_writes_json_csv_and_xlsx(calling_day, world, tmp_path):
    campaign = started(world)
    out = io.StringIO()
    call_command("report", "effect", "--campaign", str(campaign.pk), "--format", "json", stdout=out)
    (body,) = json.loads(out.getvalue())
    assert body["id"] == campaign.pk and body["overall"]["called"] == {
        "n": arm(campaign, False).n,
        "attended": arm(campaign, False).attended,
        "uptake": round(arm(campaign, False).uptake, 6),
    }
    out = io.StringIO()
    call_command("report", "effect", stdout=out)
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    assert rows[0][:4] == ["campaign_id", "insurer_number", "fiscal_year", "cell"]
    assert rows[1][:4] == [str(campaign.pk), world.insurer_a.number, "2022", "all"]
    xlsx = tmp_path / "effect.xlsx"
    call_command("report", "effect", "--format", "xlsx", "--out", str(xlsx))
    assert xlsx.read_bytes()[:2] == b"PK"
