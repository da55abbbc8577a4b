"""The list for notification letters (本人通知): one insurer's affected persons of an
incident — certain and probable, never a canary — for the insurer to write to them.

The security officer requests it per insurer (`request_notification_list`); a second
person approves it (exports); then the insurer's own staff download it once, opened by
the vault in one go and encrypted to the insurer's age key. The people are those the
matches named when the list was requested: the request binds them, and the vault
refuses a download after a match was added or removed. This module is the
`notification_list` kind's producer for exports/services.py."""

import csv
import io
import random
from collections import defaultdict
from typing import Any

from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from yobikake.exports import selectors as export_selectors
from yobikake.exports import services as export_services
from yobikake.exports import watermarks
from yobikake.exports.models import Approval
from yobikake.incidents import selectors
from yobikake.incidents.models import Incident
from yobikake.incidents.reporting import item_labels
from yobikake.synth.people import Person
from yobikake.tenancy.fiscal import FiscalYear
from yobikake.tenancy.models import Insurer
from yobikake.vault.exports import open_for_export

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


def produce(*, actor: Any, approval: Approval) -> export_services.Produced:
    """The CSV (UTF-8 with a BOM, Japanese headers): one line per person and address,
    with the fiscal years whose lists held them and the items leaked."""
    incident = Incident.objects.get(pk=approval.subject["incident_id"])
    years = _years_of(incident, approval.insurer_id)
    opened = open_for_export(
        actor=actor,
        approval=approval,
        insurer_id=approval.insurer_id,
        target_ids=list(years),
        fields=FIELDS,
    )
    # The same person on two years' lists is one letter (while the address is the same).
    persons: dict[tuple[str, ...], set[int]] = defaultdict(set)
    for target_id, values in opened.values.items():
        persons[tuple(values[f] for f in FIELDS)].add(years[target_id])
    # The export's watermark: fictitious people shaped like its rows, sorted in among
    # them, their blind indexes kept so that leak scoping names this export.
    rng = random.SystemRandom()
    real = list(persons)
    marks = watermarks.make_watermark(
        actor=actor,
        approval=approval,
        templates=[
            Person(name, kana, "1", None, "", postal, address, "", age=60)
            for name, kana, postal, address in real
        ],
        municipality=approval.insurer.name,
        fiscal_year=min(years.values(), default=incident.aware_on.year),
        count=settings.YOBIKAKE_EXPORT_WATERMARK_ROWS,
        rng=rng,
    )
    for mark in marks:
        persons[(mark.name_kanji, mark.name_kana, mark.postal_code, mark.address)] = set(
            persons[rng.choice(real)]
        )
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out)
    with translation.override("ja"):
        writer.writerow([str(h) for h in HEADERS])
        items = "、".join(item_labels(incident.items))
    for person in sorted(persons, key=lambda p: (p[1], p[3], p[0])):
        fiscal = "、".join(str(FiscalYear(y)) for y in sorted(persons[person]))
        writer.writerow([*person, fiscal, items])
    name = f"notification-list-incident{incident.pk}-{approval.insurer.number}.csv"
    return export_services.Produced(name, out.getvalue().encode("utf-8"), opened.recipient)
