"""The list for notification letters (本人通知): one insurer's affected persons of an
incident — certain and probable, never a canary — for the insurer to write to them.

The security officer requests it per insurer (`request_notification_list`); a second
person approves it (exports); then the insurer's own staff download it once: the
custodian opens its people, fills the list and encrypts it to the insurer's age key
(vault/exports.py), and the application relays the ciphertext. The people are those the
matches named when the list was requested: the request binds them, and the vault
refuses a download after a match was added or removed. This module is the
`notification_list` kind's producer for exports/services.py."""

import random
from collections import defaultdict
from typing import Any

from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from yobikake.custody.protocol import Cell, SealedCell
from yobikake.exports import selectors as export_selectors
from yobikake.exports import services as export_services
from yobikake.exports import watermarks
from yobikake.exports.models import Approval
from yobikake.incidents import selectors
from yobikake.incidents.models import Incident
from yobikake.incidents.reporting import item_labels
from yobikake.intake.models import Target
from yobikake.tenancy.fiscal import FiscalYear
from yobikake.tenancy.models import Insurer
from yobikake.vault.exports import Draft, Released, export_file

KIND = Approval.Kind.NOTIFICATION_LIST
FIELDS = ("name_kanji", "name_kana", "postal_code", "address")
# Always in Japanese: the insurer's systems read the file, whatever the UI language.
HEADERS = (
    gettext_lazy("Full name"),
    gettext_lazy("Name (kana)"),
    gettext_lazy("Postal code"),
    gettext_lazy("Home address"),
    gettext_lazy("Fiscal years on the lists"),
    gettext_lazy("Items leaked"),
)


def _subject(incident: Incident) -> dict[str, int]:
    return {"incident_id": incident.pk}


def request_notification_list(*, actor: Any, incident: Incident, insurer: Insurer) -> Approval:
    """Ask a second person to approve releasing the list to `insurer`."""
    return export_services.request_approval(
        actor=actor, kind=KIND, insurer=insurer, subject=_subject(incident)
    )


def requests_of(incident: Incident) -> dict[int, Approval]:
    """The newest request for the incident's list, per insurer id."""
    return export_selectors.latest_approvals(KIND, _subject(incident))


def _years_of(incident: Incident, insurer_id: int) -> dict[int, int]:
    """Each affected target of the insurer → the fiscal year of its list."""
    return dict(
        selectors.affected(incident)
        .filter(insurer_id=insurer_id)
        .values_list("target_id", "fiscal_year")
        .distinct()
    )


# The producer interface (exports/services.py).


def targets(*, insurer: Insurer, subject: dict[str, int]) -> list[int]:
    incident = Incident.objects.filter(pk=subject.get("incident_id")).first()
    if incident is None or incident.state != Incident.State.SCOPED:
        raise export_services.ExportError(_("The incident has not been scoped."), code="not_scoped")
    ids = sorted(_years_of(incident, insurer.pk))
    if not ids:
        raise export_services.ExportError(
            _("No affected person is on this insurer's lists."), code="nothing_to_export"
        )
    return ids


def describe(approval: Approval) -> str:
    incident = Incident.objects.get(pk=approval.subject["incident_id"])
    return _("Incident #%(id)s “%(title)s”: %(n)s records of affected persons") % {
        "id": incident.pk,
        "title": incident.title,
        "n": approval.subject["target_count"],  # what the request bound
    }


def _letters(targets: list[Target]) -> dict[tuple[bytes, bytes], list[Target]]:
    """The targets by the person and address they name (their blind indexes of name and
    address, and of kana and address): the same person on two years' lists is one
    letter, while the address is the same."""
    letters: dict[tuple[bytes, bytes], list[Target]] = defaultdict(list)
    for target in sorted(targets, key=lambda t: t.pk):
        key = (bytes(target.idx_name_address or b""), bytes(target.idx_kana_address or b""))
        letters[key if all(key) else (b"target", str(target.pk).encode())].append(target)
    return letters


def _fiscal(years: set[int]) -> str:
    return "、".join(str(FiscalYear(y)) for y in sorted(years))


def produce(*, actor: Any, approval: Approval) -> Released:
    """The CSV (UTF-8 with a BOM, Japanese headers), made and encrypted in custody: one
    line per person and address, with the fiscal years whose lists held them and the
    items leaked, in kana order."""
    incident = Incident.objects.get(pk=approval.subject["incident_id"])
    years = _years_of(incident, approval.insurer_id)

    def compose(targets: list[Target]) -> Draft:
        letters = list(_letters(targets).values())
        held = [{years[t.pk] for t in group} for group in letters]
        lines: list[list[Cell]] = []
        with translation.override("ja"):
            header = tuple(str(h) for h in HEADERS)
            items = "、".join(item_labels(incident.items))
        for group, group_years in zip(letters, held, strict=True):
            first = group[0].pk
            lines.append(
                [
                    *(SealedCell(row_id=first, field=f) for f in FIELDS),
                    _fiscal(group_years),
                    items,
                ]
            )
        # The export's watermark: fictitious people of the rows' shapes, sorted in among
        # them, their blind indexes kept so that leak scoping names this export.
        rng = random.SystemRandom()
        watermark = watermarks.draw_watermark(
            approval=approval,
            shapes=[
                watermarks.Shape(
                    sex=group[0].sex,
                    age=group[0].age,
                    birth_date=False,
                    phone=False,
                    postal_code=bool(group[0].postal_code),
                    insured_number=False,
                )
                for group in letters
            ],
            municipality=approval.insurer.name,
            fiscal_year=min(years.values(), default=incident.aware_on.year),
            count=settings.YOBIKAKE_EXPORT_WATERMARK_ROWS,
            rng=rng,
        )
        for mark in watermark.marks:
            fiscal = _fiscal(rng.choice(held))
            lines.append([mark.name_kanji, mark.name_kana, mark.postal_code, mark.address])
            lines[-1] += [fiscal, items]
        return Draft(
            name=f"notification-list-incident{incident.pk}-{approval.insurer.number}.csv",
            header=header,
            lines=lines,
            sort_by=(1, 3, 0),  # kana, address, name
            record=lambda: watermark.record(actor),
        )

    return export_file(
        actor=actor,
        approval=approval,
        insurer_id=approval.insurer_id,
        target_ids=list(years),
        fields=FIELDS,
        compose=compose,
    )
