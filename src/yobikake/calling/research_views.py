"""Phone research screens: the researcher's (one person, nothing else) and the
supervisor's directory upload with the found rates."""

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods, require_POST

from yobikake.accounts.decorators import permission_required
from yobikake.accounts.errors import AccountError
from yobikake.accounts.permissions import Permission
from yobikake.calling import research
from yobikake.calling.models import Campaign
from yobikake.intake.uploads import discard_upload, opened_upload
from yobikake.tenancy.models import Insurer
from yobikake.vault.models import Purpose
from yobikake.vault.reveal import RevealRefused, reveal


@permission_required(Permission.TARGET_REVEAL_RESEARCH)
def research_screen(request: HttpRequest) -> HttpResponse:
    """The person checked out to the researcher, or the button for the next one."""
    call_target = research.current_research(request.user)
    if call_target is None:
        return render(request, "calling/research.html")
    try:
        # Outside any transaction: the reveal commits its own audit event.
        shown = reveal(request.user, call_target.target, Purpose.RESEARCH)
    except RevealRefused as exc:
        messages.error(request, str(exc))
        return render(request, "calling/research.html", status=403)
    return render(request, "calling/research.html", {"ct": call_target, "shown": shown})


@permission_required(Permission.TARGET_REVEAL_RESEARCH)
@require_POST
def research_next(request: HttpRequest) -> HttpResponse:
    try:
        research.next_research(researcher=request.user)
    except research.NothingToResearch as exc:
        messages.info(request, str(exc))
    return redirect("calling:research")


@permission_required(Permission.TARGET_REVEAL_RESEARCH)
@require_POST
def research_record(request: HttpRequest, call_target_id: int) -> HttpResponse:
    not_found = request.POST.get("result") == "not_found"
    phone = None if not_found else request.POST.get("phone", "")[:40]
    try:
        research.record_research(actor=request.user, call_target_id=call_target_id, phone=phone)
    except AccountError as exc:
        messages.error(request, str(exc))
        return redirect("calling:research")
    messages.success(
        request, _("Recorded as not found.") if not_found else _("The number is stored.")
    )
    return redirect("calling:research")


class DirectoryForm(forms.Form):
    insurer = forms.ModelChoiceField(
        label=gettext_lazy("Insurer"), queryset=Insurer.objects.order_by("number")
    )
    file = forms.FileField(
        label=gettext_lazy("Directory file (CSV, TSV or Excel)"),
        help_text=gettext_lazy(
            "Columns 氏名, 住所, 電話番号 (and カナ氏名 if given); Shift_JIS (CP932) or UTF-8."
        ),
    )


@permission_required(Permission.CAMPAIGN_ANY_RUN)
@require_http_methods(["GET", "POST"])
def research_directory(request: HttpRequest) -> HttpResponse:
    """Upload a phone directory for one insurer; see what it found, and every running
    campaign's found rate per list."""
    form = DirectoryForm(request.POST or None, request.FILES or None)
    counts = None
    if request.method == "POST":
        uploaded = request.FILES.get("file")
        upload_id = getattr(uploaded, "upload_id", None)
        if getattr(request, "upload_too_large", False):  # cut off while it arrived
            form.fields["file"].required = False
            form.add_error("file", _("The file is too large."))
        elif form.is_valid() and upload_id:
            try:
                with opened_upload(upload_id) as path:
                    counts = research.import_directory(
                        actor=request.user, insurer=form.cleaned_data["insurer"], path=path
                    )
            except AccountError as exc:
                messages.error(request, str(exc))
        if upload_id and counts is None:
            discard_upload(upload_id)  # (opened_upload removes it once opened)
    campaigns = Campaign.objects.filter(state=Campaign.State.RUNNING).select_related("insurer")
    return render(
        request,
        "calling/research_directory.html",
        {
            "form": form,
            "counts": counts,
            "rates": [(c, research.research_rates(c)) for c in campaigns],
        },
    )
