from django.http import HttpRequest
from ninja import Router, Schema
from ninja.errors import HttpError

from yobikake.tenancy import selectors
from yobikake.tenancy.models import Insurer

router = Router(tags=["insurers"])


class InsurerOut(Schema):
    id: int
    number: str
    name: str
    kind: str
    prefecture: str
    fiscal_years: list[int]


def _out(insurer: Insurer) -> InsurerOut:
    return InsurerOut(
        id=insurer.pk,
        number=insurer.number,
        name=insurer.name,
        kind=insurer.kind,
        prefecture=insurer.prefecture,
        fiscal_years=sorted(c.fiscal_year for c in insurer.contracts.all()),
    )


@router.get("/insurers", response=list[InsurerOut], summary="Insurers the caller may see")
def list_insurers(request: HttpRequest) -> list[InsurerOut]:
    insurers = selectors.visible_insurers(request.auth).prefetch_related("contracts")
    return [_out(i) for i in insurers]


@router.get("/insurers/{insurer_id}", response=InsurerOut, summary="One insurer")
def get_insurer(request: HttpRequest, insurer_id: int) -> InsurerOut:
    try:
        return _out(selectors.access_insurer(request.auth, insurer_id))
    except Insurer.DoesNotExist:
        raise HttpError(404, "Not found") from None
