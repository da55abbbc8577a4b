"""The custodian's rules for one open, decided on what the custodian itself knows (its
configuration, its clock, its ledger), whatever the request claims. Pure functions:
core.py reads the ledger and applies them.

What a request says about its holder (user id, role) is the application's word: the
per-holder budget stops one account of an honest application, while the centre's budget
and calling hours hold against the application itself (docs/threat-model.md).
"""

import re
from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from yobikake.custody.protocol import PURPOSE_FIELDS, Justification, Purpose, Refusal

TOKYO = ZoneInfo("Asia/Tokyo")
# Purposes that ring a resident: only within calling hours, Monday to Saturday.
RINGING = frozenset({Purpose.CALL, Purpose.DIAL})
KNOWN_FIELDS = frozenset().union(*PURPOSE_FIELDS.values())
_NAME = re.compile(r"[a-z][a-z0-9_\-]{0,39}")
UNKNOWN = "?"


def _known(value: Any, names: Collection[str]) -> bool:
    return isinstance(value, str) and value in names


def is_id(value: Any) -> bool:
    return type(value) is int and value >= 0


def request_refusal(
    justification: Justification,
    sealed: Mapping[str, Any],
    wrapped_key: Any,
    *,
    now: datetime,
    calling_hours: tuple[int, int],
) -> Refusal | None:
    """Why a request is refused before anything is unwrapped (None: it may go on).

    One person per request: a request names one row, and the sealed values are exactly
    the fields it asks for, each once."""
    j = justification
    fields = j.fields
    if (
        not _known(j.purpose, PURPOSE_FIELDS)
        or not all(
            is_id(v) for v in (j.holder.user_id, j.grant_id, j.insurer_id, j.list_id, j.row_id)
        )
        or not isinstance(j.holder.role, str)
        or not isinstance(j.table, str)
        or not _NAME.fullmatch(j.table)
        or not isinstance(fields, tuple | list)
        or not fields
        or not all(isinstance(name, str) for name in fields)
        or len(set(fields)) != len(fields)
        or set(sealed) != set(fields)
        or not all(value is None or isinstance(value, bytes) for value in sealed.values())
        or not isinstance(wrapped_key, bytes)
    ):
        return Refusal.BAD_REQUEST
    if not set(fields) <= PURPOSE_FIELDS[j.purpose]:
        return Refusal.FIELDS
    if j.purpose in RINGING and not within_calling_hours(now, calling_hours):
        return Refusal.HOURS
    return None


def within_calling_hours(now: datetime, calling_hours: tuple[int, int]) -> bool:
    local = now.astimezone(TOKYO)
    start, end = calling_hours
    return local.weekday() < 6 and start <= local.hour < end


def budget_refusal(
    *, holder_opens: int, holder_budget: int, centre_opens: int, centre_budget: int
) -> Refusal | None:
    """Opens in the last hour against the hourly budgets (the one asked for not yet
    counted)."""
    if holder_opens >= holder_budget:
        return Refusal.HOLDER_BUDGET
    if centre_opens >= centre_budget:
        return Refusal.CENTRE_BUDGET
    return None


def ledger_context(justification: Justification) -> dict[str, Any]:
    """What the ledger records of a request. The request is the application's, so
    anything that is not an id, a known purpose, a known field name or a plain role name
    is written as "?": a malformed request cannot carry a personal value into the
    ledger."""
    j = justification

    def id_or_none(value: Any) -> int | None:
        return value if is_id(value) else None

    fields = j.fields if isinstance(j.fields, tuple | list) else ()
    role = j.holder.role
    return {
        "holder_user_id": id_or_none(j.holder.user_id),
        "holder_role": role if isinstance(role, str) and _NAME.fullmatch(role) else UNKNOWN,
        "purpose": j.purpose if _known(j.purpose, PURPOSE_FIELDS) else UNKNOWN,
        "grant_id": id_or_none(j.grant_id),
        "insurer_id": id_or_none(j.insurer_id),
        "list_id": id_or_none(j.list_id),
        "row_id": id_or_none(j.row_id),
        "fields": tuple(name if _known(name, KNOWN_FIELDS) else UNKNOWN for name in fields),
    }
