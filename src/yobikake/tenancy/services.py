"""Every write to insurers and contracts."""

from datetime import date

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from yobikake.accounts.errors import AccountError
from yobikake.accounts.models import Organization, User
from yobikake.accounts.permissions import OrganizationKind, Permission
from yobikake.accounts.selectors import require
from yobikake.audit.services import append_event, audited
from yobikake.audit.tags import AuditTag
from yobikake.jp.insurer_numbers import InvalidInsurerNumber, parse_insurer_number
from yobikake.tenancy.deadlines import as_detail
from yobikake.tenancy.models import INSURER_NUMBER_ERRORS, BillingRule, Contract, Insurer


class TenancyError(AccountError):
    """A refusal about insurers or contracts, shown to the user as it is."""


def _full_clean(obj: Insurer | Contract) -> None:
    try:
        obj.full_clean()
    except ValidationError as exc:
        raise TenancyError(" ".join(exc.messages)) from exc


@audited(AuditTag.INSURER_REGISTER)
def register_insurer(*, actor: User, number: str, name: str, kind: Insurer.Kind) -> Insurer:
    """Add a member insurer and the organisation its staff belong to."""
    require(actor, Permission.INSURER_ANY_MANAGE)
    try:
        parsed = parse_insurer_number(number)
    except InvalidInsurerNumber as exc:
        raise TenancyError(INSURER_NUMBER_ERRORS[exc.reason]) from exc
    if parsed.law_code is not None:
        raise TenancyError(INSURER_NUMBER_ERRORS["not_nhi"])
    number = parsed.digits
    insurer = Insurer(number=number, name=name.strip(), kind=kind)
    _full_clean(insurer)
    insurer.save()
    Organization.objects.create(name=insurer.name, kind=OrganizationKind.INSURER, insurer=insurer)
    append_event(tag=AuditTag.INSURER_REGISTER, actor=actor, insurer_id=insurer.pk)
    return insurer


@audited(AuditTag.CONTRACT_CREATE)
def create_contract(
    *,
    actor: User,
    insurer: Insurer,
    fiscal_year: int,
    calling_starts: date,
    calling_ends: date,
    retention_until: date,
) -> Contract:
    """Record that an insurer entrusts a fiscal year's outreach to the federation."""
    require(actor, Permission.CONTRACT_ANY_MANAGE)
    contract = Contract(
        insurer=insurer,
        fiscal_year=fiscal_year,
        calling_starts=calling_starts,
        calling_ends=calling_ends,
        retention_until=retention_until,
    )
    fy = contract.fy
    if not (fy.starts <= calling_starts and calling_ends <= fy.ends):
        raise TenancyError(
            _("The calling period must lie within %(fy)s (%(start)s – %(end)s).")
            % {"fy": fy, "start": fy.starts, "end": fy.ends}
        )
    if retention_until < calling_ends:
        raise TenancyError(_("The retention deadline cannot come before calling ends."))
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
            # The deadline on the record: the schedule goes by it (tenancy/deadlines.py).
            "retention_until": as_detail(retention_until),
        },
    )
    return contract


@audited(AuditTag.CONTRACT_BILLING_SET)
def set_billing_terms(
    *,
    actor: User,
    contract: Contract,
    unit_price_yen: int,
    rule: BillingRule,
    unanswered_tries: int = 3,
) -> Contract:
    """Set what the contract pays: yen per case and the rule that counts the cases. The
    event keeps the terms before and after, so a changed price is on the record."""
    require(actor, Permission.CONTRACT_ANY_MANAGE)
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
        },
    )
    return contract
