"""Grants the database cannot forge.

A grant is what lets a user reveal one target; a database administrator who can read
only ciphertext would next insert one for an account they control. So a grant carries a
MAC under the authorization key (kept wrapped by the key service, see
accounts/authz.py), written only by `vault.services`. A grant without a valid MAC
reveals nothing and raises a critical alert; one put back to an earlier genuine state
(released, then un-released) is caught by its release in the audit log.
"""

from collections.abc import Sequence
from datetime import UTC, datetime
from functools import cache
from typing import Any

from django.db import connection
from django.db.backends.signals import connection_created
from django.db.models import BinaryField, BooleanField
from django.utils import timezone

from yobikake.accounts import authz
from yobikake.audit.models import Event
from yobikake.audit.tags import AuditTag
from yobikake.custody.sealing import CannotOpen, batch_of
from yobikake.intake.models import SealedBatch, Target, TargetList
from yobikake.vault.models import Grant


def _when(at: datetime | None) -> str:
    return at.astimezone(UTC).isoformat() if at else ""


def _message(grant: Any) -> bytes:
    fields = (
        grant.pk,
        grant.holder_id,
        grant.target_id,
        grant.purpose,
        grant.issued_by_id,
        _when(grant.issued_at),
        _when(grant.expires_at),
        _when(grant.released_at),
    )
    return "\x1f".join(["grant v1", *(str(f) for f in fields)]).encode()


def seal(grant: Any, also: tuple[str, ...] = ()) -> None:
    """Write the grant's MAC (with the fields in `also`, changed and covered by it)."""
    grant.mac = authz.mac(_message(grant))
    grant.save(update_fields=["mac", *also])


def is_sealed(grant: Any) -> bool:
    return authz.mac_matches(_message(grant), grant.mac)


_TARGET_FIELDS = Target._meta.concrete_fields
# Written out because it runs in every reveal, where building it with the ORM cost more
# than running it (bench/vault.py): the grants, whether the audit log records their
# release, their target and what the gate needs of the target's list, in one statement
# (with the wrapped keys of the batches the revealed values name: `_live_grants`).
# A release event's details are canonical JSON with sorted keys (audit/services.py), so
# they begin with the released grant's id.
_LIVE_GRANTS = (
    "SELECT g.*, EXISTS ("  # noqa: S608 - fixed names only
    f"SELECT 1 FROM {Event._meta.db_table} e WHERE e.target_id = g.target_id "
    "AND e.tag = %s AND e.outcome = %s "
    """AND (e.details LIKE '{"grant_id":' || CAST(g.id AS TEXT) || ',%%' """
    """OR e.details = '{"grant_id":' || CAST(g.id AS TEXT) || '}')) AS release_logged, """
    + ", ".join(f"t.{f.column} AS t_{f.column}" for f in _TARGET_FIELDS)
    + ", l.state AS l_state, l.insurer_id AS l_insurer_id"
)
_LIVE_GRANTS_FROM = (
    f" FROM {Grant._meta.db_table} g "
    f"JOIN {Target._meta.db_table} t ON t.id = g.target_id "
    f"JOIN {TargetList._meta.db_table} l ON l.id = t.target_list_id "
    "WHERE g.holder_id = %s AND g.target_id = %s AND g.purpose = %s "
    "AND g.released_at IS NULL AND g.expires_at > %s"
)
_SQLITE_BATCH_OF = "yobikake_batch_of"


def _batch_id_sql(vendor: str, column: str) -> str:
    """SQL for the batch id a sealed value names (custody/sealing.py: the 8 bytes after
    the format byte, big-endian)."""
    if vendor == "postgresql":
        return f"('x' || encode(substring({column} from 2 for 8), 'hex'))::bit(64)::bigint"
    return f"{_SQLITE_BATCH_OF}({column})"


def _sqlite_batch_of(value: bytes | None) -> int | None:
    if value is None or len(value) < 9:
        return None
    return int.from_bytes(value[1:9], "big")


def _add_sqlite_functions(sender: Any, connection: Any, **kwargs: Any) -> None:
    if connection.vendor == "sqlite":
        connection.connection.create_function(
            _SQLITE_BATCH_OF, 1, _sqlite_batch_of, deterministic=True
        )


connection_created.connect(_add_sqlite_functions)


@cache
def _live_grants(vendor: str, fields: tuple[str, ...]) -> str:
    """`_LIVE_GRANTS` with, for each of `fields`, the wrapped key of the batch its value
    names (of the target's own list only; NULL for an empty value), so that a reveal
    reads everything it sends the custodian in one statement."""
    keys = "".join(
        f", (SELECT b.wrapped_key FROM {SealedBatch._meta.db_table} b "  # noqa: S608
        f"WHERE b.id = {_batch_id_sql(vendor, f't.{field}')} "
        f"AND b.target_list_id = t.target_list_id) AS k_{field}"
        for field in fields
    )
    return _LIVE_GRANTS + keys + _LIVE_GRANTS_FROM


def _wrapped_keys(grant: Any, target: Any, fields: Sequence[str]) -> dict[int, bytes]:
    """The wrapped keys the query brought, by the batch id each value names."""
    keys: dict[int, bytes] = {}
    for field in fields:
        value, wrapped = getattr(target, field), getattr(grant, f"k_{field}")
        if value and wrapped is not None:
            try:
                keys[batch_of(bytes(value))] = bytes(wrapped)
            except CannotOpen:
                continue  # not a sealed value: the custodian refuses it
    return keys


def _target_of(grant: Any) -> Any:
    """The grant's target (and the part of its list the gate needs) from the columns the
    query brought along, converted as the ORM would (bytes, booleans)."""
    values = []
    for field in _TARGET_FIELDS:
        value = getattr(grant, f"t_{field.column}")
        if isinstance(field, BooleanField):
            value = bool(value)
        elif isinstance(field, BinaryField) and value is not None:
            value = bytes(value)
        values.append(value)
    target = Target.from_db(connection.alias, [f.attname for f in _TARGET_FIELDS], values)
    target.target_list = TargetList(
        pk=target.target_list_id,
        insurer_id=grant.l_insurer_id,
        state=grant.l_state,
    )
    return target


class ForgedGrant(Exception):
    """Only grants written outside the services were found."""


def live_grant(holder: Any, target_id: int, purpose: str, fields: Sequence[str] = ()) -> Any | None:
    """The holder's live, genuine grant on the target for `purpose` (its `target` and
    the target's `target_list` loaded, and in `wrapped_keys` the wrapped keys of the
    batches that the target's `fields` name), or None. Raises `ForgedGrant` when the
    only candidates were forged or revived."""
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    params = [AuditTag.GRANT_RELEASE, Event.Outcome.ALLOWED, holder.pk, target_id, purpose, now]
    sql = _live_grants(connection.vendor, tuple(fields))
    candidates = list(Grant.objects.raw(sql, params))
    if not candidates:
        return None
    for grant in candidates:
        # Expiry and release are checked again on the MAC'd values: on SQLite the query
        # compares text, which a reformatted (same instant, other spelling) date defeats.
        live = grant.released_at is None and grant.expires_at > timezone.now()
        if live and not grant.release_logged and is_sealed(grant):
            grant.target = _target_of(grant)
            grant.wrapped_keys = _wrapped_keys(grant, grant.target, fields)
            return grant
    raise ForgedGrant([g.pk for g in candidates])
