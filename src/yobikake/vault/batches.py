"""The application's half of the sealing scheme (custody/protocol.py, custody/sealing.py):
it seals, it never opens.

A list's public key comes from the custodian when the list is made. Each batch of
values is sealed under a fresh AES-256-GCM key, which is stored only wrapped to that
public key (`SealedBatch`) and forgotten; every sealed value names its batch. To open
one, the application sends the custodian the values and the wrapped keys they name.
"""

from collections.abc import Iterable, Mapping

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from yobikake.custody import sealing
from yobikake.custody.protocol import field_aad
from yobikake.intake.models import SealedBatch, TargetList
from yobikake.vault.custodian import custodian


def make_key_pair(target_list: TargetList) -> str:
    """The list's key pair, made in custody; its public half, kept on the list."""
    public_key = custodian().create_list(target_list.pk, target_list.insurer_id)
    target_list.public_key = public_key
    target_list.save(update_fields=["public_key"])
    return public_key


def new_batch(target_list: TargetList) -> tuple[int, bytes]:
    """A fresh batch key for the list, stored only wrapped to its public key: (batch id,
    the key). The caller seals with it and forgets it."""
    key, wrapped = sealing.seal_batch_key(target_list.public_key or make_key_pair(target_list))
    batch = SealedBatch.objects.create(target_list=target_list, wrapped_key=wrapped)
    return batch.pk, key


def seal_value(target_list: TargetList, table: str, column: str, row_id: int, text: str) -> bytes:
    """One value sealed on its own (a researched phone number, a call note), under a batch
    key of its own."""
    batch_id, key = new_batch(target_list)
    aad = field_aad(table, column, row_id, target_list.pk, target_list.insurer_id)
    return sealing.seal_field(AESGCM(key), aad, text, batch_id)


def wrapped_keys(list_id: int, sealed: Iterable[bytes | None]) -> dict[int, bytes]:
    """The wrapped keys of the batches `sealed` names (of the list only: a batch of
    another list is not sent, and the value then does not open)."""
    ids = {sealing.batch_of(value) for value in sealed if value}
    rows = SealedBatch.objects.filter(pk__in=ids, target_list_id=list_id)
    return {pk: bytes(wrapped) for pk, wrapped in rows.values_list("pk", "wrapped_key")}


def wrapped_keys_by_list(rows: Mapping[int, Iterable[bytes | None]]) -> dict[int, dict[int, bytes]]:
    """`wrapped_keys` for many lists' values at once: {list id: {batch id: wrapped}}."""
    ids = {sealing.batch_of(v) for values in rows.values() for v in values if v}
    found: dict[int, dict[int, bytes]] = {list_id: {} for list_id in rows}
    batches = SealedBatch.objects.filter(pk__in=ids, target_list_id__in=list(rows))
    for pk, list_id, wrapped in batches.values_list("pk", "target_list_id", "wrapped_key"):
        found[list_id][pk] = bytes(wrapped)
    return found
