"""Retention deadlines as the record has them.

A contract's `retention_until` is a plain column: whoever administers the database could
move it — later, to keep lists past their deadline (the 2023 leak held lists eight years
old), or earlier, to have the schedule shred a list before its time. The deadline a
contract was made with is also written into its `contract:record:create` event, which
cannot be rewritten unseen (audit/chain.py). The schedule goes by the record; a column
that disagrees with it raises a critical alert (exports/retention.py). Contracts made
before deadlines were recorded have only their column. The calling period and hours are
recorded the same way, and campaigns are held to them as recorded (`on_record`)."""

import copy
import json
from dataclasses import dataclass
from datetime import date, time

from yobikake.audit.models import Event
from yobikake.audit.tags import AuditTag
from yobikake.tenancy.models import Contract


def as_detail(day: date) -> int:
    """A day as an audit detail (YYYYMMDD: details hold ids and codes, not dates)."""
    return int(day.strftime("%Y%m%d"))


def _from_detail(value: int) -> date:
    return date(value // 10000, value // 100 % 100, value % 100)


def time_as_detail(at: time) -> int:
    """A time of day as an audit detail, to the minute (HHMM)."""
    return at.hour * 100 + at.minute


def _time_from_detail(value: int) -> time:
    return time(value // 100, value % 100)


# The contract's columns its creation event records: column → (detail, how it is read
# back). The details sort after `contract_id`, which the lookups find events by.
_RECORDED = {
    "calling_starts": ("period_starts", _from_detail),
    "calling_ends": ("period_ends", _from_detail),
    "retention_until": ("retention_until", _from_detail),
    "calling_from": ("hours_from", _time_from_detail),
    "calling_until": ("hours_until", _time_from_detail),
}


def on_record(contract: Contract) -> Contract:
    """The contract as its creation event made it: calling period, calling hours and
    retention deadline from the record, in place of columns anyone with the database
    could have moved (a copy; nothing is saved). A value the event does not record (a
    contract made before it did) keeps its column."""
    events = Event.objects.filter(
        tag=AuditTag.CONTRACT_CREATE,
        outcome=Event.Outcome.ALLOWED,
        details__startswith=f'{{"contract_id":{contract.pk},',
    ).values_list("details", flat=True)
    recorded = copy.copy(contract)
    for details in events:
        made = json.loads(details or "{}")
        for column, (detail, read) in _RECORDED.items():
            if detail in made:
                setattr(recorded, column, read(made[detail]))
    return recorded


def recorded_deadlines(contract_id: int | None = None) -> dict[int, date]:
    """Contract id → the retention deadline its creation event records (of one
    contract's event only, when given)."""
    events = Event.objects.filter(tag=AuditTag.CONTRACT_CREATE, outcome=Event.Outcome.ALLOWED)
    if contract_id is not None:
        # Details are canonical JSON with sorted keys: they begin with the contract.
        events = events.filter(details__startswith=f'{{"contract_id":{contract_id},')
    recorded = {}
    for details in events.values_list("details", flat=True):
        made = json.loads(details or "{}")
        if "retention_until" in made:
            recorded[made["contract_id"]] = _from_detail(made["retention_until"])
    return recorded


@dataclass(frozen=True)
class Mismatch:
    contract_id: int
    insurer_id: int
    fiscal_year: int
    column: date
    recorded: date


def deadlines() -> tuple[dict[tuple[int, int], date], list[Mismatch]]:
    """(insurer id, fiscal year) → the deadline to go by (the recorded one, else the
    column), and the contracts whose column disagrees with the record."""
    recorded = recorded_deadlines()
    effective: dict[tuple[int, int], date] = {}
    mismatches = []
    for pk, insurer_id, fiscal_year, column in Contract.objects.values_list(
        "pk", "insurer_id", "fiscal_year", "retention_until"
    ):
        on_record = recorded.get(pk, column)
        effective[(insurer_id, fiscal_year)] = on_record
        if on_record != column:
            mismatches.append(Mismatch(pk, insurer_id, fiscal_year, column, on_record))
    return effective, mismatches


def deadline_of(insurer_id: int, fiscal_year: int) -> date | None:
    """The deadline to go by for one insurer's fiscal year (None without a contract)."""
    contract = Contract.objects.filter(insurer_id=insurer_id, fiscal_year=fiscal_year).first()
    if contract is None:
        return None
    return recorded_deadlines(contract.pk).get(contract.pk, contract.retention_until)
