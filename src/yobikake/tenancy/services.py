"""Every write to insurers and contracts.

`actor` None is the command line (`yobikake tenancy`), as for `yobikake intake import`:
whoever runs commands on the application host holds every right the application has, so
it is not asked for a permission; its events carry no user, and `source: cli`."""

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, time

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from yobikake.accounts.errors import AccountError
from yobikake.accounts.models import Organization, User
from yobikake.accounts.permissions import OrganizationKind, Permission
from yobikake.accounts.selectors import require
from yobikake.audit.services import append_event, audited
from yobikake.audit.tags import AuditTag
from yobikake.jp.insurer_numbers import InvalidInsurerNumber, parse_insurer_number
from yobikake.tenancy.deadlines import as_detail, time_as_detail
from yobikake.tenancy.models import INSURER_NUMBER_ERRORS, BillingRule, Contract, Insurer


class TenancyError(AccountError):
    """A refusal about insurers or contracts, shown to the user as it is."""


def _full_clean(obj: Insurer | Contract) -> None:
    try:
        obj.full_clean()
    except ValidationError as exc:
        raise TenancyError(" ".join(exc.messages)) from exc


def _require(actor: User | None, permission: Permission) -> None:
    if actor is not None:
        require(actor, permission)


def _source(actor: User | None) -> dict[str, str]:
    """What an event says of where it came from: a user's events name the user."""
    return {} if actor is not None else {"source": "cli"}


def _insurer_number(number: str) -> str:
    try:
        parsed = parse_insurer_number(number)
    except InvalidInsurerNumber as exc:
        raise TenancyError(INSURER_NUMBER_ERRORS[exc.reason]) from exc
    if parsed.law_code is not None:
        raise TenancyError(INSURER_NUMBER_ERRORS["not_nhi"])
    return parsed.digits


def _new_insurer(number: str, name: str, kind: Insurer.Kind) -> Insurer:
    """The insurer as it would be stored, checked; `TenancyError` if it cannot be."""
    insurer = Insurer(number=_insurer_number(number), name=name.strip(), kind=kind)
    _full_clean(insurer)
    return insurer


def _register(actor: User | None, insurer: Insurer) -> Insurer:
    insurer.save()
    Organization.objects.create(name=insurer.name, kind=OrganizationKind.INSURER, insurer=insurer)
    append_event(
        tag=AuditTag.INSURER_REGISTER, actor=actor, insurer_id=insurer.pk, details=_source(actor)
    )
    return insurer


@audited(AuditTag.INSURER_REGISTER)
def register_insurer(*, actor: User | None, number: str, name: str, kind: Insurer.Kind) -> Insurer:
    """Add a member insurer and the organisation its staff belong to."""
    _require(actor, Permission.INSURER_ANY_MANAGE)
    return _register(actor, _new_insurer(number, name, kind))


# How a file may name an insurer's kind (empty: a municipality, as most members are).
KIND_WORDS = {
    "": Insurer.Kind.MUNICIPALITY,
    "市町村": Insurer.Kind.MUNICIPALITY,
    "市町村国保": Insurer.Kind.MUNICIPALITY,
    "municipality": Insurer.Kind.MUNICIPALITY,
    "国保組合": Insurer.Kind.NHI_ASSOCIATION,
    "国民健康保険組合": Insurer.Kind.NHI_ASSOCIATION,
    "nhi_association": Insurer.Kind.NHI_ASSOCIATION,
}


@dataclass(frozen=True)
class InsurerRow:
    """One insurer as a file gives it; `line` is its line in the file (the header is 1)."""

    line: int
    number: str
    name: str
    kind: str = ""
    extra: bool = False  # more cells than the header has columns


@dataclass(frozen=True)
class RowError:
    line: int
    message: str


@dataclass
class InsurersImported:
    registered: list[Insurer] = field(default_factory=list)
    unchanged: list[Insurer] = field(default_factory=list)


class InsurerRowsRefused(TenancyError):
    """A file of insurers with errors: nothing was registered; `errors` says where."""

    def __init__(self, errors: list[RowError]) -> None:
        super().__init__(
            _("No insurer was registered: %(n)s rows have errors.") % {"n": len(errors)},
            code="invalid_rows",
        )
        self.errors = errors


def _checked(row: InsurerRow, first_line: dict[str, int]) -> Insurer | None:
    """The insurer a row registers; None when it is registered already, as it is."""
    if row.extra:
        raise TenancyError(_("The row has more cells than the header has columns."))
    if not row.number.strip():
        raise TenancyError(_("The insurer number (保険者番号) is empty."))
    number = _insurer_number(row.number)
    if number in first_line:
        raise TenancyError(
            _("The same insurer number is on line %(line)s.") % {"line": first_line[number]}
        )
    first_line[number] = row.line
    if not row.name.strip():
        raise TenancyError(_("The name (名称) is empty."))
    kind = KIND_WORDS.get(row.kind.strip())
    if kind is None:
        raise TenancyError(_("The kind (種別) is 市町村 or 国保組合."))
    stored = Insurer.objects.filter(number=number).first()
    if stored is None:
        return _new_insurer(number, row.name, kind)
    if (stored.name, stored.kind) != (row.name.strip(), kind):
        raise TenancyError(
            _("%(number)s is registered already, as “%(name)s” (%(kind)s).")
            % {"number": stored.number, "name": stored.name, "kind": stored.get_kind_display()}
        )
    return None


@audited(AuditTag.INSURER_REGISTER)
def import_insurers(*, actor: User | None, rows: Sequence[InsurerRow]) -> InsurersImported:
    """Register the federation's member insurers a file lists: all of them or, when any
    row is wrong, none (`InsurerRowsRefused` names every wrong row). Insurers registered
    already, with the same name and kind, are left as they are: a file can be run again."""
    _require(actor, Permission.INSURER_ANY_MANAGE)
    errors, new = [], []
    first_line: dict[str, int] = {}
    imported = InsurersImported()
    for row in rows:
        try:
            insurer = _checked(row, first_line)
        except TenancyError as exc:
            errors.append(RowError(row.line, str(exc)))
            continue
        if insurer is None:
            imported.unchanged.append(Insurer.objects.get(number=_insurer_number(row.number)))
        else:
            new.append(insurer)
    if errors:
        raise InsurerRowsRefused(errors)
    imported.registered = [_register(actor, insurer) for insurer in new]
    return imported


@audited(AuditTag.CONTRACT_CREATE)
def create_contract(
    *,
    actor: User | None,
    insurer: Insurer,
    fiscal_year: int,
    calling_starts: date,
    calling_ends: date,
    retention_until: date,
    calling_from: time = time(9, 0),
    calling_until: time = time(20, 0),
) -> Contract:
    """Record that an insurer entrusts a fiscal year's outreach to the federation: when
    its residents may be called (days and hours) and how long their list is kept."""
    _require(actor, Permission.CONTRACT_ANY_MANAGE)
    contract = Contract(
        insurer=insurer,
        fiscal_year=fiscal_year,
        calling_starts=calling_starts,
        calling_ends=calling_ends,
        retention_until=retention_until,
        calling_from=calling_from,
        calling_until=calling_until,
    )
    fy = contract.fy
    if not (fy.starts <= calling_starts and calling_ends <= fy.ends):
        raise TenancyError(
            _("The calling period must lie within %(fy)s (%(start)s – %(end)s).")
            % {"fy": fy, "start": fy.starts, "end": fy.ends}
        )
    if retention_until < calling_ends:
        raise TenancyError(_("The retention deadline cannot come before calling ends."))
    if calling_from >= calling_until:
        raise TenancyError(_("The calling hours end before they start."))
    if Contract.objects.filter(insurer=insurer, fiscal_year=fiscal_year).exists():
        raise TenancyError(
            _("%(insurer)s already has a contract for %(fy)s.") % {"insurer": insurer, "fy": fy}
        )
    _full_clean(contract)
    contract.save()
    append_event(
        tag=AuditTag.CONTRACT_CREATE,
        actor=actor,
        insurer_id=insurer.pk,
        details={
            "contract_id": contract.pk,
            "fiscal_year": fiscal_year,
            # The deadline on the record: the schedule goes by it (tenancy/deadlines.py);
            # campaigns go by the period and hours on the record (calling/terms.py).
            "retention_until": as_detail(retention_until),
            "period_starts": as_detail(calling_starts),
            "period_ends": as_detail(calling_ends),
            "hours_from": time_as_detail(calling_from),
            "hours_until": time_as_detail(calling_until),
            **_source(actor),
        },
    )
    return contract


@audited(AuditTag.CONTRACT_BILLING_SET)
def set_billing_terms(
    *,
    actor: User | None,
    contract: Contract,
    unit_price_yen: int,
    rule: BillingRule,
    unanswered_tries: int = 3,
) -> Contract:
    """Set what the contract pays: yen per case and the rule that counts the cases. The
    event keeps the terms before and after, so a changed price is on the record."""
    _require(actor, Permission.CONTRACT_ANY_MANAGE)
    if unit_price_yen < 0:
        raise TenancyError(_("The unit price cannot be negative."))
    if unanswered_tries < 1:
        raise TenancyError(_("At least one try must count as a case."))
    before = (contract.unit_price_yen, contract.billing_rule, contract.unanswered_tries)
    contract.unit_price_yen = unit_price_yen
    contract.billing_rule = rule
    contract.unanswered_tries = unanswered_tries
    _full_clean(contract)
    contract.save(update_fields=["unit_price_yen", "billing_rule", "unanswered_tries"])
    append_event(
        tag=AuditTag.CONTRACT_BILLING_SET,
        actor=actor,
        insurer_id=contract.insurer_id,
        details={
            "contract_id": contract.pk,
            "unit_price_yen_before": before[0],
            "rule_before": before[1],
            "unanswered_tries_before": before[2],
            "unit_price_yen": unit_price_yen,
            "rule": str(rule),
            "unanswered_tries": unanswered_tries,
            **_source(actor),
        },
    )
    return contract
