"""The sealing scheme: what the application stores is FORMAT, the batch id, a nonce and
the AES-GCM ciphertext, bound to its place by `field_aad`; the importer's fast path
seals exactly what `seal_field` does."""

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from yobikake.custody import sealing
from yobikake.custody.protocol import field_aad, field_aad_prefix
from yobikake.custody.sealing import CannotOpen, batch_of, open_field, seal_field, seal_fields

AAD = field_aad("intake_person", "phone", 7, 11, 21)


@pytest.fixture
def aead():
    return AESGCM(AESGCM.generate_key(bit_length=256))


def test_a_sealed_value_names_its_batch_after_the_format_byte(aead):
    sealed = seal_field(aead, AAD, "058-000-0000", 2**40 + 3)
    assert sealed[:1] == sealing.FORMAT == b"\x02"
    assert sealed[1:9] == (2**40 + 3).to_bytes(8, "big")
    assert batch_of(sealed) == 2**40 + 3
    assert len(sealed) == 1 + 8 + 12 + len("058-000-0000") + 16
    assert open_field(aead, AAD, sealed) == "058-000-0000"


@pytest.mark.parametrize("batch_id", [0, 2**64 - 1])
def test_batch_ids_are_unsigned_64_bit(aead, batch_id):
    assert batch_of(seal_field(aead, AAD, "x", batch_id)) == batch_id


@pytest.mark.parametrize("batch_id", [-1, 2**64])
def test_a_batch_id_out_of_range_is_not_sealed(aead, batch_id):
    with pytest.raises(ValueError, match="64-bit"):
        seal_field(aead, AAD, "x", batch_id)


@pytest.mark.parametrize(
    "sealed",
    [b"", b"\x02" + bytes(8 + 12 + 15), b"\x01" + bytes(8 + 12 + 16), "\x02" * 40],
    ids=["empty", "short", "old format", "text"],
)
def test_what_is_not_a_sealed_value_names_no_batch_and_does_not_open(aead, sealed):
    with pytest.raises(CannotOpen):
        batch_of(sealed)
    with pytest.raises(CannotOpen):
        open_field(aead, AAD, sealed)


def test_a_value_opens_only_at_its_place(aead):
    sealed = seal_field(aead, AAD, "試験", 1)
    for elsewhere in (
        field_aad("intake_person", "phone", 8, 11, 21),
        field_aad("intake_person", "name_kana", 7, 11, 21),
        field_aad("intake_person", "phone", 7, 12, 21),
        field_aad("intake_person", "phone", 7, 11, 22),
    ):
        with pytest.raises(CannotOpen):
            open_field(aead, elsewhere, sealed)


def test_the_row_id_comes_last_so_a_column_s_prefix_is_built_once():
    prefix = field_aad_prefix("intake_person", "phone", 11, 21)
    assert prefix == b"yobikake:intake_person:phone:list:11:insurer:21:row:"
    assert field_aad("intake_person", "phone", 7, 11, 21) == prefix + b"7"


def test_seal_fields_seals_a_row_as_seal_field_does(aead):
    columns = ("name_kanji", "phone", "address")
    prefixes = [field_aad_prefix("intake_person", c, 11, 21) for c in columns]
    sealed = seal_fields(aead, prefixes, b"7", ["試験 花子", "", "岐阜市"], 5)
    assert sealed[1] is None
    for column, value, expected in zip(columns, sealed, ["試験 花子", None, "岐阜市"], strict=True):
        if expected is None:
            continue
        assert value is not None
        assert batch_of(value) == 5
        assert open_field(aead, field_aad("intake_person", column, 7, 11, 21), value) == expected
    assert sealed[0] is not None and sealed[2] is not None
    assert sealed[0][9:21] != sealed[2][9:21]  # a nonce of its own each


def test_seal_fields_refuses_a_prefix_and_a_value_count_that_differ(aead):
    with pytest.raises(ValueError):
        seal_fields(aead, [b"a:"], b"1", ["x", "y"], 1)
