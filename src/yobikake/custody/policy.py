"""The custodian's rules for one open, decided on what the custodian itself knows (its
configuration, its clock, its ledger), whatever the request claims. Pure functions:
core.py reads the ledger and applies them.

What a request says about its holder (user id, role) is the application's word: the
per-holder budget stops one account of an honest application, while the centre's
budgets (an hour's and a minute's), the seats and calling hours hold against the
application itself (docs/threat-model.md).
"""

import re
from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from yobikake.custody.protocol import (
    BULK_PURPOSES,
    MAX_KEYS_PER_OPEN,
    PURPOSE_FIELDS,
    BulkRequest,
    Holder,
    Justification,
    Purpose,
    Refusal,
    SealedRow,
)
from yobikake.custody.sealing import MAX_BATCH_ID

TOKYO = ZoneInfo("Asia/Tokyo")
# Purposes that ring a resident: only within calling hours, Monday to Saturday.
RINGING = frozenset({Purpose.CALL, Purpose.DIAL})
KNOWN_FIELDS = frozenset().union(*PURPOSE_FIELDS.values())
# A synthetic bulk open may open a call note too (the tests check what was sealed); no
# purpose of a real installation opens one.
SYNTHETIC_FIELDS = KNOWN_FIELDS | {"note"}
_NAME = re.compile(r"[a-z][a-z0-9_\-]{0,39}")
UNKNOWN = "?"


def _known(value: Any, names: Collection[str]) -> bool:
    return isinstance(value, str) and value in names


def is_id(value: Any) -> bool:
    return type(value) is int and value >= 0


def is_name(value: Any) -> bool:
    """A short lower-case name: a role, a purpose, an approver."""
    return _is_name(value)


def _is_name(value: Any) -> bool:
    return isinstance(value, str) and _NAME.fullmatch(value) is not None


def _are_fields(fields: Any) -> bool:
    """A non-empty tuple of distinct names."""
    return (
        isinstance(fields, tuple | list)
        and bool(fields)
        and all(isinstance(name, str) for name in fields)
        and len(set(fields)) == len(fields)
    )


def _are_sealed(sealed: Any, fields: tuple[str, ...]) -> bool:
    """Exactly the fields asked for, each a sealed value or None (empty)."""
    return (
        isinstance(sealed, Mapping)
        and set(sealed) == set(fields)
        and all(value is None or isinstance(value, bytes) for value in sealed.values())
    )


def _are_wrapped_keys(keys: Any, most: int | None = None) -> bool:
    """Batch id -> wrapped key, at most `most` of them."""
    return (
        isinstance(keys, Mapping)
        and (most is None or len(keys) <= most)
        and all(is_id(batch) and batch <= MAX_BATCH_ID for batch in keys)
        and all(isinstance(wrapped, bytes) for wrapped in keys.values())
    )


def _is_holder(holder: Any) -> bool:
    return isinstance(holder, Holder) and is_id(holder.user_id) and isinstance(holder.role, str)


def request_refusal(
    justification: Justification,
    sealed: Mapping[str, Any],
    wrapped_keys: Any,
    *,
    now: datetime,
    calling_hours: tuple[int, int],
) -> Refusal | None:
    """Why a request is refused before anything is unwrapped (None: it may go on).

    One person per request: a request names one row, the sealed values are exactly the
    fields it asks for, each once, and it carries at most `MAX_KEYS_PER_OPEN` batch keys."""
    j = justification
    if (
        not _known(j.purpose, PURPOSE_FIELDS)
        or not _is_holder(j.holder)
        or not all(is_id(v) for v in (j.grant_id, j.insurer_id, j.list_id, j.row_id))
        or not (j.event_id is None or is_id(j.event_id))
        or not _is_name(j.table)
        or not _are_fields(j.fields)
        or not _are_sealed(sealed, j.fields)
        or not _are_wrapped_keys(wrapped_keys, MAX_KEYS_PER_OPEN)
    ):
        return Refusal.BAD_REQUEST
    if not set(j.fields) <= PURPOSE_FIELDS[j.purpose]:
        return Refusal.FIELDS
    if j.purpose in RINGING and not within_calling_hours(now, calling_hours):
        return Refusal.HOURS
    return None


def within_calling_hours(now: datetime, calling_hours: tuple[int, int]) -> bool:
    local = now.astimezone(TOKYO)
    start, end = calling_hours
    return local.weekday() < 6 and start <= local.hour < end


def budget_refusal(
    *,
    holder_opens: int,
    holder_budget: int,
    centre_minute_opens: int,
    centre_per_minute: int,
    centre_opens: int,
    centre_budget: int,
) -> Refusal | None:
    """Opens in the last hour against the hourly budgets, and the centre's opens in the
    last minute against its burst limit (the one asked for not yet counted)."""
    if holder_opens >= holder_budget:
        return Refusal.HOLDER_BUDGET
    if centre_minute_opens >= centre_per_minute:
        return Refusal.CENTRE_BURST
    if centre_opens >= centre_budget:
        return Refusal.CENTRE_BUDGET
    return None


def bulk_refusal(request: BulkRequest, *, synthetic: bool, max_rows: int) -> Refusal | None:
    """Why a bulk request is refused before anything is unwrapped (None: it may go on).

    An export opens the export's fields of one insurer's rows, at most `max_rows` of
    them; a synthetic bulk open only on a custodian set up for synthetic data, with no
    limit on rows. Every row carries exactly the fields asked for; row ids are distinct
    (the answer is keyed by them)."""
    r = request
    if (
        not _known(r.purpose, BULK_PURPOSES)
        or not _is_holder(r.holder)
        or not is_id(r.approval_id)
        or not is_id(r.insurer_id)
        or not (r.event_id is None or is_id(r.event_id))
        or not _are_fields(r.fields)
        or not isinstance(r.rows, list)
        or not isinstance(r.wrapped_keys, Mapping)
        or not all(is_id(k) and _are_wrapped_keys(v) for k, v in r.wrapped_keys.items())
    ):
        return Refusal.BAD_REQUEST
    if r.purpose == Purpose.SYNTHETIC:
        if not synthetic:
            return Refusal.NOT_SYNTHETIC
        allowed = SYNTHETIC_FIELDS
    else:
        allowed = PURPOSE_FIELDS[Purpose.EXPORT]
    if not set(r.fields) <= allowed:
        return Refusal.FIELDS
    if r.purpose == Purpose.EXPORT and len(r.rows) > max_rows:
        return Refusal.BULK_LIMIT
    fields = tuple(r.fields)
    if not all(_is_row(row, r.insurer_id, fields) for row in r.rows) or len(
        {row.row_id for row in r.rows}
    ) != len(r.rows):
        return Refusal.BAD_REQUEST
    return None


def _is_row(row: Any, insurer_id: int, fields: tuple[str, ...]) -> bool:
    return (
        isinstance(row, SealedRow)
        and is_id(row.list_id)
        and is_id(row.row_id)
        and is_id(row.insurer_id)
        and row.insurer_id == insurer_id
        and _is_name(row.table)
        and _are_sealed(row.sealed, fields)
    )


def _id_or_none(value: Any) -> int | None:
    return value if is_id(value) else None


def _who_why_what(
    holder: Any, purpose: Any, purposes: Collection[str], fields: Any
) -> dict[str, Any]:
    user_id = getattr(holder, "user_id", None)
    role = getattr(holder, "role", None)
    return {
        "holder_user_id": _id_or_none(user_id),
        "holder_role": role if _is_name(role) else UNKNOWN,
        "purpose": purpose if _known(purpose, purposes) else UNKNOWN,
        "fields": tuple(
            name if _known(name, KNOWN_FIELDS) else UNKNOWN
            for name in (fields if isinstance(fields, tuple | list) else ())
        ),
    }


def ledger_context(justification: Justification) -> dict[str, Any]:
    """What the ledger records of a request. The request is the application's, so
    anything that is not an id, a known purpose, a known field name or a plain role name
    is written as "?": a malformed request cannot carry a personal value into the
    ledger."""
    j = justification
    return {
        **_who_why_what(j.holder, j.purpose, PURPOSE_FIELDS, j.fields),
        "grant_id": _id_or_none(j.grant_id),
        "insurer_id": _id_or_none(j.insurer_id),
        "list_id": _id_or_none(j.list_id),
        "row_id": _id_or_none(j.row_id),
        "event_id": _id_or_none(j.event_id),
    }


def bulk_context(request: BulkRequest) -> dict[str, Any]:
    """What the ledger records of a bulk request, as `ledger_context` (the approval in the
    grant's column); its rows are counted, never written."""
    r = request
    return {
        **_who_why_what(r.holder, r.purpose, BULK_PURPOSES, r.fields),
        "grant_id": _id_or_none(r.approval_id),
        "insurer_id": _id_or_none(r.insurer_id),
        "event_id": _id_or_none(r.event_id),
    }
