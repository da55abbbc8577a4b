"""Canary residents: planted in every list, looking like everyone else in the database,
and never called, counted or shown."""

import pytest

from tests.calling.conftest import running_campaign
from tests.conftest import load_people
from yobikake.audit.models import Alert
from yobikake.calling.models import CallTarget
from yobikake.incidents.models import CanarySet
from yobikake.intake.models import Target, TargetList
from yobikake.vault import datakeys, records
from yobikake.vault.crypto import CannotOpen, FieldCipher
from yobikake.vault.models import Purpose
from yobikake.vault.reveal import reveal
from yobikake.vault.services import issue_grant


def opened(target_list):
    """Every row of the list opened with its key: {target id: (kana, birth date)}."""
    cipher = FieldCipher(datakeys.list_data_key(target_list))
    out = {}
    for target in Target.objects.filter(target_list=target_list):
        sealed = {f: target.name_kana and bytes(target.name_kana) for f in ["name_kana"]}
        sealed["birth_date"] = bytes(target.birth_date)
        values = records.open_row(cipher, Target._meta.db_table, target.pk, sealed)
        out[target.pk] = (values["name_kana"], values["birth_date"])
    return out


def test_a_list_gets_its_canaries_among_its_rows_and_every_row_still_opens(world, canaries):
    target_list, people = load_people(world, count=30)
    planted = canaries.of_list(target_list)
    stored = Target.objects.filter(target_list=target_list)

    assert len(planted) == 3 and planted <= set(stored.values_list("pk", flat=True))
    # Counted as the list's rows: only the people sent.
    assert target_list.row_count == 30 == sum(target_list.aggregates["sex_age_band"].values())
    # No gap and no tail of their own: the row numbers run 1..33 without a hole.
    assert sorted(stored.values_list("row_number", flat=True)) == list(range(1, 34))
    # The rows they displaced moved (sealed afresh for their new ids) and still open.
    values = opened(target_list)
    real = {v for pk, v in values.items() if pk not in planted}
    assert real == {(p.name_kana, p.birth_date.isoformat()) for p in people}
    assert not {v for pk, v in values.items() if pk in planted} & real


def test_which_rows_are_canaries_is_sealed_and_bound_to_its_list(world, canaries):
    first, _ = load_people(world, count=10)
    second, _ = load_people(world, count=10, seed=2, fiscal_year=2023)
    stored = CanarySet.objects.get(target_list=first)
    assert str(sorted(canaries.of_list(first))[0]).encode() not in bytes(stored.sealed_ids)

    # Pasted onto another list in the database, the set does not open.
    CanarySet.objects.filter(target_list=second).update(sealed_ids=stored.sealed_ids)
    canaries.forget()
    with pytest.raises(CannotOpen):
        canaries.of_list(TargetList.objects.get(pk=second.pk))


def test_canaries_never_enter_a_campaigns_queue_or_counts(world, canaries):
    campaign, target_list, _ = running_campaign(world, count=25)
    queued = set(CallTarget.objects.filter(campaign=campaign).values_list("target_id", flat=True))
    assert len(queued) == 25
    assert not queued & canaries.of_list(target_list)


def test_revealing_a_canary_raises_a_critical_alert(world, canaries):
    target_list, _ = load_people(world, count=8)
    canary = Target.objects.get(pk=min(canaries.of_list(target_list)))
    # Only a forged or abused assignment could get here: none of the queues offer one.
    issue_grant(actor=world.supervisor, holder=world.operator, target=canary, purpose=Purpose.CALL)
    reveal(world.operator, canary, Purpose.CALL)
    alert = Alert.objects.get(rule="canary_touched")
    assert alert.severity == Alert.Severity.CRITICAL


def test_an_ordinary_reveal_raises_no_canary_alert(world, canaries):
    target_list, _ = load_people(world, count=8)
    planted = canaries.of_list(target_list)
    person = Target.objects.filter(target_list=target_list).exclude(pk__in=planted).first()
    issue_grant(actor=world.supervisor, holder=world.operator, target=person, purpose=Purpose.CALL)
    reveal(world.operator, person, Purpose.CALL)
    assert not Alert.objects.filter(rule="canary_touched").exists()


def test_every_list_import_plants_canaries_among_the_files_rows(world, canaries, tmp_path):
    from tests.intake.test_import import run
    from yobikake.synth.lists import write_lists

    entry = write_lists(tmp_path, scale=0.002, seed=7)[0]
    result = run(world, tmp_path / entry.file, policy="exclude")
    target_list = result.target_list
    stored = Target.objects.filter(target_list=target_list)
    assert stored.count() == result.rows_accepted + 3 == target_list.row_count + 3
    assert canaries.of_list(target_list) <= set(stored.values_list("pk", flat=True))


def test_a_list_shorter_than_its_canaries_still_gets_them_all(world, canaries):
    target_list, _ = load_people(world, count=1)
    stored = Target.objects.filter(target_list=target_list)
    assert sorted(stored.values_list("row_number", flat=True)) == [1, 2, 3, 4]
    assert len(canaries.of_list(target_list)) == 3
