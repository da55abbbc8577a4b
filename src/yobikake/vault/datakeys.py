"""The keys the application domain uses, and where they live.

- Each insurer's blind-index key is wrapped by that insurer's key in the key service.
- Nothing here opens a stored field: a list's key pair lives in custody (vault/batches.py).

Unwrapped keys live in this process's memory for YOBIKAKE_DATA_KEY_TTL_SECONDS, then the
key service is asked again; when it cannot answer, callers fail closed.
"""

from functools import cache
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from yobikake.accounts.errors import AccountError
from yobikake.vault.crypto import DataKeyCache, new_data_key
from yobikake.vault.ports import KeyKind, KeyService, Wrapped
from yobikake.vault.service import key_service


def insurer_key_name(insurer_id: int) -> str:
    return f"yobikake-insurer-{insurer_id}"


def insurer_aad(insurer_id: int) -> bytes:
    return f"insurer-index:{insurer_id}".encode()


@cache
def _cache_for(keys: KeyService, ttl: int) -> DataKeyCache:
    return DataKeyCache(keys, ttl=ttl)


def key_cache() -> DataKeyCache:
    return _cache_for(key_service(), settings.YOBIKAKE_DATA_KEY_TTL_SECONDS)


class IndexKeyMissing(AccountError):
    """The insurer's index key was made once and its row is gone from the database."""


def index_key(insurer_id: int) -> bytes:
    """The insurer's blind-index key, made (and wrapped) on first use, on the record."""
    from yobikake.vault.models import IndexKey

    stored = IndexKey.objects.filter(insurer_id=insurer_id).first()
    if stored is None:
        stored = _new_index_key(insurer_id)
    wrapped = Wrapped(insurer_key_name(insurer_id), stored.wrapped_key)
    return key_cache().get(wrapped, aad=insurer_aad(insurer_id))


def _new_index_key(insurer_id: int) -> Any:
    from yobikake.audit.models import Event
    from yobikake.audit.services import append_event
    from yobikake.audit.tags import AuditTag
    from yobikake.vault.models import IndexKey

    if Event.objects.filter(tag=AuditTag.INDEX_KEY_CREATE, insurer_id=insurer_id).exists():
        # A new key would silently stop every earlier list's indexes from matching (leak
        # scoping, do-not-call): refuse, and let the refusal raise the alarm.
        raise IndexKeyMissing(
            _("The insurer's index key is missing from the database; restore it from backup."),
            code="index_key_missing",
        )
    keys = key_service()
    name = insurer_key_name(insurer_id)
    keys.create_key(name, KeyKind.WRAPPING)
    wrapped = keys.wrap(name, [new_data_key()], aad=insurer_aad(insurer_id))[0]
    try:
        with transaction.atomic():
            stored = IndexKey.objects.create(insurer_id=insurer_id, wrapped_key=wrapped.token)
            append_event(tag=AuditTag.INDEX_KEY_CREATE, actor=None, insurer_id=insurer_id)
            return stored
    except IntegrityError:  # made meanwhile by another process: theirs holds
        return IndexKey.objects.get(insurer_id=insurer_id)
