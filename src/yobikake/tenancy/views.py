from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from yobikake.accounts.decorators import permission_required
from yobikake.accounts.permissions import Permission
from yobikake.tenancy import selectors
from yobikake.tenancy.models import Insurer


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
