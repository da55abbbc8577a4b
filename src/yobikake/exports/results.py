"""A campaign's results file for its insurer: per person, the fields the insurer sent and
what calling came to (outcome, attempts, reached, intention, call-back time, phone
research, the checkup day) — canaries of the lists never, the export's own watermark
rows always.

The insurer's staff request it for one of their campaigns (`request_results`); a second
person approves it, from another organisation or in another role (exports/approvals.py);
then the insurer's staff download it once, opened by the vault in one go and encrypted
to the insurer's age key. This module is the `results` kind's producer for
exports/services.py."""

import csv
import io
import random
from datetime import date
from typing import Any

from django.conf import settings
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from yobikake.calling.models import CallTarget, Campaign, ResearchResult
from yobikake.exports import services as export_services
from yobikake.exports import watermarks
from yobikake.exports.models import Approval
from yobikake.incidents import canaries
from yobikake.jp.wareki import fiscal_year_end
from yobikake.synth.people import Person
from yobikake.tenancy.models import Insurer
from yobikake.vault.exports import open_for_export

KIND = Approval.Kind.RESULTS
FIELDS = (
    "name_kanji",
    "name_kana",
    "birth_date",
    "phone",
    "postal_code",
    "address",
    "insured_number",
)
# Always in Japanese: the insurer's systems read the file, whatever the UI language.
HEADERS = (
    gettext_lazy("Full name"),
    gettext_lazy("Name (kana)"),
    gettext_lazy("Sex"),
    gettext_lazy("Date of birth"),
    gettext_lazy("Age"),
    gettext_lazy("Postal code"),
    gettext_lazy("Home address"),
    gettext_lazy("Phone number"),
    gettext_lazy("Insured number"),
    gettext_lazy("Held out (not called)"),
    gettext_lazy("Outcome"),
    gettext_lazy("Attempts"),
    gettext_lazy("Reached"),
    gettext_lazy("Intends to attend"),
    gettext_lazy("Call back at"),
    gettext_lazy("Phone research"),
    gettext_lazy("Checkup taken on"),
)


def _subject(campaign: Campaign) -> dict[str, int]:
    return {"campaign_id": campaign.pk}


def request_results(*, actor: Any, campaign: Campaign) -> Approval:
    """Ask a second person to approve releasing `campaign`'s results to the actor's
    own insurer (a campaign of another insurer is "not found": `targets`)."""
    # Anyone but an insurer's staff is refused the request's permission anyway.
    insurer = actor.organization.insurer or campaign.insurer
    return export_services.request_approval(
        actor=actor, kind=KIND, insurer=insurer, subject=_subject(campaign)
    )


def _campaign(insurer_id: int, subject: dict[str, int]) -> Campaign | None:
    return Campaign.objects.filter(pk=subject.get("campaign_id"), insurer_id=insurer_id).first()


def _call_targets(campaign: Campaign) -> dict[int, CallTarget]:
    """The campaign's people still on a list → their call target, canaries left out
    (the queue never holds one; a row added in the database might)."""
    planted = canaries.of_lists(campaign.lists.all())
    rows = CallTarget.objects.filter(campaign=campaign, target__isnull=False).select_related(
        "last_disposition"
    )
    return {ct.target_id: ct for ct in rows if ct.target_id not in planted}


# The producer interface (exports/services.py).


def targets(*, insurer: Insurer, subject: dict[str, int]) -> list[int]:
    campaign = _campaign(insurer.pk, subject)
    if campaign is None:
        raise export_services.ExportError(_("No such campaign."), code="not_found")
    ids = sorted(_call_targets(campaign))
    if not ids:
        raise export_services.ExportError(
            _("No person of this campaign is stored any more."), code="nothing_to_export"
        )
    return ids


def describe(approval: Approval) -> str:
    campaign = Campaign.objects.get(pk=approval.subject["campaign_id"])
    return _("Results of campaign “%(name)s”: %(n)s persons") % {
        "name": campaign.name,
        "n": approval.subject["target_count"],  # what the request bound
    }


def _person(values: dict[str, str], ct: CallTarget) -> Person:
    birth = values["birth_date"]
    return Person(
        name_kanji=values["name_kanji"],
        name_kana=values["name_kana"],
        sex=ct.sex,
        birth_date=date.fromisoformat(birth) if birth else None,
        phone=values["phone"],
        postal_code=values["postal_code"],
        address=values["address"],
        insured_number=values["insured_number"],
        age=ct.age,
    )


def _flag(value: bool) -> str:
    return "1" if value else "0"


def _line(person: Person, ct: CallTarget, year_end: date) -> list[str]:
    callback = (
        timezone.localtime(ct.callback_at).strftime("%Y-%m-%d %H:%M") if ct.callback_at else ""
    )
    research = str(ResearchResult(ct.research_result).label) if ct.research_result else ""
    return [
        person.name_kanji,
        person.name_kana,
        person.sex,
        person.birth_date.isoformat() if person.birth_date else "",
        # From the birth date where there is one, as for every row (a watermark row's
        # own birth date, not the row its calling columns come from).
        str(person.age_on(year_end) if person.birth_date else (person.age or ct.age)),
        person.postal_code,
        person.address,
        person.phone,
        person.insured_number,
        _flag(ct.holdout),
        ct.last_disposition.label if ct.last_disposition else "",
        str(ct.attempts),
        _flag(ct.reached),
        _flag(ct.intends_to_attend),
        callback,
        research,
        ct.attended_on.isoformat() if ct.attended_on else "",
    ]


def produce(*, actor: Any, approval: Approval) -> export_services.Produced:
    """The CSV (UTF-8 with a BOM, Japanese headers): one line per person of the
    campaign, with the export's watermark rows among them at random places."""
    campaign = Campaign.objects.select_related("insurer").get(pk=approval.subject["campaign_id"])
    call_targets = _call_targets(campaign)
    opened = open_for_export(
        actor=actor,
        approval=approval,
        insurer_id=approval.insurer_id,
        target_ids=list(call_targets),
        fields=FIELDS,
    )
    rows = [
        (_person(values, call_targets[target_id]), call_targets[target_id])
        for target_id, values in sorted(opened.values.items())
    ]
    rng = random.SystemRandom()
    marks = watermarks.make_watermark(
        actor=actor,
        approval=approval,
        templates=[person for person, _ct in rows],
        municipality=campaign.insurer.name,
        fiscal_year=campaign.fiscal_year,
        count=settings.YOBIKAKE_EXPORT_WATERMARK_ROWS,
        rng=rng,
    )
    # A watermark row's calling columns are a real row's, one never called (there are
    # many: the control group aside, people without a number or not yet reached by the
    # queue): nothing sets it apart, and a recount of the statement from the file holds.
    uncalled = [ct for _person, ct in rows if ct.attempts == 0 and not ct.holdout]
    for mark in marks:
        calls = rng.choice(uncalled or [ct for _person, ct in rows])
        rows.insert(rng.randint(0, len(rows)), (mark, calls))
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out)
    with translation.override("ja"):
        writer.writerow([str(h) for h in HEADERS])
        year_end = fiscal_year_end(campaign.fiscal_year)
        for person, ct in rows:
            writer.writerow(_line(person, ct, year_end))
    name = f"results-campaign{campaign.pk}-{campaign.insurer.number}.csv"
    return export_services.Produced(name, out.getvalue().encode("utf-8"), opened.recipient)
