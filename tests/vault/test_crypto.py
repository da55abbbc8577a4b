import secrets

import pytest

from yobikake.vault.adapters.fake import FakeKeyService
from yobikake.vault.blind import IndexKind, blind_index
from yobikake.vault.crypto import DataKeyCache, new_data_key
from yobikake.vault.ports import KeyKind, KeyNotFound

# Sealing and opening list data is custody's (tests/custody/test_sealing.py): the
# application domain keeps only its own keys and the blind indexes.


def test_the_cache_unwraps_once_within_its_ttl_and_forgets_a_shredded_key():
    keys = FakeKeyService()
    keys.create_key("list-1", KeyKind.WRAPPING, destroyable=True)
    data_key = new_data_key()
    wrapped = keys.wrap("list-1", [data_key], aad=b"list:1")[0]
    now = [0.0]
    cache = DataKeyCache(keys, ttl=60, clock=lambda: now[0])
    calls = []
    real = keys.unwrap
    keys.unwrap = lambda w, aad=b"": calls.append(1) or real(w, aad=aad)  # count the calls
    assert cache.get(wrapped, aad=b"list:1") == data_key
    assert cache.get(wrapped, aad=b"list:1") == data_key
    assert len(calls) == 1
    now[0] = 61
    cache.get(wrapped, aad=b"list:1")
    assert len(calls) == 2
    keys.destroy("list-1")
    cache.forget("list-1")
    with pytest.raises(KeyNotFound):
        cache.get(wrapped, aad=b"list:1")


def test_blind_indexes_are_stable_per_insurer_key_and_separated_per_kind():
    key_a, key_b = secrets.token_bytes(32), secrets.token_bytes(32)
    phone = blind_index(key_a, IndexKind.PHONE, "0582142966")
    assert phone == blind_index(key_a, IndexKind.PHONE, "0582142966")
    assert len(phone) == 16
    assert phone != blind_index(key_b, IndexKind.PHONE, "0582142966")  # another insurer
    assert blind_index(key_a, IndexKind.KANA_PHONE, "ヤマダ", "0582142966") != blind_index(
        key_a, IndexKind.KANA_BIRTH, "ヤマダ", "0582142966"
    )


@pytest.mark.parametrize(
    ("kind", "parts"),
    [
        (IndexKind.PHONE, ("",)),
        (IndexKind.KANA_BIRTH, ("ヤマダ",)),
        (IndexKind.KANA_BIRTH, ("ヤマダ\x1fタロウ", "19700302")),
    ],
)
def test_blind_indexes_refuse_missing_or_ambiguous_parts(kind, parts):
    with pytest.raises(ValueError):
        blind_index(secrets.token_bytes(32), kind, *parts)


def test_there_is_no_index_kind_over_a_low_cardinality_field_alone():
    lone = {kind for kind in IndexKind if "+" not in kind.value}
    assert lone == {IndexKind.PHONE, IndexKind.INSURED_NUMBER}
