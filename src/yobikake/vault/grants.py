"""Grants the database cannot forge.

A grant is what lets a user reveal one target; a database administrator who can read
only ciphertext would next insert one for an account they control. So a grant carries a
MAC under the authorization key (kept wrapped by the key service, see
accounts/authz.py), written only by `vault.services`. A grant without a valid MAC
reveals nothing and raises a critical alert; one put back to an earlier genuine state
(released, then un-released) is caught by its release in the audit log.
"""

import json
from datetime import UTC, datetime
from typing import Any

from django.utils import timezone

from yobikake.accounts import authz
from yobikake.audit.models import Event
from yobikake.audit.tags import AuditTag
from yobikake.vault.models import Grant


def _when(at: datetime | None) -> str:
    return at.astimezone(UTC).isoformat() if at else ""


def _message(grant: Any) -> bytes:
    fields = (
        grant.pk,
        grant.holder_id,
        grant.target_id,
        grant.purpose,
        grant.issued_by_id,
        _when(grant.issued_at),
        _when(grant.expires_at),
        _when(grant.released_at),
    )
    return "\x1f".join(["grant v1", *(str(f) for f in fields)]).encode()


def seal(grant: Any) -> None:
    grant.mac = authz.mac(_message(grant))
    grant.save(update_fields=["mac"])


def is_sealed(grant: Any) -> bool:
    return authz.mac_matches(_message(grant), grant.mac)


def released_in_log(target_id: int) -> set[int]:
    """Grants on this target whose release the audit log records."""
    details = Event.objects.filter(
        tag=AuditTag.GRANT_RELEASE, outcome=Event.Outcome.ALLOWED, target_id=target_id
    ).values_list("details", flat=True)
    return {json.loads(d)["grant_id"] for d in details if d}


class ForgedGrant(Exception):
    """Only grants written outside the services were found."""


def live_grant(holder: Any, target: Any, purpose: str) -> Any | None:
    """The holder's live, genuine grant on `target` for `purpose`, or None. Raises
    `ForgedGrant` when the only candidates were forged or revived."""
    candidates = list(
        Grant.objects.filter(
            holder=holder,
            target=target,
            purpose=purpose,
            released_at__isnull=True,
            expires_at__gt=timezone.now(),
        )
    )
    if not candidates:
        return None
    released = released_in_log(target.pk)
    for grant in candidates:
        if grant.pk not in released and is_sealed(grant):
            return grant
    raise ForgedGrant([g.pk for g in candidates])
