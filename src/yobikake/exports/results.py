"""A campaign's results file for its insurer: per person, the fields the insurer sent and
what calling came to (outcome, attempts, reached, intention, call-back time, phone
research, the checkup day) — canaries of the lists never, the export's own watermark
rows always.

The insurer's staff request it for one of their campaigns (`request_results`); a second
person approves it, from another organisation or in another role (exports/approvals.py);
then the insurer's staff download it once: the custodian opens its people, fills the
file and encrypts it to the insurer's age key (vault/exports.py), and the application
relays the ciphertext. This module is the `results` kind's producer for
exports/services.py.

The file is read by the insurer's staff and loaded into their systems: every column is
in words or in dates they read (性別 男/女, 生年月日 in 和暦 and 西暦, 結果 for everyone,
called or not), empty only where the insurer's own list gave nothing (a list of ages
has no birth dates). The approval fixes how many watermark rows it carries; the pages
say how many, and that their insured numbers are nobody's (exports/watermarks.py)."""

import random
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from django.conf import settings
from django.db.models import Max
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from yobikake.calling.models import Attempt, CallTarget, Campaign, ResearchResult
from yobikake.custody.protocol import Cell, SealedCell
from yobikake.exports import services as export_services
from yobikake.exports import watermarks
from yobikake.exports.models import Approval
from yobikake.incidents import canaries
from yobikake.intake.models import Target
from yobikake.jp.dates import slash_date
from yobikake.jp.wareki import fiscal_year_end, wareki_date
from yobikake.synth.people import Person
from yobikake.tenancy.models import Insurer
from yobikake.vault.exports import Draft, Released, export_file

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
    gettext_lazy("Date of birth (Japanese era)"),
    gettext_lazy("Date of birth (Western calendar)"),
    gettext_lazy("Age at the fiscal year's end"),
    gettext_lazy("Postal code"),
    gettext_lazy("Home address"),
    gettext_lazy("Phone number"),
    gettext_lazy("Insured number"),
    gettext_lazy("Calling group"),
    gettext_lazy("Outcome"),
    gettext_lazy("Attempts"),
    gettext_lazy("Last call at"),
    gettext_lazy("Reached"),
    gettext_lazy("Intends to attend"),
    gettext_lazy("Call back at"),
    gettext_lazy("Phone research"),
    gettext_lazy("Checkup taken on"),
)
SEXES = {"1": gettext_lazy("Male"), "2": gettext_lazy("Female")}
# What the file says of someone no call reached yet, by where they stand in the queue.
NOT_CALLED = {
    CallTarget.State.RESEARCH: gettext_lazy("Not called: phone number being researched"),
    CallTarget.State.NOT_FOUND: gettext_lazy("Not called: no phone number found"),
}
DATE_TIME = "%Y/%m/%d %H:%M"


def _subject(campaign: Campaign) -> dict[str, int]:
    return {"campaign_id": campaign.pk}


def request_results(*, actor: Any, campaign: Campaign) -> Approval:
    """Ask a second person to approve releasing `campaign`'s results to the actor's
    own insurer (a campaign of another insurer is "not found": `targets`)."""
    # Anyone but an insurer's staff is refused the request's permission anyway.
    insurer = actor.organization.insurer or campaign.insurer
    return export_services.request_approval(
        actor=actor,
        kind=KIND,
        insurer=insurer,
        subject=_subject(campaign),
        # Sealed with the approval: the approver sees how many, and the file has as many
        # whatever the setting says when it is downloaded.
        terms={"watermark_rows": settings.YOBIKAKE_EXPORT_WATERMARK_ROWS},
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


def _watermark_rows(approval: Approval) -> int:
    # Requests made before approvals carried the number take the setting, as they did.
    rows: int = approval.subject.get("watermark_rows", settings.YOBIKAKE_EXPORT_WATERMARK_ROWS)
    return rows


def describe(approval: Approval) -> str:
    campaign = Campaign.objects.get(pk=approval.subject["campaign_id"])
    persons = approval.subject["target_count"]  # what the request bound
    marks = _watermark_rows(approval)
    return _(
        "Results of campaign “%(name)s”: %(n)s persons (and %(k)s watermark rows, "
        "%(rows)s rows in all)"
    ) % {"name": campaign.name, "n": persons, "k": marks, "rows": persons + marks}


def _yes_no(value: bool) -> str:
    return _("yes") if value else _("no")


def _when(at: datetime | None) -> str:
    return timezone.localtime(at).strftime(DATE_TIME) if at else ""


def _outcome(ct: CallTarget) -> str:
    if ct.holdout:
        return _("Not called (control group)")
    if ct.last_disposition is not None:
        return ct.last_disposition.label
    return str(NOT_CALLED.get(CallTarget.State(ct.state), _("Not called yet")))


@dataclass(frozen=True)
class _Calls:
    """What calling came to for one person of the campaign."""

    target: CallTarget
    last_call_at: datetime | None


def _calling(calls: _Calls) -> list[Cell]:
    ct = calls.target
    research = str(ResearchResult(ct.research_result).label) if ct.research_result else ""
    return [
        str(_("Held out (control group)") if ct.holdout else _("Called group")),
        _outcome(ct),
        str(ct.attempts),
        _when(calls.last_call_at),
        _yes_no(ct.reached),
        _yes_no(ct.intends_to_attend),
        _when(ct.callback_at),
        research,
        slash_date(ct.attended_on) if ct.attended_on else "",
    ]


def _sealed_line(target_id: int, calls: _Calls, year_end: date) -> list[Cell]:
    """A person's line: their values filled in custody, the rest the application's."""
    ct = calls.target

    def cell(field: str, form: str = "text", arg: str = "", empty: str = "") -> Cell:
        return SealedCell(row_id=target_id, field=field, format=form, arg=arg, empty=empty)

    return [
        cell("name_kanji"),
        cell("name_kana"),
        str(SEXES[ct.sex]),
        cell("birth_date", "wareki"),
        cell("birth_date", "slash_date"),
        # From the birth date where there is one; else the age the list gave.
        cell("birth_date", "age_on", year_end.isoformat(), empty=str(ct.age)),
        cell("postal_code"),
        cell("address"),
        cell("phone"),
        cell("insured_number"),
        *_calling(calls),
    ]


def _mark_line(mark: Person, calls: _Calls, year_end: date) -> list[Cell]:
    """A watermark row's line, written by the application in the forms the custodian
    writes a person's (the same jp/ functions)."""
    birth = mark.birth_date
    return [
        mark.name_kanji,
        mark.name_kana,
        str(SEXES[mark.sex]),
        wareki_date(birth) if birth else "",
        slash_date(birth) if birth else "",
        # Its own birth date's, not the row its calling columns come from.
        str(mark.age_on(year_end) if birth else (mark.age or calls.target.age)),
        mark.postal_code,
        mark.address,
        mark.phone,
        mark.insured_number,
        *_calling(calls),
    ]


def _last_calls(campaign: Campaign) -> dict[int, datetime]:
    return dict(
        Attempt.objects.filter(call_target__campaign=campaign)
        .values("call_target")
        .annotate(last=Max("started_at"))
        .values_list("call_target", "last")
    )


def _shape(target: Target) -> watermarks.Shape:
    return watermarks.Shape(
        sex=target.sex,
        age=target.age,
        birth_date=bool(target.birth_date),
        phone=bool(target.phone),
        postal_code=bool(target.postal_code),
        insured_number=bool(target.insured_number),
    )


def produce(*, actor: Any, approval: Approval) -> Released:
    """The CSV (UTF-8 with a BOM, Japanese headers), made and encrypted in custody: one
    line per person of the campaign, with the export's watermark rows among them at
    random places."""
    campaign = Campaign.objects.select_related("insurer").get(pk=approval.subject["campaign_id"])
    call_targets = _call_targets(campaign)
    last_calls = _last_calls(campaign)
    year_end = fiscal_year_end(campaign.fiscal_year)

    def compose(targets: list[Target]) -> Draft:
        people = [
            (t, _Calls(call_targets[t.pk], last_calls.get(call_targets[t.pk].pk)))
            for t in sorted(targets, key=lambda t: t.pk)
        ]
        rng = random.SystemRandom()
        watermark = watermarks.draw_watermark(
            approval=approval,
            shapes=[_shape(t) for t, _calls in people],
            municipality=campaign.insurer.name,
            fiscal_year=campaign.fiscal_year,
            count=_watermark_rows(approval),
            rng=rng,
        )
        with translation.override("ja"):
            lines = [_sealed_line(t.pk, calls, year_end) for t, calls in people]
            # A watermark row's calling columns are a real row's, one never called (there
            # are many: the control group aside, people without a number or not yet
            # reached by the queue) and, like it, with or without a number on the list:
            # nothing sets it apart, and a recount of the statement from the file holds.
            uncalled = [
                (t, c) for t, c in people if c.target.attempts == 0 and not c.target.holdout
            ]
            for mark in watermark.marks:
                alike = [c for t, c in uncalled if bool(t.phone) == bool(mark.phone)]
                calls = rng.choice(alike or [c for _t, c in uncalled] or [c for _t, c in people])
                lines.insert(rng.randint(0, len(lines)), _mark_line(mark, calls, year_end))
            header = tuple(str(h) for h in HEADERS)
        return Draft(
            name=f"results-campaign{campaign.pk}-{campaign.insurer.number}.csv",
            header=header,
            lines=lines,
            record=lambda: watermark.record(actor),
        )

    return export_file(
        actor=actor,
        approval=approval,
        insurer_id=approval.insurer_id,
        target_ids=list(call_targets),
        fields=FIELDS,
        compose=compose,
    )
