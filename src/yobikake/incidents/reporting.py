"""The report to the Personal Information Protection Commission (個人情報保護委員会), as
a draft: the items the rules require, in their order. Items (2) and (3) — what was
leaked and whose — come from the scoping; the free-text items are the security
officer's, stored in `Incident.report` by `update_report`."""

from typing import Any

from django.utils.translation import gettext_lazy as _

from yobikake.accounts.permissions import Permission
from yobikake.accounts.selectors import require
from yobikake.audit.services import append_event, audited
from yobikake.audit.tags import AuditTag
from yobikake.incidents.models import Incident

# What each kind of leaked item is called (incident.items, in scoping.ITEMS order).
ITEM_LABELS = {
    "name": _("Full name"),
    "kana": _("Name (kana)"),
    "sex": _("Sex"),
    "birth": _("Date of birth"),
    "phone": _("Phone"),
    "postal": _("Postal code"),
    "address": _("Home address"),
    "insured": _("Insured number"),
}


def item_labels(items: list[str]) -> list[str]:
    return [str(ITEM_LABELS.get(item, item)) for item in items]


# The report's items as the rules number them; the keys of the free-text ones are how
# `Incident.report` stores them (None: filled from the scoping alone).
REPORT_ITEMS = (
    ("summary", _("Summary")),
    (None, _("Items of the personal data leaked or that may have been leaked")),
    (None, _("Number of persons whose personal data was or may have been leaked")),
    ("cause", _("Cause")),
    ("secondary_damage", _("Whether there is secondary damage or a risk of it, and what")),
    ("persons_response", _("What has been done for the persons concerned")),
    ("publication", _("Whether and how the matter has been made public")),
    ("prevention", _("Measures to prevent a recurrence")),
    ("other", _("Other matters for reference")),
)
TEXT_KEYS = tuple(key for key, _label in REPORT_ITEMS if key)
TEXT_MAX = 4000


@audited(AuditTag.INCIDENT_REPORT)
def update_report(*, actor: Any, incident: Incident, texts: dict[str, str]) -> Incident:
    """Store the report's free-text items as drafted (those in `texts`; the rest stay)."""
    require(actor, Permission.INCIDENT_ANY_MANAGE)
    incident = Incident.objects.select_for_update().get(pk=incident.pk)
    report = dict(incident.report)
    changed = 0
    for key in TEXT_KEYS:
        if key not in texts:
            continue
        text = texts[key].strip()[:TEXT_MAX]
        if report.get(key, "") != text:
            report[key] = text
            changed += 1
    incident.report = report
    incident.save(update_fields=["report"])
    # Which items changed is said by their number, never by what they say.
    append_event(
        tag=AuditTag.INCIDENT_REPORT,
        actor=actor,
        details={"incident_id": incident.pk, "items_changed": changed},
    )
    return incident
