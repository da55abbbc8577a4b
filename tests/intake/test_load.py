import pytest
from django.test import Client

from tests.conftest import load_people
from tests.tenancy.test_api import bearer
from yobikake.accounts.errors import NotPermitted
from yobikake.audit.models import Event
from yobikake.audit.tags import AuditTag
from yobikake.intake.models import Target
from yobikake.intake.sealing import INDEX_COLUMNS
from yobikake.intake.selectors import access_target_list
from yobikake.intake.services import load_target_list
from yobikake.synth.people import synthetic_people
from yobikake.vault.blind import IndexKind


def test_a_loaded_list_holds_only_ciphertext_in_its_personal_fields(world):
    target_list, people = load_people(world, count=20)
    targets = list(Target.objects.filter(target_list=target_list).order_by("row_number"))
    assert len(targets) == 20 == target_list.row_count
    for target, person in zip(targets, people, strict=True):
        assert isinstance(target.name_kana, bytes)
        assert person.name_kana.encode() not in target.name_kana
        assert target.sex == person.sex
        assert 40 <= target.age <= 74
        assert (target.phone is None) == (not person.phone)
    assert target_list.public_key.startswith("-----BEGIN PUBLIC KEY-----")


def test_every_target_gets_its_blind_indexes_and_none_on_sex_or_age(world):
    _target_list, people = load_people(world, count=10)
    assert set(INDEX_COLUMNS) == set(IndexKind)  # a column for every kind, no other
    targets = Target.objects.order_by("row_number")
    for target, person in zip(targets, people, strict=True):
        for kind in (IndexKind.KANA_BIRTH, IndexKind.NAME_BIRTH, IndexKind.INSURED_NUMBER):
            assert len(getattr(target, INDEX_COLUMNS[kind])) == 16
        assert (target.idx_phone is None) == (not person.phone)
    assert Target.objects.values("idx_kana_birth").distinct().count() == 10


def test_the_load_is_on_the_record_with_ids_and_counts_only(world):
    target_list, _ = load_people(world, count=5)
    event = Event.objects.get(tag=AuditTag.LIST_LOAD)
    assert (event.actor_user_id, event.list_id, event.insurer_id) == (
        world.staff_a.pk,
        target_list.pk,
        world.insurer_a.pk,
    )
    assert '"rows":5' in event.details


def test_staff_cannot_load_a_list_for_another_insurer(world):
    people = synthetic_people(3, seed=2, fiscal_year=2022)
    with pytest.raises(NotPermitted):
        load_target_list(
            actor=world.staff_b, insurer=world.insurer_a, fiscal_year=2022, people=people
        )
    assert not Target.objects.exists()
    event = Event.objects.get(tag=AuditTag.LIST_LOAD)
    assert (event.outcome, event.reason) == (Event.Outcome.DENIED, "not_yours")


def test_aggregates_count_people_by_sex_and_age_band(world):
    target_list, _people = load_people(world, count=30)
    counts = target_list.aggregates["sex_age_band"]
    assert sum(counts.values()) == 30
    assert all(key.split(":")[0] in ("1", "2") for key in counts)


def test_other_insurers_staff_gets_404_for_a_list(world):
    target_list, _ = load_people(world, count=3)
    own = Client().get(f"/api/v1/lists/{target_list.pk}", **bearer(world.staff_a))
    assert own.status_code == 200
    assert own.json()["rows"] == 3
    other = Client().get(f"/api/v1/lists/{target_list.pk}", **bearer(world.staff_b))
    missing = Client().get("/api/v1/lists/999999", **bearer(world.staff_b))
    assert other.status_code == missing.status_code == 404
    assert other.json() == missing.json()
    denial = Event.objects.filter(tag=AuditTag.LIST_DENY).order_by("seq").first()
    assert (denial.actor_user_id, denial.reason, denial.list_id) == (
        world.staff_b.pk,
        "not_yours",
        target_list.pk,
    )


def test_operators_see_no_list_at_all(world):
    target_list, _ = load_people(world, count=3)
    with pytest.raises(type(target_list).DoesNotExist):
        access_target_list(world.operator, target_list.pk)
