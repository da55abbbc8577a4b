from datetime import datetime

import pytest
import time_machine

from tests.conftest import load_people
from yobikake.calling import services
from yobikake.calling.rules import TOKYO

# A Tuesday in the world's FY2022 calling period (1 Sep – 20 Dec 2022), 10:00 in Tokyo.
CALLING_DAY = datetime(2022, 10, 4, 10, 0, tzinfo=TOKYO)


@pytest.fixture
def calling_day():
    """The clock on a calling day. Ask for it before `world`, so that everything the
    test writes happens on that day."""
    with time_machine.travel(CALLING_DAY, tick=True) as traveller:
        yield traveller


def running_campaign(world, count=20, seed=1, fiscal_year=2022, **settings):
    """A started campaign over a new synthetic list of insurer A, worked by the world's
    operator; (campaign, list, people)."""
    target_list, people = load_people(world, count=count, seed=seed, fiscal_year=fiscal_year)
    campaign = services.create_campaign(
        actor=world.supervisor,
        insurer=world.insurer_a,
        fiscal_year=fiscal_year,
        lists=[target_list],
        **settings,
    )
    services.assign_operators(actor=world.supervisor, campaign=campaign, operators=[world.operator])
    campaign = services.start_campaign(actor=world.supervisor, campaign=campaign, seed=seed)
    return campaign, target_list, people
