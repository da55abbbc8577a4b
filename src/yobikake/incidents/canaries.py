"""Canary residents: K synthetic people planted in every list at import (setting
YOBIKAKE_CANARIES_PER_LIST), stored like everyone else — sealed fields, blind indexes,
a row number among the real ones — so they travel wherever bulk data travels.

Which rows they are is sealed under the list's data key (`CanarySet`): a copy of the
database cannot tell them apart, and shredding the list forgets them with it. The
services that build queues, counts and screens ask `ids_among` and leave them out;
the reveal gate asks `is_canary` and raises a critical alert.
"""

import json
from collections.abc import Iterable
from typing import Any

from django.conf import settings

from yobikake.incidents.models import CanarySet
from yobikake.intake.models import TargetList
from yobikake.synth.canaries import canary_people
from yobikake.vault import datakeys
from yobikake.vault.crypto import FieldCipher, field_aad

TABLE = "incidents_canaryset"
PAD = 256  # the sealed set is padded to a multiple of this many bytes

# Per process: a list's canaries never change (they go when the list is shredded).
_known: dict[int, frozenset[int]] = {}


def _aad(list_id: int) -> bytes:
    return field_aad(TABLE, "sealed_ids", list_id)


def seal_ids(data_key: bytes, list_id: int, ids: Iterable[int]) -> bytes:
    text = json.dumps(sorted(ids))
    text += " " * (-len(text) % PAD)
    return FieldCipher(data_key).seal(_aad(list_id), text)


def plant(writer: Any) -> list[int]:
    """Plant the configured number of canaries in the list `writer` is writing (inside
    its transaction) and record which they are. Returns their target ids."""
    target_list = writer.target_list
    count = settings.YOBIKAKE_CANARIES_PER_LIST
    if count <= 0:
        return []
    people = canary_people(
        municipality=target_list.insurer.name,
        fiscal_year=target_list.fiscal_year,
        count=count,
        phones=settings.YOBIKAKE_CANARY_PHONES,
    )
    ids = writer.plant(people)
    CanarySet.objects.create(
        target_list=target_list, sealed_ids=seal_ids(writer.data_key, target_list.pk, ids)
    )
    return ids


def of_list(target_list: TargetList) -> frozenset[int]:
    """The canaries of an active list (none for a shredded one: they are gone with it)."""
    known = _known.get(target_list.pk)
    if known is not None:
        return known
    if target_list.state != TargetList.State.ACTIVE:
        return frozenset()
    stored = CanarySet.objects.filter(target_list=target_list).first()
    if stored is None:
        ids: frozenset[int] = frozenset()
    else:
        # A set edited or moved in the database does not open (CannotOpen): fail closed.
        cipher = FieldCipher(datakeys.list_data_key(target_list))
        ids = frozenset(json.loads(cipher.open(_aad(target_list.pk), bytes(stored.sealed_ids))))
    _known[target_list.pk] = ids
    return ids


def of_lists(lists: Iterable[TargetList]) -> frozenset[int]:
    return frozenset().union(*(of_list(tl) for tl in lists))


def is_canary(target: Any) -> bool:
    return target.pk in of_list(target.target_list)


def forget(list_id: int | None = None) -> None:
    if list_id is None:
        _known.clear()
    else:
        _known.pop(list_id, None)
