from tests.calling.conftest import running_campaign
from yobikake.calling import services
from yobikake.reports.selectors import campaign_effect, synthetic_results
from yobikake.synth.demo import load_demo_results


def test_demo_results_plant_an_effect_on_the_finished_gifu_campaign_once(world):
    world.insurer_a.name = "岐阜市"
    world.insurer_a.save(update_fields=["name"])
    campaign, _, _ = running_campaign(world, count=40, seed=8, holdout_share=0.5)
    assert load_demo_results() == ""  # only on a finished campaign
    services.close_campaign(actor=world.supervisor, campaign=campaign)
    assert "SYNTHETIC" in load_demo_results()
    assert load_demo_results() == ""
    assert not campaign_effect(campaign).overall.suppressed
    assert synthetic_results(campaign)
