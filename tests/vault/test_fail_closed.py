"""With the key service stopped, nothing is revealed and nothing is written half-way."""

import pytest

from tests.conftest import load_people
from yobikake.audit.models import Event
from yobikake.audit.tags import AuditTag
from yobikake.custody.protocol import CustodyUnavailable
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


def test_reveals_fail_closed_with_the_custodian_stopped(custody_process, world):
    target_list, _ = load_people(world, count=4)
    target = Target.objects.filter(target_list=target_list).first()
    issue_grant(actor=world.supervisor, holder=world.operator, target=target, purpose="call")
    assert reveal(world.operator, target, Purpose.CALL)  # works while it runs
    custody_process.stop()
    with pytest.raises(RevealUnavailable) as refused:
        reveal(world.operator, target, Purpose.CALL)
    assert refused.value.code == "custodian_unavailable"
    assert "鍵保管サービス" in str(refused.value)
    reveals = Event.objects.filter(tag=AuditTag.REVEAL_CALL).order_by("seq")
    assert [(e.outcome, e.reason) for e in reveals] == [
        (Event.Outcome.ALLOWED, ""),
        (Event.Outcome.ALLOWED, ""),  # recorded before the custodian is asked
        (Event.Outcome.DENIED, "custodian_unavailable"),
    ]


def test_a_list_cannot_be_loaded_half_way_with_the_custodian_stopped(custody_process, world):
    load_people(world, count=2)
    custody_process.stop()
    with pytest.raises(CustodyUnavailable):
        load_people(world, count=5, seed=9)
    assert TargetList.objects.count() == 1
    assert Target.objects.count() == 2


def test_a_list_cannot_be_loaded_half_way_with_the_key_service_stopped(own_openbao, world):
    """The insurer's blind-index key is the key service's: a new insurer's list cannot be
    indexed with it stopped."""
    own_openbao.stop()
    with pytest.raises(KeyServiceError):
        load_people(world, count=5, seed=9)
    assert TargetList.objects.count() == 0
    assert Target.objects.count() == 0
