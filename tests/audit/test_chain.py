from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from yobikake.audit import chain

BASE = [
    1,
    datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
    "auth:login:success",
    "allowed",
    "",
    7,
    "fed-admin",
    3,
    "federation_admin",
    None,
    None,
    None,
    None,
    "",
    "127.0.0.1",
    '{"device_id":1}',
    chain.GENESIS_HASH,
]


def test_encoding_is_stable():
    assert chain.canonical(BASE).startswith(b"v1\x1f1\x1f2026-01-02T03:04:05.000006Z\x1f")
    assert chain.event_hash(BASE) == chain.event_hash(list(BASE))


@given(st.integers(0, len(BASE) - 1), st.text(alphabet="abc123:_", min_size=1, max_size=8))
def test_any_changed_field_changes_the_hash(index, text):
    # The encoding is text (column types are fixed by the schema), so compare as text.
    changed = list(BASE)
    changed[index] = (
        text
        if chain.canonical([*BASE[:index], text, *BASE[index + 1 :]]) != chain.canonical(BASE)
        else text + "x"
    )
    assert chain.event_hash(changed) != chain.event_hash(BASE)


def test_control_characters_are_refused_so_the_encoding_stays_unambiguous():
    forged = list(BASE)
    forged[4] = "a\x1fb"
    with pytest.raises(ValueError):
        chain.canonical(forged)


def test_mac_needs_the_key():
    digest = chain.event_hash(BASE)
    mac = chain.event_mac(b"k" * 32, digest)
    assert chain.mac_matches(b"k" * 32, digest, mac)
    assert not chain.mac_matches(b"x" * 32, digest, mac)


def test_the_event_model_lists_the_chained_fields_in_order():
    # append_event builds events positionally, relying on this order.
    from yobikake.audit.models import Event

    names = [f.name for f in Event._meta.concrete_fields]
    assert names == [*chain.FIELDS, "hash", "mac"]
