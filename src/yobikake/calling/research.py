"""Phone research: finding the numbers of the people on a campaign's lists who have none.

A researcher works one person at a time, as an operator works one call: `next_research`
checks a person in state RESEARCH out to them with a research grant (the vault's
`queue_grant`), whose reveal shows name, kana, postal code and address — never a phone.
`record_research` seals the number found into the person's row (its blind indexes
beside it) and puts them in the call queue, or takes them out of it as not found.
`import_directory` does the same for every person a directory file identifies beyond
doubt, and leaves the others to researchers.

The application seals and never opens: the kana + phone index needs the person's kana,
which the researcher's own reveal gives (the custodian opens it under their research
grant, on the record), and a directory row gives only when its kana is shown to be the
person's by their kana + address index.

Researchers are not assigned to campaigns: the call centre's researchers work every
running campaign's research queue, oldest entry first. Operators are assigned so that a
supervisor can staff campaigns by insurer; research needs no such staffing, and the
grant still holds each researcher to one person at a time. The calling calendar does not
apply either: looking a number up calls no one.
"""

from collections import defaultdict
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from itertools import batched
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from yobikake.accounts.errors import AccountError, NotPermitted
from yobikake.accounts.permissions import Permission
from yobikake.accounts.selectors import require
from yobikake.audit.services import append_event, audited
from yobikake.audit.tags import AuditTag
from yobikake.calling.models import CallTarget, Campaign, ResearchResult
from yobikake.calling.services import Checkout, skip_locked
from yobikake.intake.models import Target, TargetList
from yobikake.intake.reading import UnreadableFile, map_headers, open_sheet
from yobikake.intake.sealing import INDEX_COLUMNS
from yobikake.jp import normalize
from yobikake.jp.phones import InvalidPhone, Phone, parse_phone
from yobikake.tenancy.models import Insurer
from yobikake.vault import batches, datakeys, records
from yobikake.vault import services as vault
from yobikake.vault.blind import Indexer, IndexKind
from yobikake.vault.models import Grant, Purpose
from yobikake.vault.reveal import reveal

State = CallTarget.State


class NothingToResearch(AccountError):
    """No one waits for phone research."""


PHONE_ERRORS = {
    "empty": gettext_lazy("Enter the phone number, or choose “Number not found”."),
    "format": gettext_lazy("A phone number holds digits, hyphens and brackets only."),
    "impossible": gettext_lazy("No such Japanese phone number can exist."),
}


def valid_phone(text: str) -> Phone:
    """The number a researcher typed, or a refusal saying what is wrong with it (in the
    user's language; the audit log gets only the code)."""
    try:
        return parse_phone(text)
    except InvalidPhone as exc:
        raise AccountError(str(PHONE_ERRORS[exc.reason]), code=f"phone_{exc.reason}") from None


def _minutes() -> int:
    # As long as a grant lasts by default: finding a number takes longer than a call.
    return int(settings.YOBIKAKE_GRANT_MINUTES)


def current_research(researcher: Any, now: datetime | None = None) -> CallTarget | None:
    """The person checked out to the researcher and not finished, if their time is not up."""
    now = now or timezone.now()
    return (
        CallTarget.objects.select_related("campaign", "target")
        .filter(research_by=researcher, state=State.RESEARCH, research_until__gt=now)
        .first()
    )


def next_research(*, researcher: Any) -> Checkout:
    """Check the next person without a phone number out to `researcher`, with a grant to
    reveal them for research. A researcher with a task still checked out gets that one
    again. Raises `NothingToResearch` when no one waits."""
    require(researcher, Permission.TARGET_REVEAL_RESEARCH)
    now = timezone.now()
    minutes = _minutes()
    with transaction.atomic():
        # One task at a time per researcher (the account's row is the lock).
        vault.lock_holder(researcher)
        held = current_research(researcher, now)
        if held is not None and held.research_grant_id:
            return Checkout(held, Grant.objects.filter(pk=held.research_grant_id).first())
        free = Q(research_by__isnull=True) | Q(research_until__lte=now)
        call_target = (
            CallTarget.objects.filter(free, state=State.RESEARCH, holdout=False)
            .filter(campaign__state=Campaign.State.RUNNING, target__has_phone=False)
            .order_by("pk")
            .select_for_update(**skip_locked())
            .select_related("target")
            .first()
        )
        if call_target is None:
            raise NothingToResearch(_("No one is waiting for phone research."), code="queue_empty")
        grant = vault.queue_grant(
            holder=researcher,
            target=call_target.target,
            purpose=Purpose.RESEARCH,
            minutes=minutes,
            campaign_id=call_target.campaign_id,
            call_target_id=call_target.pk,
        )
        call_target.research_by = researcher
        call_target.research_until = now + timedelta(minutes=minutes)
        call_target.research_grant_id = grant.pk
        call_target.save(update_fields=["research_by", "research_until", "research_grant_id"])
    return Checkout(call_target, grant)


def record_research(*, actor: Any, call_target_id: int, phone: str | None) -> CallTarget:
    """What the research checked out to `actor` came to: the number found (`phone`,
    checked against the numbering plan), or None for "not found". A number makes the
    person callable in every campaign that waits for it; "not found" takes them out of
    the queue (state NOT_FOUND). Ends the task and its grant.

    For a number, the person's kana is revealed to `actor` first (under their research
    grant, a reveal on the record like the one their screen made), for the kana + phone
    index. Outside the service's transaction: a reveal commits its own event. A reveal
    refused (`RevealRefused`) stores nothing, and the task stays theirs."""
    kana = _kana_to_index(actor, call_target_id) if _is_phone(phone) else None
    return _record_research(actor=actor, call_target_id=call_target_id, phone=phone, kana=kana)


def _is_phone(text: str | None) -> bool:
    if text is None:
        return False
    try:
        parse_phone(text)
    except InvalidPhone:
        return False  # refused, on the record, by the service
    return True


def _kana_to_index(actor: Any, call_target_id: int) -> tuple[int, str] | None:
    """(person, their kana) of the research checked out to `actor`, revealed to them;
    None when they hold no such task (the service refuses it)."""
    call_target = (
        CallTarget.objects.select_related("target")
        .filter(pk=call_target_id, research_by=actor, state=State.RESEARCH)
        .first()
    )
    if call_target is None or call_target.target is None:
        return None
    return call_target.target.pk, reveal(actor, call_target.target, Purpose.RESEARCH)["name_kana"]


@audited(AuditTag.RESEARCH_RESULT)
def _record_research(
    *, actor: Any, call_target_id: int, phone: str | None, kana: tuple[int, str] | None
) -> CallTarget:
    require(actor, Permission.TARGET_REVEAL_RESEARCH)
    number = valid_phone(phone) if phone is not None else None
    call_target = (
        CallTarget.objects.select_for_update(of=("self",))
        .select_related("target__target_list")
        .filter(pk=call_target_id, research_by=actor, state=State.RESEARCH)
        .exclude(target__isnull=True)
        .first()
    )
    if call_target is None:
        raise NotPermitted(
            _("This person is not assigned to you for research."), code="not_checked_out"
        )
    grant = Grant.objects.filter(pk=call_target.research_grant_id).select_related("target").first()
    target = call_target.target
    if number is None:
        call_target.state = State.NOT_FOUND
        call_target.research_result = ResearchResult.NOT_FOUND
        _end_task(call_target)
        call_target.save(update_fields=["state", "research_result", *_TASK_FIELDS])
        queued = [call_target.pk]
    else:
        # The kana revealed before the transaction, if of this person (a task cannot
        # change its person; checked all the same).
        known = kana[1] if kana is not None and kana[0] == target.pk else ""
        queued = _store_number(target, number, ResearchResult.FOUND, known)
    if grant is not None and grant.released_at is None:
        vault.release_grant(actor=actor, grant=grant)
    _record(
        actor, target, queued, ResearchResult.NOT_FOUND if number is None else ResearchResult.FOUND
    )
    call_target.refresh_from_db()
    return call_target


_TASK_FIELDS = ("research_by", "research_until", "research_grant_id", "directory_candidates")


def _end_task(call_target: CallTarget) -> None:
    call_target.research_by = call_target.research_until = call_target.research_grant_id = None
    call_target.directory_candidates = 0


def _store_number(target: Target, number: Phone, result: ResearchResult, kana: str) -> list[int]:
    """Seal `number` into the person's row under a batch key of its own (bound to its
    table, column, row, list and insurer, as intake seals), recompute the indexes over it
    — the phone, and kana + phone when the person's `kana` is known ("": it is not, and
    the row has no kana + phone index) — and queue the person in every campaign where
    they wait for research. The call targets queued."""
    indexed = dict(
        records.index_values(
            Indexer(datakeys.index_key(target.insurer_id)),
            records.IndexedFields(
                name_kanji="",
                name_kana=kana,
                birth_date=None,
                phone=number.national,
                address="",
                insured_number="",
            ),
        )
    )
    sealed = batches.seal_value(
        target.target_list, Target._meta.db_table, "phone", target.pk, number.national
    )
    Target.objects.filter(pk=target.pk).update(
        phone=sealed,
        idx_phone=indexed[IndexKind.PHONE],
        idx_kana_phone=indexed.get(IndexKind.KANA_PHONE),
        has_phone=True,
    )
    waiting = CallTarget.objects.filter(target_id=target.pk, state=State.RESEARCH)
    queued = list(waiting.values_list("pk", flat=True))
    waiting.update(
        state=State.QUEUED,
        has_phone=True,
        research_result=result,
        research_by=None,
        research_until=None,
        research_grant_id=None,
        directory_candidates=0,
    )
    return queued


def _record(actor: Any, target: Target, call_target_ids: list[int], outcome: str) -> None:
    """The research's event: who, which person, what came of it — never the number."""
    append_event(
        tag=AuditTag.RESEARCH_RESULT,
        actor=actor,
        insurer_id=target.insurer_id,
        list_id=target.target_list_id,
        target_id=target.pk,
        details={
            "call_targets": "ids:" + "/".join(str(pk) for pk in sorted(call_target_ids)),
            "outcome": outcome,
        },
    )


# The directory import.


@dataclass
class DirectoryCounts:
    """What a directory import came to. Rows: `rows` = `invalid` (no name, address or
    valid number) + `matched` (may mean someone waiting for research) + `unmatched`.
    People waiting (a person on two lists counts twice): `accepted` got the number;
    `ambiguous` are left to a researcher with a hint, the rows fitting several people or
    giving several numbers; `busy` were checked out to a researcher at that moment, and
    are left to them with a hint."""

    rows: int = 0
    invalid: int = 0
    matched: int = 0
    unmatched: int = 0
    accepted: int = 0
    ambiguous: int = 0
    busy: int = 0

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


DIRECTORY_COLUMNS = ("name_kanji", "address", "phone")


@audited(AuditTag.DIRECTORY_IMPORT)
def import_directory(*, actor: Any, insurer: Insurer, path: Path) -> DirectoryCounts:
    """Match a directory file (CSV/TSV in CP932 or UTF-8, or XLSX; columns 氏名, 住所,
    電話番号 and optionally カナ氏名) against the people of `insurer`'s running campaigns
    who wait for research, by blind index on name + address (and kana + address). A
    person matched by exactly one number, on rows naming no one else, gets it as if a
    researcher had entered it; the others are left to researchers. One transaction:
    all of it or nothing. `actor` None is the command line."""
    if actor is not None:
        require(actor, Permission.CAMPAIGN_ANY_RUN)
    try:
        sheet = open_sheet(path)
        columns = map_headers(sheet.headers)
    except UnreadableFile as exc:
        raise AccountError(str(exc), code=exc.code) from None
    if any(column not in columns for column in DIRECTORY_COLUMNS):
        raise AccountError(
            _("A directory file needs the columns 氏名, 住所 and 電話番号."),
            code="directory_columns",
        )
    candidates = _Candidates(insurer)
    indexer = Indexer(datakeys.index_key(insurer.pk))
    counts = DirectoryCounts()
    numbers: dict[int, set[str]] = defaultdict(set)  # person → numbers the directory gives
    kanas: dict[int, str] = {}  # person → their kana, as a row naming them by it gives it
    shared: set[int] = set()  # people a row may mean as well as someone else
    try:
        for batch in batched(sheet.rows, BATCH):
            entries = []
            for _row, cells in batch:
                counts.rows += 1
                entry = _entry(columns, cells)
                if entry is None:
                    counts.invalid += 1
                else:
                    entries.append((dict(records.index_values(indexer, entry[0])), *entry))
            matches = candidates.match([indexes for indexes, *_entry in entries])
            for (_indexes, fields, number), (people, waiting, by_kana) in zip(
                entries, matches, strict=True
            ):
                if not waiting:
                    counts.unmatched += 1
                    continue
                counts.matched += 1
                for target_id in waiting:
                    numbers[target_id].add(number)
                for target_id in by_kana:
                    kanas[target_id] = fields.name_kana
                if people > 1:
                    shared |= waiting
    except UnreadableFile as exc:
        raise AccountError(str(exc), code=exc.code) from None
    for target_id, given in sorted(numbers.items()):
        if target_id in shared or len(given) > 1:
            _leave_hint(target_id, len(given))
            counts.ambiguous += 1
        elif _accept(actor, target_id, parse_phone(given.pop()), kanas.get(target_id, "")):
            counts.accepted += 1
        else:
            _leave_hint(target_id, 1)
            counts.busy += 1
    append_event(
        tag=AuditTag.DIRECTORY_IMPORT,
        actor=actor,
        insurer_id=insurer.pk,
        details=counts.as_dict(),
    )
    return counts


BATCH = 500
_MATCHED_BY = (IndexKind.NAME_ADDRESS, IndexKind.KANA_ADDRESS)


class _Candidates:
    """Whom a directory row may mean: the people on the lists of the insurer's running
    campaigns with its name + address or kana + address — in any state, for a namesake
    whose number is known still makes the row ambiguous — and which of them wait for
    research. Their index values are read once, list by list, and kept in memory (about
    0.5 KB a person, measured: 10 MB for the 20,000 of the seed's largest list). The
    address indexes have no database index to look them up by: every list import would
    pay for it (docs/benchmarks.md, intake, session 8)."""

    def __init__(self, insurer: Insurer) -> None:
        running = Campaign.objects.filter(insurer=insurer, state=Campaign.State.RUNNING)
        lists = TargetList.objects.filter(campaigns__in=running).values_list("pk", flat=True)
        self._waiting = set(
            CallTarget.objects.filter(
                campaign__in=running,
                state=State.RESEARCH,
                holdout=False,
                target__has_phone=False,
            ).values_list("target_id", flat=True)
        )
        # Index value → the targets that have it, for each kind matched by.
        self._by: dict[IndexKind, dict[bytes, list[int]]] = {k: {} for k in _MATCHED_BY}
        self._person: dict[int, object] = {}  # target → who (kana + birth date)
        if not self._waiting:
            return  # no row can give anyone a number
        columns = [INDEX_COLUMNS[k] for k in _MATCHED_BY]
        for list_id in sorted(set(lists)):
            found = Target.objects.filter(target_list_id=list_id).values_list(
                "pk", *columns, "idx_kana_birth"
            )
            for pk, *values, kana_birth in found.iterator(chunk_size=2000):
                self._person[pk] = bytes(kana_birth) if kana_birth is not None else pk
                for kind, value in zip(_MATCHED_BY, values, strict=True):
                    if value is not None:
                        self._by[kind].setdefault(bytes(value), []).append(pk)

    def match(self, rows: list[dict[IndexKind, bytes]]) -> list[tuple[int, set[int], set[int]]]:
        """For each row (its index values): how many people it may mean, which of their
        targets wait for research, and which of those it names by kana + address (the
        row's kana is theirs: the index values are equal only if the normalised kana
        are). One person may be on two lists (two targets): people are told apart by
        kana + birth date."""
        matches = []
        for row in rows:
            found = {
                k: set(self._by[k].get(row[k], ())) if k in row else set() for k in _MATCHED_BY
            }
            targets = set().union(*found.values())
            waiting = targets & self._waiting
            matches.append(
                (
                    len({self._person[t] for t in targets}),
                    waiting,
                    waiting & found[IndexKind.KANA_ADDRESS],
                )
            )
        return matches


def _entry(columns: dict[str, int], cells: list[str]) -> tuple[records.IndexedFields, str] | None:
    """A directory row as the fields its indexes are computed over (normalised as intake
    normalises a list's rows) and its number; None when a part is missing or the
    number is no Japanese number."""

    def cell(field: str) -> str:
        column = columns.get(field)
        return cells[column].strip() if column is not None and column < len(cells) else ""

    name = normalize.display_name(cell("name_kanji"))
    address = normalize.fold(cell("address"))
    try:
        number = parse_phone(cell("phone"))
    except InvalidPhone:
        return None
    if not (normalize.name_key(name) and normalize.address_key(address)):
        return None
    person = records.IndexedFields(
        name_kanji=name,
        name_kana=normalize.display_kana(cell("name_kana")),
        birth_date=None,
        phone=number.national,
        address=address,
        insured_number="",
    )
    return person, number.national


def _accept(actor: Any, target_id: int, number: Phone, kana: str) -> bool:
    """Store the directory's number for the person (with `kana`, theirs as the
    directory gives it, or ""), unless a researcher has them checked out right now
    (their task is theirs to finish). Whether it was stored."""
    now = timezone.now()
    waiting = CallTarget.objects.select_for_update().filter(
        target_id=target_id, state=State.RESEARCH
    )
    if any(ct.research_until is not None and ct.research_until > now for ct in waiting):
        return False
    target = Target.objects.select_related("target_list").get(pk=target_id)
    queued = _store_number(target, number, ResearchResult.DIRECTORY, kana)
    _record(actor, target, queued, ResearchResult.DIRECTORY)
    return True


def _leave_hint(target_id: int, candidates: int) -> None:
    CallTarget.objects.filter(target_id=target_id, state=State.RESEARCH).update(
        directory_candidates=candidates
    )


# Reads.


@dataclass(frozen=True)
class ResearchRate:
    """One list's research in one campaign: the people who needed a number (`to_research`)
    are `found`, `not_found` or still `open`. The rate is the share found of those
    finished. A person found whose number proved wrong is open again."""

    target_list_id: int | None  # None: the list has been shredded
    to_research: int
    found: int
    not_found: int
    open: int

    @property
    def rate(self) -> float | None:
        finished = self.found + self.not_found
        return self.found / finished if finished else None

    @property
    def percent(self) -> int | None:
        return None if self.rate is None else round(self.rate * 100)


def research_rates(campaign: Campaign) -> list[ResearchRate]:
    """Phone research per list of the campaign (held-out people are never researched)."""
    researched = Q(state__in=(State.RESEARCH, State.NOT_FOUND)) | ~Q(research_result="")
    rows = {
        row["target__target_list_id"]: row
        for row in CallTarget.objects.filter(researched, campaign=campaign, holdout=False)
        .values("target__target_list_id")
        .annotate(
            to_research=Count("pk"),
            open=Count("pk", filter=Q(state=State.RESEARCH)),
            not_found=Count("pk", filter=Q(state=State.NOT_FOUND)),
        )
        .order_by()
    }
    list_ids: list[int | None] = list(campaign.lists.order_by("pk").values_list("pk", flat=True))
    if None in rows:
        list_ids.append(None)
    rates = []
    for list_id in list_ids:
        row = rows.get(list_id, {"to_research": 0, "open": 0, "not_found": 0})
        rates.append(
            ResearchRate(
                target_list_id=list_id,
                to_research=row["to_research"],
                found=row["to_research"] - row["open"] - row["not_found"],
                not_found=row["not_found"],
                open=row["open"],
            )
        )
    return rates
