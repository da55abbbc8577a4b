"""Twenty operators pressing "next call" at the same moment, many times over: no
target is ever checked out to two of them at once."""

import threading
from collections import Counter

import pytest
from django.db import connection

from tests.calling.conftest import running_campaign
from tests.conftest import make_user
from yobikake.accounts.permissions import Role
from yobikake.calling import services
from yobikake.calling.models import CallTarget
from yobikake.vault.models import Grant

OPERATORS = 20
ROUNDS = 3


@pytest.mark.django_db(transaction=True)
def test_no_target_is_checked_out_twice_at_once(calling_day, world):
    campaign, _, _ = running_campaign(world, count=120, seed=11, holdout_share=0)
    operators = [make_user(f"op-{n}", world.call_centre, Role.OPERATOR) for n in range(OPERATORS)]
    services.assign_operators(actor=world.supervisor, campaign=campaign, operators=operators)
    held_at_once: list[list[int]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def new_round():
        held_at_once.append([])

    start = threading.Barrier(OPERATORS)
    rounds = threading.Barrier(OPERATORS, action=new_round)

    def operate_rounds(operator):
        try:
            for _ in range(ROUNDS):
                rounds.wait()
                checkout = services.next_call(operator=operator)
                with lock:
                    held_at_once[-1].append(checkout.call_target.pk)
                start.wait()  # every operator holds a call now
                services.record_outcome(
                    actor=operator, call_target_id=checkout.call_target.pk, code="declined"
                )
        except BaseException as exc:
            errors.append(exc)
            start.abort()
            rounds.abort()
        finally:
            connection.close()

    threads = [threading.Thread(target=operate_rounds, args=(op,)) for op in operators]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert len(held_at_once) == ROUNDS
    for held in held_at_once:
        assert len(held) == OPERATORS
        assert not [pk for pk, n in Counter(held).items() if n > 1]
    worked = [pk for held in held_at_once for pk in held]
    assert len(set(worked)) == OPERATORS * ROUNDS  # declined: never offered again
    done = CallTarget.objects.filter(campaign=campaign, state=CallTarget.State.DONE)
    assert set(done.values_list("pk", flat=True)) == set(worked)
    # One grant per checkout, each to its own operator, all released.
    grants = Grant.objects.filter(purpose="call")
    assert grants.count() == OPERATORS * ROUNDS
    assert not grants.filter(released_at__isnull=True).exists()


@pytest.mark.django_db(transaction=True)
def test_a_double_press_checks_out_one_person(calling_day, world):
    running_campaign(world, count=20, seed=12, holdout_share=0)
    start = threading.Barrier(2)
    got, errors = [], []

    def press():
        try:
            start.wait()
            got.append(services.next_call(operator=world.operator).call_target.pk)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=press) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    assert len(got) == 2 and got[0] == got[1]
    assert CallTarget.objects.filter(state=CallTarget.State.CHECKED_OUT).count() == 1
    assert Grant.objects.filter(purpose="call", released_at__isnull=True).count() == 1
