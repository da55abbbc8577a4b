import pytest

from tests.conftest import load_people
from yobikake.audit.models import Alert, Event
from yobikake.audit.tags import AuditTag
from yobikake.intake.models import Target, TargetList
from yobikake.vault.datakeys import IndexKeyMissing
from yobikake.vault.models import IndexKey


def test_an_insurers_index_key_is_made_once_and_on_the_record(world):
    load_people(world, count=2)
    load_people(world, count=2, seed=2)
    assert IndexKey.objects.count() == 1
    event = Event.objects.get(tag=AuditTag.INDEX_KEY_CREATE)
    assert event.insurer_id == world.insurer_a.pk


def test_a_deleted_index_key_is_not_silently_replaced(world):
    """A new key would quietly stop every earlier list's indexes from matching."""
    load_people(world, count=2)
    IndexKey.objects.all().delete()
    with pytest.raises(IndexKeyMissing):
        load_people(world, count=3, seed=2)
    assert TargetList.objects.count() == 1
    assert Target.objects.count() == 2
    assert not IndexKey.objects.exists()
    alert = Alert.objects.get(rule="vault_tampered")
    assert alert.severity == Alert.Severity.CRITICAL
