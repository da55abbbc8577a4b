from django.http import HttpRequest
from ninja import Router, Schema
from ninja.errors import HttpError

from yobikake.intake import selectors
from yobikake.intake.models import TargetList

router = Router(tags=["lists"])


class ListOut(Schema):
    id: int
    insurer_number: str
    fiscal_year: int
    state: str
    rows: int
    aggregates: dict[str, dict[str, int]]


@router.get("/lists/{list_id}", response=ListOut, summary="One target list's figures")
def get_list(request: HttpRequest, list_id: int) -> ListOut:
    """Counts only: no personal data leaves through the API except by export."""
    try:
        target_list = selectors.access_target_list(request.auth, list_id)
    except TargetList.DoesNotExist:
        raise HttpError(404, "Not found") from None
    return ListOut(
        id=target_list.pk,
        insurer_number=target_list.insurer.number,
        fiscal_year=target_list.fiscal_year,
        state=target_list.state,
        rows=target_list.row_count,
        aggregates=target_list.aggregates,
    )
