from contextlib import contextmanager
from datetime import datetime, time

import pytest
import time_machine
from django.utils import timezone

from tests.conftest import load_people
from yobikake.calling import services, terms
from yobikake.calling.rules import TOKYO
from yobikake.tenancy.models import Contract

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
    with within_contract(world, fiscal_year):
        campaign = services.create_campaign(
            actor=world.supervisor,
            insurer=world.insurer_a,
            fiscal_year=fiscal_year,
            lists=[target_list],
            **settings,
        )
        services.assign_operators(
            actor=world.supervisor, campaign=campaign, operators=[world.operator]
        )
        approve_terms(world, campaign)
        campaign = services.start_campaign(actor=world.supervisor, campaign=campaign, seed=seed)
    return campaign, target_list, people


@contextmanager
def within_contract(world, fiscal_year):
    """A campaign is made within its contract's calling period (calling/terms.py): a test
    running on another day makes it on the contract's first calling day, as it would
    have been made then (the world's contracts are of past years)."""
    contract = Contract.objects.get(insurer=world.insurer_a, fiscal_year=fiscal_year)
    if contract.calling_starts <= timezone.localdate() <= contract.calling_ends:
        yield
        return
    then = datetime.combine(contract.calling_starts, time(10), tzinfo=TOKYO)
    with time_machine.travel(then, tick=True):
        yield


def approve_terms(world, campaign):
    """Insurer A's staff approve the campaign's terms beyond the contract, if it has any
    (tests hold out no one, to call everyone)."""
    if terms.awaiting(campaign) is not None:
        services.approve_campaign_terms(actor=world.staff_a, campaign=campaign)
