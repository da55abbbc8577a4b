from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from yobikake.accounts.decorators import permission_required
from yobikake.accounts.permissions import Permission
from yobikake.audit import selectors, services
from yobikake.audit.alerts import RULE_LABELS
from yobikake.audit.forms import CloseAlertForm, EventSearchForm
from yobikake.audit.models import Alert


@permission_required(Permission.AUDIT_LOG_VIEW)
def event_list(request: HttpRequest) -> HttpResponse:
    form = EventSearchForm(request.GET or None)
    filters = form.cleaned_data if form.is_valid() else {}
    events = selectors.search_events(
        user=filters.get("user") or "",
        tag=filters.get("tag") or "",
        insurer_id=filters.get("insurer"),
        since=filters.get("since"),
        until=filters.get("until"),
    )
    page = Paginator(events, 100).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request, "audit/event_list.html", {"form": form, "page": page, "query": query.urlencode()}
    )


@permission_required(Permission.ALERT_ANY_MANAGE)
def alert_list(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "audit/alert_list.html",
        {
            "alerts": selectors.alert_queue(),
            "custody": selectors.custody_alerts(),
            "labels": RULE_LABELS,
            "close_form": CloseAlertForm(),
        },
    )


@permission_required(Permission.ALERT_ANY_MANAGE)
@require_POST
def decide_alert(request: HttpRequest, alert_id: int, decision: str) -> HttpResponse:
    """Acknowledge an alert, or close it with the note the form sends."""
    alert = get_object_or_404(Alert, pk=alert_id)
    try:
        if decision == "close":
            services.close_alert(actor=request.user, alert=alert, note=request.POST.get("note", ""))
            messages.success(request, _("Closed."))
        else:
            services.acknowledge_alert(actor=request.user, alert=alert)
            messages.success(request, _("Acknowledged."))
    except services.AuditError as exc:
        messages.error(request, str(exc))
    return redirect("audit:alert_list")


@permission_required(Permission.AUDIT_LOG_VIEW)
def checkpoint_list(request: HttpRequest) -> HttpResponse:
    return render(
        request, "audit/checkpoint_list.html", {"statuses": selectors.checkpoint_history()}
    )
