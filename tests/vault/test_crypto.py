import secrets

import pytest
from hypothesis import given
from hypothesis import strategies as st

from yobikake.vault.adapters.fake import FakeKeyService
from yobikake.vault.blind import IndexKind, blind_index
from yobikake.vault.crypto import (
    CannotOpen,
    DataKeyCache,
    FieldCipher,
    field_aad,
    new_data_key,
)
from yobikake.vault.ports import KeyKind, KeyNotFound

REF = field_aad("intake_target", "kana_name", 41)


def seal(key, ref, text):
    return FieldCipher(key).seal(ref, text)


def open_sealed(key, ref, sealed):
    return FieldCipher(key).open(ref, sealed)


@given(st.text())
def test_any_text_seals_and_opens(text):
    key = new_data_key()
    assert open_sealed(key, REF, seal(key, REF, text)) == text


def test_sealing_twice_gives_different_ciphertext():
    key = new_data_key()
    assert seal(key, REF, "ヤマダ タロウ") != seal(key, REF, "ヤマダ タロウ")


def test_a_rows_fields_seal_at_their_places_and_empty_ones_are_none():
    key = new_data_key()
    columns = ("name_kana", "phone", "address")
    prefixes = [field_aad("intake_target", column, 0)[:-1] for column in columns]
    sealed = FieldCipher(key).seal_fields(prefixes, b"41", ["ヤマダ タロウ", "", "本町1-2"])
    assert sealed[1] is None
    assert (
        open_sealed(key, field_aad("intake_target", "name_kana", 41), sealed[0]) == "ヤマダ タロウ"
    )
    assert open_sealed(key, field_aad("intake_target", "address", 41), sealed[2]) == "本町1-2"
    with pytest.raises(CannotOpen):
        open_sealed(key, field_aad("intake_target", "address", 4), sealed[2])


@pytest.mark.parametrize(
    "elsewhere",
    [
        field_aad("intake_target", "kana_name", 42),  # another row
        field_aad("intake_target", "phone", 41),  # another column
        field_aad("other_table", "kana_name", 41),  # another table
    ],
)
def test_ciphertext_moved_to_another_place_does_not_open(elsewhere):
    key = new_data_key()
    with pytest.raises(CannotOpen):
        open_sealed(key, elsewhere, seal(key, REF, "ヤマダ タロウ"))


def test_a_flipped_bit_or_another_key_does_not_open():
    key = new_data_key()
    sealed = bytearray(seal(key, REF, "0582142966"))
    sealed[-1] ^= 1
    with pytest.raises(CannotOpen):
        open_sealed(key, REF, bytes(sealed))
    with pytest.raises(CannotOpen):
        open_sealed(new_data_key(), REF, seal(key, REF, "x"))
    with pytest.raises(CannotOpen):
        open_sealed(key, REF, b"plain text")


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
