"""The rules an approval and an insurer's key live by: their MACs, and who may approve.

Both rows are MAC'd under the authorization key (accounts/authz.py), written only by
exports/services.py (and the vault, when it marks an approval used). A row that does not
match its MAC releases nothing and raises a critical alert. A MAC cannot tell a used
approval from its earlier approved state, so the vault also asks the audit log whether
the approval was already used (vault/exports.py).

An approval also binds the people it releases (`bind_targets`): the file is built at
download time from rows nothing protects (an incident's matches), so the vault checks
that they still name exactly the people the approver saw counted (`binds`)."""

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.utils.translation import gettext as _

from yobikake.accounts import authz
from yobikake.accounts.errors import NotPermitted
from yobikake.accounts.permissions import Permission
from yobikake.accounts.selectors import active_roles, has_permission
from yobikake.exports.models import Approval, InsurerKey


def _when(at: datetime | None) -> str:
    return at.astimezone(UTC).isoformat() if at else ""


def _join(label: str, fields: tuple[Any, ...]) -> bytes:
    return "\x1f".join([label, *("" if f is None else str(f) for f in fields)]).encode()


def _approval_message(a: Approval) -> bytes:
    return _join(
        "approval v1",
        (
            a.pk,
            a.kind,
            a.insurer_id,
            json.dumps(a.subject, sort_keys=True, separators=(",", ":")),
            a.recipient_id,
            a.state,
            a.requested_by_id,
            _when(a.requested_at),
            a.decided_by_id,
            _when(a.decided_at),
            _when(a.expires_at),
            a.used_by_id,
            _when(a.used_at),
        ),
    )


def _key_message(k: InsurerKey) -> bytes:
    return _join(
        "insurer-key v1",
        (k.pk, k.insurer_id, k.public_key, k.registered_by_id, _when(k.registered_at)),
    )


def bind_targets(target_ids: Iterable[int]) -> dict[str, int | str]:
    """What an approval's subject records of the people it will release: how many, and
    a SHA-256 over their sorted ids. Sealed with the rest of the approval."""
    ids = sorted(set(target_ids))
    digest = hashlib.sha256(",".join(map(str, ids)).encode()).hexdigest()
    return {"target_count": len(ids), "targets_sha256": digest}


def binds(approval: Approval, target_ids: Iterable[int]) -> bool:
    """Whether `target_ids` are exactly the people `approval` was requested for (an
    approval that binds none releases no one)."""
    bound = bind_targets(target_ids)
    return {key: approval.subject.get(key) for key in bound} == bound


def seal(row: Approval | InsurerKey) -> None:
    message = _approval_message(row) if isinstance(row, Approval) else _key_message(row)
    row.mac = authz.mac(message)
    row.save(update_fields=["mac"])


def is_sealed(row: Approval | InsurerKey) -> bool:
    message = _approval_message(row) if isinstance(row, Approval) else _key_message(row)
    return authz.mac_matches(message, row.mac)


@dataclass(frozen=True)
class Policy:
    """Who may ask for an export of a kind, and who may then approve it. The approver is
    never the requester; a policy may also want them in another organisation, or holding
    none of the requester's roles — or either of the two (`other_organization_or_roles`) —
    or on the staff of the insurer the approval concerns (`insurer_staff`)."""

    request_permission: Permission
    approve_permission: Permission = Permission.EXPORT_ANY_APPROVE
    other_organization: bool = False
    other_roles: bool = False
    other_organization_or_roles: bool = False
    insurer_staff: bool = False


POLICIES = {
    # The security officer asks for the letters' list; a federation admin approves.
    Approval.Kind.NOTIFICATION_LIST: Policy(request_permission=Permission.INCIDENT_ANY_MANAGE),
    # The insurer's staff ask for their list to be shredded early; the security officer,
    # who answers for retention (and whom shredding takes), approves, from the federation.
    Approval.Kind.LIST_DELETION: Policy(
        request_permission=Permission.EXPORT_OWN_REQUEST,
        approve_permission=Permission.RETENTION_ANY_MANAGE,
        other_organization=True,
    ),
    # The insurer's staff ask for their campaign's results; a second person from another
    # organisation, or in another role, approves (issue 8: in practice the federation).
    # Issue 8: an export approved within the requester's own organisation is refused.
    Approval.Kind.RESULTS: Policy(
        request_permission=Permission.EXPORT_OWN_REQUEST, other_organization=True
    ),
    # A supervisor asks for a campaign calling outside the contract's hours or holding out
    # fewer people than the floor; the insurer whose residents it calls decides.
    Approval.Kind.CAMPAIGN_TERMS: Policy(
        request_permission=Permission.CAMPAIGN_ANY_RUN,
        approve_permission=Permission.CAMPAIGN_OWN_APPROVE,
        other_organization=True,
        insurer_staff=True,
    ),
}


def check_approver(policy: Policy, approval: Approval, approver: Any) -> None:
    """Raise `NotPermitted` (with the code the audit log records) unless `approver` may
    decide on `approval` under `policy`."""
    requester = approval.requested_by
    if approver.pk == requester.pk:
        raise NotPermitted(
            _("A second person must decide on a request, not its requester."), code="own_request"
        )
    if not has_permission(approver, policy.approve_permission):
        raise NotPermitted(
            _("You may not approve exports."), code=f"missing:{policy.approve_permission}"
        )
    if policy.insurer_staff and approver.organization.insurer_id != approval.insurer_id:
        raise NotPermitted(
            _("Only the staff of the insurer concerned may decide on this request."),
            code="other_insurer",
        )
    if policy.other_organization and approver.organization_id == requester.organization_id:
        raise NotPermitted(
            _("The approver must belong to another organisation than the requester."),
            code="same_organization",
        )
    if policy.other_roles and active_roles(approver) & active_roles(requester):
        raise NotPermitted(
            _("The approver must hold none of the requester's roles."), code="same_role"
        )
    if (
        policy.other_organization_or_roles
        and approver.organization_id == requester.organization_id
        and active_roles(approver) & active_roles(requester)
    ):
        raise NotPermitted(
            _("The approver must belong to another organisation or hold another role."),
            code="same_organization_and_role",
        )
