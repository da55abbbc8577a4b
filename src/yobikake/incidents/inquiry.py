"""The inquiry desk (問い合わせ窓口): after a leak, residents phone to ask whether it
included them. Desk staff enter what the caller states — kana name, date of birth, phone
number — and get one of two answers: the incidents that leaked the caller, each with the
insurers and fiscal years on whose lists the caller was and the items its leaked file
held; or "not found in any incident". Nothing else: no name, no address, no target, no
count of near matches.

Every scoped incident is searched, so no answer depends on which incident is the newest
or was chosen; incidents whose file is still being scoped are named as not yet covered.

Only the blind indexes that name a person are looked up — kana + birth date and kana +
phone, never the phone alone, which names a household. They are computed under the index
key of each insurer an incident named and looked up among the targets the incidents
matched (neither canaries nor the `possible` tier); nothing is decrypted.

A lookup is on the record before its answer is shown (the incidents searched and those
the caller was found in, never what they stated) and budgeted per desk user and hour
like a reveal: one desk user testing a list of people against a leak is refused and
alerted.
"""

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from yobikake.accounts.errors import AccountError
from yobikake.accounts.permissions import Permission
from yobikake.accounts.selectors import require
from yobikake.audit.models import Event
from yobikake.audit.services import append_event, record_denial
from yobikake.audit.tags import AuditTag
from yobikake.incidents.models import Incident
from yobikake.incidents.reporting import item_labels
from yobikake.incidents.selectors import affected_in
from yobikake.intake.models import Target, TargetList
from yobikake.intake.sealing import INDEX_COLUMNS
from yobikake.jp import normalize
from yobikake.jp.dates import InvalidDate, parse_date
from yobikake.tenancy.fiscal import FiscalYear
from yobikake.tenancy.models import Insurer
from yobikake.vault import datakeys
from yobikake.vault.blind import Indexer, IndexKind
from yobikake.vault.ports import KeyServiceError
from yobikake.vault.records import IndexedFields

# The index kinds that name one person; the phone alone names a household.
KINDS = (IndexKind.KANA_BIRTH, IndexKind.KANA_PHONE)
KIND_LABELS = {
    IndexKind.KANA_BIRTH: _("kana name and date of birth"),
    IndexKind.KANA_PHONE: _("kana name and phone number"),
}
_KATAKANA = re.compile(r"[\u30a1-\u30fa\u30fb\u30fc\u30fd\u30fe]+")


class InquiryRefused(AccountError):
    """The lookup was refused; `code` says why (and is what the audit log records)."""


class UnusableStatement(InquiryRefused):
    """What the caller stated allows no lookup (the desk form says so before asking)."""


REFUSALS = {
    "no_kana": _("Enter the caller's name in kana."),
    "kana_not_kana": _("Enter the name in kana (hiragana or katakana), as the caller spells it."),
    "bad_birth_date": _(
        "The date of birth cannot be read; write it as 1970/3/2 or 昭和45年3月2日."
    ),
    "bad_phone": _("This is not a Japanese phone number (10 or 11 digits starting with 0)."),
    "no_usable_key": _(
        "The kana name alone identifies no one: add the date of birth or the phone number."
    ),
    "not_scoped": _("No incident has been scoped yet; there is nothing to look up."),
    "over_budget": _("You have reached your hourly limit of lookups."),
    "key_service_unavailable": _("The key service cannot be reached; no lookup can be made now."),
}


# The refusals about what was stated, not about the lookup.
_STATEMENT_CODES = frozenset(
    {"no_kana", "kana_not_kana", "bad_birth_date", "bad_phone", "no_usable_key"}
)


def _refuse(code: str) -> InquiryRefused:
    cls = UnusableStatement if code in _STATEMENT_CODES else InquiryRefused
    return cls(str(REFUSALS[code]), code=code)


def stated_parts(*, kana: str, birth_date: str, phone: str) -> dict[IndexKind, tuple[str, ...]]:
    """The normalised index parts a caller's statement allows (kana + birth date, kana +
    phone), normalised as intake normalises a list; `UnusableStatement` if none."""
    if not kana.strip():
        raise _refuse("no_kana")
    if not _KATAKANA.fullmatch(normalize.kana_key(kana)):
        raise _refuse("kana_not_kana")
    born: date | None = None
    if birth_date.strip():
        try:
            born = parse_date(birth_date)
        except InvalidDate:
            raise _refuse("bad_birth_date") from None
    if phone.strip() and not normalize.phone_key(phone):
        raise _refuse("bad_phone")
    fields = IndexedFields(
        name_kanji="",
        name_kana=kana,
        birth_date=born,
        phone=phone,
        address="",
        insured_number="",
    )
    parts = {kind: p for kind, p in fields.parts().items() if kind in KINDS}
    if not parts:
        raise _refuse("no_usable_key")
    return parts


@dataclass(frozen=True)
class Lists:
    """One insurer's lists in an answer: its name and the fiscal years."""

    insurer: str
    fiscal_years: tuple[FiscalYear, ...]


@dataclass(frozen=True)
class InIncident:
    """One incident's part of an answer: the lists it leaked the caller from, with the
    items it leaked; or the lists it named that have since been shredded."""

    incident: Incident
    lists: tuple[Lists, ...]
    items: tuple[str, ...] = ()  # as the regulator report names them


@dataclass(frozen=True)
class Answer:
    # The incidents that leaked the caller, the latest first; empty when none did.
    found_in: tuple[InIncident, ...]
    # Every incident searched (all those scoped), the latest first.
    searched: tuple[Incident, ...]
    # Incidents whose file is still being scoped: this answer does not cover them.
    pending: tuple[Incident, ...]
    # Which stated pairs were looked up (so the desk can ask for the other one).
    asked_by: tuple[str, ...]
    # Lists the incidents named that have since been shredded: no one on them can be
    # found any more, so "not found" does not cover them.
    shredded: tuple[InIncident, ...]

    @property
    def found(self) -> bool:
        return bool(self.found_in)


def answerable_incidents() -> QuerySet[Incident]:
    """The incidents the desk answers about, the latest first."""
    return Incident.objects.filter(state=Incident.State.SCOPED).order_by("-created_at", "-pk")


def _pending_incidents() -> QuerySet[Incident]:
    running = (Incident.State.QUEUED, Incident.State.RUNNING)
    return Incident.objects.filter(state__in=running).order_by("-created_at", "-pk")


def _lists(pairs: Iterable[tuple[int, int]]) -> tuple[Lists, ...]:
    """(insurer id, fiscal year) pairs as insurers in number order with their years."""
    years: dict[int, set[int]] = defaultdict(set)
    for insurer_id, fiscal_year in pairs:
        years[insurer_id].add(fiscal_year)
    insurers = Insurer.objects.filter(pk__in=years).order_by("number")
    return tuple(
        Lists(ins.name, tuple(FiscalYear(y) for y in sorted(years[ins.pk]))) for ins in insurers
    )


def _per_incident(
    incidents: list[Incident], rows: Iterable[tuple[int, int, int]], items: bool
) -> tuple[InIncident, ...]:
    """(incident id, insurer id, fiscal year) rows as each incident's lists, in the
    order of `incidents`."""
    pairs: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for incident_id, insurer_id, fiscal_year in rows:
        pairs[incident_id].append((insurer_id, fiscal_year))
    return tuple(
        InIncident(
            incident,
            _lists(pairs[incident.pk]),
            tuple(item_labels(incident.items)) if items else (),
        )
        for incident in incidents
        if incident.pk in pairs
    )


def _answer(incidents: list[Incident], parts: dict[IndexKind, tuple[str, ...]]) -> Answer:
    matches = affected_in(incidents).order_by()
    named = dict(matches.values_list("target_list_id", "insurer_id").distinct())
    live = set(
        TargetList.objects.filter(pk__in=named, state=TargetList.State.ACTIVE).values_list(
            "pk", flat=True
        )
    )
    by_insurer: dict[int, list[int]] = defaultdict(list)
    for list_id in live:
        by_insurer[named[list_id]].append(list_id)
    # One condition per insurer: its lists, and the stated pairs under its index key.
    wanted = Q()
    for insurer_id, list_ids in sorted(by_insurer.items()):
        indexer = Indexer(datakeys.index_key(insurer_id))
        same = Q()
        for kind, values in parts.items():
            same |= Q(**{INDEX_COLUMNS[kind]: indexer.value(kind, *values)})
        wanted |= Q(target_list_id__in=list_ids) & same
    found: list[tuple[int, int, int]] = []
    if by_insurer:
        targets = Target.objects.filter(wanted, pk__in=matches.values("target_id"))
        found = list(
            matches.filter(target_id__in=targets.values("pk"))
            .values_list("incident_id", "insurer_id", "fiscal_year")
            .distinct()
        )
    shredded = (
        matches.exclude(target_list_id__in=live)
        .values_list("incident_id", "insurer_id", "fiscal_year")
        .distinct()
    )
    return Answer(
        found_in=_per_incident(incidents, found, items=True),
        searched=tuple(incidents),
        pending=tuple(_pending_incidents()),
        asked_by=tuple(str(KIND_LABELS[kind]) for kind in KINDS if kind in parts),
        shredded=_per_incident(incidents, shredded, items=False),
    )


def lookups_in_last_hour(actor: Any) -> int:
    return Event.objects.filter(
        actor_user_id=actor.pk,
        tag=AuditTag.INCIDENT_INQUIRY,
        outcome=Event.Outcome.ALLOWED,
        at__gt=timezone.now() - timedelta(hours=1),
    ).count()


def _record(actor: Any, answer: Answer) -> None:
    """Write the lookup's event and commit it; refuse if it is one over the budget.

    As in the reveal gate: counted after the event is written, in its transaction
    (appenders take turns on the audit chain's head, so two lookups at once cannot both
    pass), and durable, so the event is committed before the answer is shown. It names
    each incident searched and whether the caller was found in it: what they were told."""
    found_in = {hit.incident.pk for hit in answer.found_in}
    with transaction.atomic(durable=True):
        append_event(
            tag=AuditTag.INCIDENT_INQUIRY,
            actor=actor,
            details={
                "found": "yes" if answer.found else "no",
                "searched": len(answer.searched),
                **{
                    f"incident_{incident.pk}": "yes" if incident.pk in found_in else "no"
                    for incident in answer.searched
                },
            },
        )
        if lookups_in_last_hour(actor) > settings.YOBIKAKE_INQUIRY_BUDGET:
            raise _refuse("over_budget")  # the event goes with the rollback


def lookup(*, actor: Any, kana: str, birth_date: str, phone: str) -> Answer:
    """Whether the caller who states `kana` with `birth_date` and/or `phone` was among
    the people any scoped incident leaked, and if so in which incidents, on which
    insurers' lists in which fiscal years. Refusals (`InquiryRefused`) are on the record,
    and so is every answer."""
    try:
        require(actor, Permission.INCIDENT_INQUIRY_LOOKUP)
        parts = stated_parts(kana=kana, birth_date=birth_date, phone=phone)
        incidents = list(answerable_incidents())
        if not incidents:
            raise _refuse("not_scoped")
        answer = _answer(incidents, parts)
        _record(actor, answer)
    except AccountError as exc:
        record_denial(tag=AuditTag.INCIDENT_INQUIRY, actor=actor, reason=exc.code)
        raise
    except KeyServiceError:
        record_denial(tag=AuditTag.INCIDENT_INQUIRY, actor=actor, reason="key_service_unavailable")
        raise _refuse("key_service_unavailable") from None
    return answer
