"""Authorization state the database cannot forge.

Once the database shows only ciphertext, its administrator's next move is to write: a
role assignment for an account they control. So every assignment carries a MAC under a
key the database never holds (kept wrapped by the key service), written only by the
services in accounts/services.py; a row without a valid MAC grants nothing and raises a
critical alert.

It cannot stop a replay of the same row's earlier, genuine state from a backup (say, an
assignment before it was revoked); the audit log records every revocation.
"""

import hashlib
import hmac
from functools import cache
from pathlib import Path

from django.conf import settings

from yobikake.accounts.models import RoleAssignment
from yobikake.vault.secrets import WrappedSecret
from yobikake.vault.service import key_service


@cache
def _secret(service: object, path: str) -> WrappedSecret:
    return WrappedSecret(key_service(), "yobikake-authz", Path(path), "authz-mac")


def _key() -> bytes:
    path = str(Path(settings.YOBIKAKE_KEYS_DIR) / "authz-mac.wrapped")
    return _secret(key_service(), path).get()


def _message(a: RoleAssignment) -> bytes:
    fields = (
        a.pk,
        a.user_id,
        a.role,
        a.status,
        a.requested_by_id,
        a.decided_by_id,
        a.revoked_by_id,
    )
    return "\x1f".join(
        ["role-assignment v1", *("" if f is None else str(f) for f in fields)]
    ).encode()


def assignment_mac(assignment: RoleAssignment) -> str:
    return hmac.digest(_key(), _message(assignment), hashlib.sha256).hex()


def seal(assignment: RoleAssignment) -> None:
    """Store the MAC of the assignment as it now stands (after every change)."""
    assignment.mac = assignment_mac(assignment)
    assignment.save(update_fields=["mac"])


def is_sealed(assignment: RoleAssignment) -> bool:
    return hmac.compare_digest(assignment_mac(assignment), assignment.mac or "")
