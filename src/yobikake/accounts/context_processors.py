from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest
from django.urls import reverse
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from yobikake.accounts.permissions import Permission
from yobikake.accounts.selectors import active_roles, has_permission, user_permissions


@dataclass(frozen=True)
class NavItem:
    label: str | Promise
    url: str


# Menu entries and the permission each needs, in menu order.
_MENU: tuple[tuple[Permission, str | Promise, str], ...] = (
    (Permission.INSURER_ANY_VIEW, _("Insurers"), "tenancy:insurer_list"),
    (Permission.PARTICIPATION_MATRIX_VIEW, _("Participation"), "tenancy:participation"),
    (Permission.LIST_OWN_IMPORT, _("Target lists"), "intake:list_index"),
    (Permission.TARGET_REVEAL_CALL, _("Calls"), "calling:operator"),
    (Permission.PROGRESS_OWN_VIEW, _("Campaigns"), "calling:campaign_index"),
    (Permission.AGGREGATE_ANY_VIEW, _("Campaigns"), "calling:campaign_index"),
    (Permission.PROGRESS_LIVE_VIEW, _("Campaigns"), "calling:campaign_index"),
    (Permission.PROGRESS_LIVE_VIEW, _("Supervisor board"), "calling:board"),
    (Permission.PROGRESS_OWN_VIEW, _("Effect"), "reports:effect_summary"),
    (Permission.AGGREGATE_ANY_VIEW, _("Effect"), "reports:effect_summary"),
    (Permission.LIST_OWN_IMPORT, _("Checkup results"), "reports:results_upload"),
    (Permission.TARGET_REVEAL_RESEARCH, _("Phone research"), "calling:research"),
    (Permission.CAMPAIGN_ANY_RUN, _("Directory import"), "calling:research_directory"),
    (Permission.INCIDENT_INQUIRY_LOOKUP, _("Inquiry desk"), "inquiry:desk"),
    (Permission.ACCOUNT_USER_MANAGE, _("Accounts"), "accounts:user_list"),
    (Permission.ACCOUNT_ROLE_APPROVE, _("Role approvals"), "accounts:role_requests"),
    (Permission.EXPORT_OWN_DOWNLOAD, _("Exports"), "exports:export_index"),
    (Permission.EXPORT_ANY_APPROVE, _("Export approvals"), "exports:approval_list"),
    (Permission.RETENTION_ANY_MANAGE, _("Retention"), "exports:retention_index"),
    (Permission.EXPORT_OWN_REQUEST, _("Retention"), "exports:retention_index"),
    (Permission.ALERT_ANY_MANAGE, _("Alerts"), "audit:alert_list"),
    (Permission.INCIDENT_ANY_MANAGE, _("Incidents"), "incidents:incident_list"),
    (Permission.AUDIT_LOG_VIEW, _("Audit log"), "audit:event_list"),
    (Permission.AUDIT_LOG_VIEW, _("Checkpoints"), "audit:checkpoint_list"),
    (Permission.API_TOKEN_CREATE, _("API tokens"), "accounts:api_tokens"),
)


def navigation(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or not user.is_verified():
        return {"nav": [], "my_roles": []}
    items = [NavItem(_("Home"), reverse("home"))]
    insurer_id = user.organization.insurer_id
    if has_permission(user, Permission.INSURER_OWN_VIEW) and insurer_id:
        items.append(NavItem(_("My insurer"), reverse("tenancy:insurer_detail", args=[insurer_id])))
    permissions = user_permissions(user)
    for perm, label, name in _MENU:
        if perm not in permissions:
            continue  # (reversed only when shown: this runs on every page)
        url = reverse(name)
        if all(item.url != url for item in items):
            items.append(NavItem(label, url))
    return {"nav": items, "my_roles": sorted(r.label for r in active_roles(user))}
