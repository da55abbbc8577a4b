from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from yobikake.accounts.decorators import permission_required
from yobikake.accounts.errors import AccountError
from yobikake.accounts.permissions import Permission
from yobikake.accounts.selectors import has_permission
from yobikake.reports.files import csv_text, xlsx_bytes
from yobikake.tenancy import selectors, services
from yobikake.tenancy.forms import BillingTermsForm
from yobikake.tenancy.models import BillingRule, Contract, Insurer


@permission_required(Permission.INSURER_ANY_VIEW)
def insurer_list(request: HttpRequest) -> HttpResponse:
    insurers = selectors.visible_insurers(request.user)
    return render(request, "tenancy/insurer_list.html", {"insurers": insurers})


@permission_required(Permission.PARTICIPATION_MATRIX_VIEW)
def participation(request: HttpRequest) -> HttpResponse:
    from yobikake.reports.selectors import list_matrix

    return render(request, "tenancy/participation.html", {"matrix": list_matrix(request.user)})


def insurer_detail(request: HttpRequest, insurer_id: int) -> HttpResponse:
    try:
        insurer = selectors.access_insurer(request.user, insurer_id)
    except Insurer.DoesNotExist:
        raise Http404 from None
    return render(
        request,
        "tenancy/insurer_detail.html",
        {"insurer": insurer, "contracts": selectors.contracts_of(insurer)},
    )


# Who sees a contract's closing statement: the federation, and the insurer (its own).
_SEES_STATEMENTS = (Permission.CONTRACT_ANY_MANAGE, Permission.PROGRESS_OWN_VIEW)


def _access_contract(request: HttpRequest, contract_id: int) -> Contract:
    try:
        return selectors.access_contract(request.user, contract_id)
    except Contract.DoesNotExist:
        raise Http404 from None


def _terms_form(contract: Contract) -> BillingTermsForm:
    return BillingTermsForm(
        initial={
            "unit_price_yen": contract.unit_price_yen,
            "billing_rule": contract.billing_rule,
            "unanswered_tries": contract.unanswered_tries,
        }
    )


@permission_required(*_SEES_STATEMENTS)
def statement(request: HttpRequest, contract_id: int) -> HttpResponse:
    """The contract's closing statement, with the check against the progress pages;
    the federation sets the billing terms here."""
    contract = _access_contract(request, contract_id)
    figures = selectors.closing_statement(contract)
    return render(
        request,
        "tenancy/statement.html",
        {
            "contract": contract,
            "statement": figures,
            "lines": figures.lines(),
            "rule_label": BillingRule(contract.billing_rule).label,
            "terms_form": _terms_form(contract)
            if has_permission(request.user, Permission.CONTRACT_ANY_MANAGE)
            else None,
        },
    )


@permission_required(*_SEES_STATEMENTS)
def statement_download(request: HttpRequest, contract_id: int, fmt: str) -> HttpResponse:
    contract = _access_contract(request, contract_id)
    table = selectors.closing_statement(contract).table()
    name = f"statement-{contract.insurer.number}-fy{contract.fiscal_year}"
    if fmt == "csv":
        response = HttpResponse(csv_text(table), content_type="text/csv; charset=utf-8")
    else:
        response = HttpResponse(
            xlsx_bytes(table, "statement"),
            content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        )
    response["Content-Disposition"] = f'attachment; filename="{name}.{fmt}"'
    return response


@permission_required(Permission.CONTRACT_ANY_MANAGE)
@require_POST
def billing_terms(request: HttpRequest, contract_id: int) -> HttpResponse:
    contract = _access_contract(request, contract_id)
    form = BillingTermsForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(e for errors in form.errors.values() for e in errors))
        return redirect("tenancy:statement", contract_id=contract.pk)
    try:
        services.set_billing_terms(
            actor=request.user,
            contract=contract,
            unit_price_yen=form.cleaned_data["unit_price_yen"],
            rule=BillingRule(form.cleaned_data["billing_rule"]),
            unanswered_tries=form.cleaned_data["unanswered_tries"],
        )
        messages.success(request, _("Billing terms saved."))
    except AccountError as exc:
        messages.error(request, str(exc))
    return redirect("tenancy:statement", contract_id=contract.pk)
