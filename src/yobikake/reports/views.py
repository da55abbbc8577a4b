"""The effect pages (per campaign, and across campaigns) with their downloads, and the
insurer's upload of checkup results."""

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from yobikake.accounts.decorators import permission_required
from yobikake.accounts.errors import AccountError
from yobikake.accounts.permissions import Permission
from yobikake.calling.models import Campaign
from yobikake.calling.results import record_checkup_results
from yobikake.calling.selectors import access_campaign, visible_campaigns
from yobikake.intake.uploads import opened_upload
from yobikake.reports.chart import uptake_chart
from yobikake.reports.effect import Comparison, effect_rows
from yobikake.reports.files import csv_text, xlsx_bytes
from yobikake.reports.forms import ResultsForm
from yobikake.reports.selectors import (
    campaign_effect,
    effect_summary,
    has_results,
    synthetic_results,
)

SEES_CAMPAIGNS = (
    Permission.PROGRESS_OWN_VIEW,
    Permission.AGGREGATE_ANY_VIEW,
    Permission.PROGRESS_LIVE_VIEW,
)


def cell_label(key: str) -> str | Promise:
    if key == "all":
        return _("Everyone")
    if key == "sex-1":
        return _("Men")
    if key == "sex-2":
        return _("Women")
    if key == "age-other":
        return _("Other ages")
    low, high = key.removeprefix("age-").split("-")
    return _("Aged %(low)s–%(high)s") % {"low": low, "high": high}


def _labelled(cells: tuple[Comparison, ...]) -> list[tuple[str | Promise, Comparison]]:
    return [(cell_label(c.key), c) for c in cells]


def _access(request: HttpRequest, campaign_id: int) -> Campaign:
    try:
        return access_campaign(request.user, campaign_id)
    except Campaign.DoesNotExist:
        raise Http404 from None


@permission_required(*SEES_CAMPAIGNS)
def effect(request: HttpRequest, campaign_id: int) -> HttpResponse:
    campaign = _access(request, campaign_id)
    measured = campaign_effect(campaign)
    cells = (measured.overall, *measured.by_sex, *measured.by_age)
    chart = uptake_chart(list(cells))
    return render(
        request,
        "reports/effect.html",
        {
            "campaign": campaign,
            "effect": measured,
            "overall": measured.overall,
            "cells": _labelled(cells),
            "chart": chart,
            "chart_groups": [(g, cell_label(g.key)) for g in chart.groups] if chart else [],
            "synthetic": synthetic_results(campaign),
            "has_results": has_results(campaign),
        },
    )


@permission_required(*SEES_CAMPAIGNS)
def effect_download(request: HttpRequest, campaign_id: int, fmt: str) -> HttpResponse:
    campaign = _access(request, campaign_id)
    table = effect_rows(campaign_effect(campaign))
    name = f"effect-{campaign.insurer.number}-fy{campaign.fiscal_year}-{campaign.pk}"
    if fmt == "csv":
        response = HttpResponse(csv_text(table), content_type="text/csv; charset=utf-8")
    else:
        response = HttpResponse(
            xlsx_bytes(table, "effect"),
            content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        )
    response["Content-Disposition"] = f'attachment; filename="{name}.{fmt}"'
    return response


@permission_required(*SEES_CAMPAIGNS)
def summary(request: HttpRequest) -> HttpResponse:
    """Every started campaign the user may see, and the differences pooled."""
    figures = effect_summary(visible_campaigns(request.user))
    return render(request, "reports/effect_summary.html", {"summary": figures})


@permission_required(Permission.LIST_OWN_IMPORT)
def results_upload(request: HttpRequest) -> HttpResponse:
    insurer = request.user.organization.insurer
    form = ResultsForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        uploaded = form.cleaned_data["file"]
        try:
            # The plaintext exists only for the length of the match.
            with opened_upload(uploaded.upload_id) as path:
                result = record_checkup_results(actor=request.user, insurer=insurer, path=path)
        except AccountError as exc:
            messages.error(request, str(exc))
            return redirect("reports:results_upload")
        return render(
            request, "reports/results_upload.html", {"form": ResultsForm(), "result": result}
        )
    return render(request, "reports/results_upload.html", {"form": form})
