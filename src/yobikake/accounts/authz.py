"""Authorization state the database cannot forge.

Once the database shows only ciphertext, its administrator's next move is to write: a
role assignment for an account they control. So every assignment carries a MAC under a
key the database never holds (kept wrapped by the key service), written only by the
services in accounts/services.py; a row without a valid MAC grants nothing and raises a
critical alert.

A MAC cannot tell a row's current state from an earlier genuine one (an assignment
before it was revoked), so a role also counts only if the audit log — MAC'd and
chained — holds no revocation of it (see accounts/selectors.py).
"""

import hashlib
import hmac
from datetime import UTC
from pathlib import Path

from django.conf import settings

from yobikake.accounts.models import RoleAssignment, User
from yobikake.vault.secrets import wrapped_secret
from yobikake.vault.service import key_service


def _key() -> bytes:
    return wrapped_secret(key_service(), Path(settings.YOBIKAKE_KEYS_DIR), "authz-mac").get()


def mac(message: bytes) -> str:
    """The MAC of authorization state (roles here, grants in vault/grants.py)."""
    return hmac.digest(_key(), message, hashlib.sha256).hex()


def mac_matches(message: bytes, stored: str) -> bool:
    return hmac.compare_digest(mac(message), stored or "")


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


def _user_message(user: User) -> bytes:
    # In UTC: the value is sealed as given (any zone) and checked as read back (UTC).
    expires = user.expires_at.astimezone(UTC).isoformat() if user.expires_at else ""
    # The organisation's kind and insurer too: moving an insurer's organisation to
    # another insurer in the database would hand its staff that insurer's lists.
    org = user.organization
    fields = (
        user.pk,
        user.organization_id,
        org.kind,
        org.insurer_id,
        user.is_active,
        expires,
        user.is_superuser,
    )
    return "\x1f".join(["user v2", *(str(f) for f in fields)]).encode()


def seal_user(user: User) -> None:
    """Store the MAC of what decides a user's standing: organisation (with its kind and
    insurer), whether active, expiry, the superuser flag. Without it, a database
    administrator could revive an expired contractor or move staff to another insurer."""
    user.authz_mac = mac(_user_message(user))
    user.save(update_fields=["authz_mac"])


def user_is_sealed(user: User) -> bool:
    return mac_matches(_user_message(user), user.authz_mac)


def seal(assignment: RoleAssignment) -> None:
    """Store the MAC of the assignment as it now stands (after every change)."""
    assignment.mac = mac(_message(assignment))
    assignment.save(update_fields=["mac"])


def is_sealed(assignment: RoleAssignment) -> bool:
    return mac_matches(_message(assignment), assignment.mac)
