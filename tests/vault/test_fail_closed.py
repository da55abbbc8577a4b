"""With the key service stopped, nothing is revealed and nothing is written half-way."""

import pytest

from tests.conftest import load_people
from yobikake.audit.models import Event
from yobikake.audit.tags import AuditTag
from yobikake.intake.models import Target, TargetList
from yobikake.vault import devserver
from yobikake.vault.models import Purpose
from yobikake.vault.ports import KeyServiceError
from yobikake.vault.reveal import RevealUnavailable, reveal
from yobikake.vault.services import issue_grant


@pytest.fixture
def own_openbao(settings, tmp_path, openbao):
    """An OpenBao of this test's own, so that it can be stopped (the `openbao` fixture
    is requested only so that a missing binary skips, or fails under CI, alike)."""
    server = devserver.start()
    settings.YOBIKAKE_KEY_SERVICE = "openbao"
    settings.OPENBAO_ADDR = server.addr
    settings.OPENBAO_TOKEN = server.token
    settings.YOBIKAKE_KEYS_DIR = tmp_path / "keys"
    yield server
    server.stop()


def test_reveals_fail_closed_with_the_key_service_stopped(own_openbao, settings, world):
    target_list, _ = load_people(world, count=4)
    target = Target.objects.filter(target_list=target_list).first()
    issue_grant(actor=world.supervisor, holder=world.operator, target=target, purpose="call")
    assert reveal(world.operator, target, Purpose.CALL)  # works while it runs
    own_openbao.stop()
    settings.YOBIKAKE_DATA_KEY_TTL_SECONDS = 0  # as if the cached data key had expired
    with pytest.raises(RevealUnavailable) as refused:
        reveal(world.operator, target, Purpose.CALL)
    assert refused.value.code == "key_service_unavailable"
    assert "鍵管理サービス" in str(refused.value)
    reveals = Event.objects.filter(tag=AuditTag.REVEAL_CALL).order_by("seq")
    assert [(e.outcome, e.reason) for e in reveals] == [
        (Event.Outcome.ALLOWED, ""),
        (Event.Outcome.DENIED, "key_service_unavailable"),
    ]


def test_a_list_cannot_be_loaded_half_way_with_the_key_service_stopped(own_openbao, world):
    load_people(world, count=2)  # the insurer's index key exists now
    own_openbao.stop()
    with pytest.raises(KeyServiceError):
        load_people(world, count=5, seed=9)
    assert TargetList.objects.count() == 1
    assert Target.objects.count() == 2


def test_reveals_fail_closed_when_the_local_keyring_is_gone(local_keys, settings, world):
    """The local keyring's equivalent of a stopped key service: its file unreadable."""
    target_list, _ = load_people(world, count=3)
    target = Target.objects.filter(target_list=target_list).first()
    issue_grant(actor=world.supervisor, holder=world.operator, target=target, purpose="call")
    (local_keys / "keyring.json").rename(local_keys / "keyring.json.away")
    settings.YOBIKAKE_DATA_KEY_TTL_SECONDS = 0
    with pytest.raises(RevealUnavailable):
        reveal(world.operator, target, Purpose.CALL)
    assert not Event.objects.filter(
        tag=AuditTag.REVEAL_CALL, outcome=Event.Outcome.ALLOWED
    ).exists()
