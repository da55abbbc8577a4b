"""`yobikake vault rotate`: new key versions, rewrapped keys, nothing unreadable."""

from io import StringIO

import pytest
from django.core.management import call_command

from tests.conftest import load_people
from yobikake.audit.models import Event
from yobikake.audit.tags import AuditTag
from yobikake.intake.models import Target
from yobikake.vault import datakeys
from yobikake.vault.models import IndexKey, Purpose
from yobikake.vault.ports import KeyKind
from yobikake.vault.reveal import reveal
from yobikake.vault.services import issue_grant


def test_rotating_rewraps_every_key_and_everything_still_opens(key_profile, world):
    target_list, people = load_people(world, count=3)
    index_token = IndexKey.objects.get().wrapped_key
    index_key_before = datakeys.index_key(world.insurer_a.pk)
    out = StringIO()
    call_command("vault", "rotate", stdout=out)
    target_list.refresh_from_db()
    assert IndexKey.objects.get().wrapped_key != index_token
    assert "insurer keys: 1 rotated" in out.getvalue()
    assert "list keys" not in out.getvalue()  # a list's key pair lives in custody
    master = {"local": "master key: rotated", "openbao": "master key: not ours to rotate"}
    assert master[key_profile] in out.getvalue()
    datakeys.key_cache().forget()
    assert datakeys.index_key(world.insurer_a.pk) == index_key_before
    target = Target.objects.get(target_list=target_list, row_number=1)
    issue_grant(actor=world.supervisor, holder=world.operator, target=target, purpose="call")
    assert reveal(world.operator, target, Purpose.CALL)["name_kana"] == people[0].name_kana
    kinds = [e.details for e in Event.objects.filter(tag=AuditTag.KEY_ROTATE)]
    assert len(kinds) == (2 if key_profile == "local" else 1)


def test_a_new_master_key_still_opens_the_keyring(local_keys, world):
    from yobikake.vault.adapters.local import LocalKeyService

    load_people(world, count=2)
    before = (local_keys / "master.key").read_bytes()
    call_command("vault", "rotate", "--master", stdout=StringIO())
    assert (local_keys / "master.key").read_bytes() != before
    # A process started afresh opens the keyring with the new master key.
    fresh = LocalKeyService(local_keys)
    name = datakeys.insurer_key_name(world.insurer_a.pk)
    stored = IndexKey.objects.get()
    from yobikake.vault.ports import Wrapped

    assert fresh.unwrap(
        [Wrapped(name, stored.wrapped_key)], aad=datakeys.insurer_aad(world.insurer_a.pk)
    )


def test_a_master_rotation_cut_short_is_finished_by_the_next_process(tmp_path):
    from yobikake.vault.adapters.local import LocalKeyService
    from yobikake.vault.ports import KeyKind

    keys = LocalKeyService(tmp_path)
    keys.create_key("k", KeyKind.WRAPPING)
    wrapped = keys.wrap("k", [b"x" * 32])
    old_master = (tmp_path / "master.key").read_bytes()
    keys.rotate_master()
    # As if the process died before the new master key replaced the old one:
    (tmp_path / "master.key.next").write_bytes((tmp_path / "master.key").read_bytes())
    (tmp_path / "master.key").write_bytes(old_master)
    assert LocalKeyService(tmp_path).unwrap(wrapped) == [b"x" * 32]
    assert not (tmp_path / "master.key.next").exists()


def test_the_master_key_of_openbao_is_not_ours(on_openbao, world):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="bao operator rotate"):
        call_command("vault", "rotate", "--master", stdout=StringIO())


def test_one_insurers_key_can_be_rotated_alone(local_keys, world):
    from django.core.management.base import CommandError

    load_people(world, count=2)
    before = IndexKey.objects.get().wrapped_key
    out = StringIO()
    call_command("vault", "rotate", "--insurer", world.insurer_a.number, stdout=out)
    assert IndexKey.objects.get().wrapped_key != before
    assert f"insurer {world.insurer_a.number}: key rotated" in out.getvalue()
    with pytest.raises(CommandError, match="no index key yet"):
        call_command("vault", "rotate", "--insurer", world.insurer_b.number)
    with pytest.raises(CommandError, match="no insurer has the number 999999"):
        call_command("vault", "rotate", "--insurer", "999999")


def test_rotating_one_insurer_whose_key_is_gone_fails_loudly(local_keys, world):
    from django.core.management.base import CommandError

    from yobikake.vault.service import key_service

    load_people(world, count=2)
    keys = key_service()
    keys.create_key("unused", KeyKind.WRAPPING)
    # The key service lost the insurer's key (a restore from an older keyring, say).
    keys._keyring.update(lambda k: k.pop(datakeys.insurer_key_name(world.insurer_a.pk)))
    with pytest.raises(CommandError, match="no key for insurer"):
        call_command("vault", "rotate", "--insurer", world.insurer_a.number)
    with pytest.raises(CommandError, match="nothing else"):
        call_command("vault", "rotate", "--insurer", world.insurer_a.number, "--master")
