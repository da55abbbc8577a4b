"""The custodian's registry of holders, and the approvals that fill it.

The custodian opens for a holder only when its own records hold that holder's role,
confirmed in custody, unexpired, unrevoked: whatever the application's tables say, a
role, an account or a grant made in the application domain alone opens nothing, and
asking with one is a critical alert (`AlertKind.HOLDER_UNKNOWN`).

A role reaches the registry in one of two ways, both outside the application's reach:

- an approval: the application files what its approver approved (`file`); the approver
  confirms it on the custodian's own page (approver_page.py) with a passkey enrolled in
  custody (`Approvers`); the page names what is approved, for whom, until when;
- the security officer, on the custody host (`yobikake custodian holder confirm`):
  the demo's seeded roles, and a first approver's own.

The application reports a revocation at once (`revoke`); nothing is needed to take a
role away. The tables live in the ledger's file, and every change is a ledger entry.
"""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from yobikake.custody import policy
from yobikake.custody.ledger import Kind, Ledger, Writer, timestamp
from yobikake.custody.protocol import Purpose

# The roles whose holders each purpose opens for, decided here whatever the request's
# holder says; an insurer's staff opens only its own insurer's exports.
PURPOSE_ROLES: dict[str, frozenset[str]] = {
    Purpose.CALL: frozenset({"operator"}),
    Purpose.DIAL: frozenset({"operator"}),
    Purpose.RETURN_CALL: frozenset({"operator"}),
    Purpose.RESEARCH: frozenset({"researcher"}),
    Purpose.EXPORT: frozenset({"insurer_staff"}),
}
INSURER_ROLES = frozenset({"insurer_staff"})
# What an approval may be about: a role (the registry), and an export (an insurer's file
# is produced only under one confirmed here: Custodian.produce_file).
KINDS = frozenset({"role", "export"})
# Kinds that name the application's row they approve, and the insurer.
ROW_KINDS = frozenset({"export"})
# How long a filed approval waits for its confirmation.
PENDING_DAYS = 7

SCHEMA = """
CREATE TABLE IF NOT EXISTS holders (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL,
    role TEXT NOT NULL,
    insurer_id INTEGER,
    until TEXT NOT NULL,
    confirmed_at TEXT NOT NULL,
    confirmed_by TEXT NOT NULL,
    approval_id INTEGER,
    revoked_at TEXT
);
CREATE INDEX IF NOT EXISTS holders_user ON holders (user_id, role);
CREATE TABLE IF NOT EXISTS approvals (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    holder_user_id INTEGER NOT NULL,
    holder_name TEXT NOT NULL,
    role TEXT NOT NULL,
    insurer_id INTEGER,
    until TEXT NOT NULL,
    summary TEXT NOT NULL,
    app_ref INTEGER,
    approved_by_user_id INTEGER,
    filed_at TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    state TEXT NOT NULL CHECK (state IN ('pending', 'confirmed')),
    confirmed_at TEXT,
    confirmed_by TEXT
);
CREATE TABLE IF NOT EXISTS approvers (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    user_id INTEGER NOT NULL,
    added_at TEXT NOT NULL,
    enrol_token_hash TEXT,
    enrol_until TEXT,
    credential BLOB,
    enrolled_at TEXT
);
CREATE TRIGGER IF NOT EXISTS holders_no_delete BEFORE DELETE ON holders
BEGIN SELECT RAISE(ABORT, 'custody ledger: holders are never deleted'); END;
CREATE TRIGGER IF NOT EXISTS holders_no_unrevoke BEFORE UPDATE ON holders
WHEN OLD.revoked_at IS NOT NULL
BEGIN SELECT RAISE(ABORT, 'custody ledger: a revoked role stays revoked'); END;
CREATE TRIGGER IF NOT EXISTS approvals_no_delete BEFORE DELETE ON approvals
BEGIN SELECT RAISE(ABORT, 'custody ledger: approvals are never deleted'); END
"""


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class HolderRow:
    user_id: int
    role: str
    insurer_id: int | None
    until: str
    confirmed_at: str
    confirmed_by: str
    approval_id: int | None
    revoked_at: str | None


@dataclass(frozen=True)
class ApprovalRow:
    id: int
    kind: str
    holder_user_id: int
    holder_name: str
    role: str
    insurer_id: int | None
    until: str
    summary: str
    app_ref: int | None
    approved_by_user_id: int | None
    filed_at: str
    state: str
    confirmed_at: str | None
    confirmed_by: str | None


@dataclass(frozen=True)
class ApproverRow:
    id: int
    name: str
    user_id: int
    added_at: str
    enrol_until: str | None
    credential: bytes | None
    enrolled_at: str | None


_HOLDER = "user_id, role, insurer_id, until, confirmed_at, confirmed_by, approval_id, revoked_at"
_APPROVAL = (
    "id, kind, holder_user_id, holder_name, role, insurer_id, until, summary, app_ref, "
    "approved_by_user_id, filed_at, state, confirmed_at, confirmed_by"
)
_APPROVER = "id, name, user_id, added_at, enrol_until, credential, enrolled_at"


class Registry:
    """The registry's tables in the ledger's file; each change in one ledger
    transaction with its entry."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        with ledger.writing() as writer:
            for statement in SCHEMA.split(";\n"):
                if statement.strip():
                    writer.execute(statement)

    # -- holders -------------------------------------------------------------------------

    def holds(self, user_id: int, roles: frozenset[str], insurer_id: int, now: datetime) -> bool:
        """Whether `user_id` holds one of `roles` in the registry now (for an insurer's
        role, of `insurer_id`)."""
        if not roles:
            return False
        rows = self.ledger.query(
            f"SELECT role, insurer_id FROM holders WHERE user_id = ? "  # noqa: S608
            f"AND role IN ({', '.join('?' * len(roles))}) AND revoked_at IS NULL AND until > ?",
            (user_id, *sorted(roles), timestamp(now)),
        )
        return any(role not in INSURER_ROLES or insurer == insurer_id for role, insurer in rows)

    def holders(self, user_id: int | None = None) -> list[HolderRow]:
        where, params = ("WHERE user_id = ?", (user_id,)) if user_id is not None else ("", ())
        rows = self.ledger.query(f"SELECT {_HOLDER} FROM holders {where} ORDER BY id", params)  # noqa: S608
        return [HolderRow(*row) for row in rows]

    def add_holder(
        self,
        writer: Writer,
        *,
        user_id: int,
        role: str,
        insurer_id: int | None,
        until: datetime,
        now: datetime,
        by: str,
        approval_id: int | None = None,
    ) -> int:
        """A confirmed role, in the registry and on the ledger (its entry's seq)."""
        if not (policy.is_id(user_id) and policy.is_name(role)):
            raise ValueError("a holder is a user id and a role name")
        if insurer_id is not None and not policy.is_id(insurer_id):
            raise ValueError("an insurer id is a positive integer")
        if role in INSURER_ROLES and insurer_id is None:
            raise ValueError(f"the role {role} is held for one insurer: give its id")
        writer.execute(
            "INSERT INTO holders (user_id, role, insurer_id, until, confirmed_at, "
            "confirmed_by, approval_id) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (user_id, role, insurer_id, timestamp(until), timestamp(now), by, approval_id),
        )
        return writer.append(
            Kind.HOLDER,
            now,
            outcome="confirmed",
            reason=f"until {timestamp(until)} by {by}",
            holder_user_id=user_id,
            holder_role=role,
            insurer_id=insurer_id,
            grant_id=approval_id,
        )

    def revoke(self, user_id: int, role: str, now: datetime) -> int:
        """Revoke every live row of the holder's role; how many."""
        with self.ledger.writing() as writer:
            revoked = writer.execute(
                "UPDATE holders SET revoked_at = ? WHERE user_id = ? AND role = ? "
                "AND revoked_at IS NULL",
                (timestamp(now), user_id, role),
            ).rowcount
            writer.append(
                Kind.HOLDER,
                now,
                outcome="revoked",
                reason=f"{revoked} rows",
                holder_user_id=user_id,
                holder_role=role,
            )
        return int(revoked)

    # -- approvals -----------------------------------------------------------------------

    def file(self, writer: Writer, values: dict[str, Any], now: datetime) -> tuple[int, str]:
        """A pending approval (the application's word, to be confirmed); its id and the
        one-time token of its confirmation page."""
        token = new_token()
        cursor = writer.execute(
            "INSERT INTO approvals (kind, holder_user_id, holder_name, role, insurer_id, "
            "until, summary, app_ref, approved_by_user_id, filed_at, token_hash, state) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending')",
            (
                values["kind"],
                values["holder_user_id"],
                values["holder_name"],
                values["role"],
                values["insurer_id"],
                timestamp(values["until"]),
                values["summary"],
                values["app_ref"],
                values["approved_by_user_id"],
                timestamp(now),
                digest(token),
            ),
        )
        approval_id = int(cursor.lastrowid or 0)
        writer.append(
            Kind.APPROVAL,
            now,
            outcome="filed",
            reason=f"{values['kind']} {values['role']}",
            holder_user_id=values["holder_user_id"],
            holder_role=values["role"],
            insurer_id=values["insurer_id"],
            grant_id=approval_id,
        )
        return approval_id, token

    def state_of(self, kind: str, app_ref: int, insurer_id: int, now: datetime) -> str:
        """ "confirmed" (and not past its end), "pending" or "unknown": what custody holds
        of the application's approval `app_ref` of `kind` for `insurer_id`."""
        rows = self.ledger.query(
            "SELECT state, until FROM approvals WHERE kind = ? AND app_ref = ? AND insurer_id = ?",
            (kind, app_ref, insurer_id),
        )
        if any(state == "confirmed" and until > timestamp(now) for state, until in rows):
            return "confirmed"
        return "pending" if any(state == "pending" for state, _ in rows) else "unknown"

    def approval(self, approval_id: int) -> ApprovalRow | None:
        rows = self.ledger.query(f"SELECT {_APPROVAL} FROM approvals WHERE id = ?", (approval_id,))  # noqa: S608
        return ApprovalRow(*rows[0]) if rows else None

    def approval_by_token(self, token: str) -> ApprovalRow | None:
        rows = self.ledger.query(
            f"SELECT {_APPROVAL} FROM approvals WHERE token_hash = ?",  # noqa: S608
            (digest(token),),
        )
        return ApprovalRow(*rows[0]) if rows else None

    def pending(self) -> list[ApprovalRow]:
        rows = self.ledger.query(
            f"SELECT {_APPROVAL} FROM approvals WHERE state = 'pending' ORDER BY id"  # noqa: S608
        )
        return [ApprovalRow(*row) for row in rows]

    def mark_confirmed(self, writer: Writer, approval_id: int, by: str, now: datetime) -> bool:
        """Pending → confirmed, once; False when it was not pending."""
        done = writer.execute(
            "UPDATE approvals SET state = 'confirmed', confirmed_at = ?, confirmed_by = ? "
            "WHERE id = ? AND state = 'pending'",
            (timestamp(now), by, approval_id),
        ).rowcount
        return bool(done)

    # -- approvers -----------------------------------------------------------------------

    def add_approver(
        self, name: str, user_id: int, enrol_until: datetime, now: datetime, *, keep: bool = False
    ) -> str | None:
        """An approver (the application's account `user_id`), to enrol a passkey with the
        one-time token returned; a name enrolled before is given a new token (a lost
        authenticator), and its old passkey stops confirming — unless `keep`, when an
        approver of that name is left as it is (None)."""
        if not (policy.is_name(name) and policy.is_id(user_id)):
            raise ValueError("an approver is a name (a-z, 0-9, -, _) and a user id")
        if keep and self.ledger.query("SELECT 1 FROM approvers WHERE name = ?", (name,)):
            return None
        token = new_token()
        with self.ledger.writing() as writer:
            writer.execute(
                "INSERT INTO approvers (name, user_id, added_at, enrol_token_hash, enrol_until) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
                "user_id = excluded.user_id, enrol_token_hash = excluded.enrol_token_hash, "
                "enrol_until = excluded.enrol_until, credential = NULL, enrolled_at = NULL",
                (name, user_id, timestamp(now), digest(token), timestamp(enrol_until)),
            )
            writer.append(Kind.APPROVER, now, outcome="added", reason=name, holder_user_id=user_id)
        return token

    def approver_by_enrol_token(self, token: str, now: datetime) -> ApproverRow | None:
        rows = self.ledger.query(
            f"SELECT {_APPROVER} FROM approvers WHERE enrol_token_hash = ? "  # noqa: S608
            "AND enrol_until > ?",
            (digest(token), timestamp(now)),
        )
        return ApproverRow(*rows[0]) if rows else None

    def enrolled(self) -> list[ApproverRow]:
        rows = self.ledger.query(
            f"SELECT {_APPROVER} FROM approvers WHERE credential IS NOT NULL ORDER BY id"  # noqa: S608
        )
        return [ApproverRow(*row) for row in rows]

    def enrol(self, approver: ApproverRow, credential: bytes, now: datetime) -> None:
        """The approver's passkey (its attested credential data), once per token."""
        with self.ledger.writing() as writer:
            done = writer.execute(
                "UPDATE approvers SET credential = ?, enrolled_at = ?, enrol_token_hash = NULL, "
                "enrol_until = NULL WHERE id = ? AND enrol_token_hash IS NOT NULL",
                (credential, timestamp(now), approver.id),
            ).rowcount
            if not done:
                raise ValueError("this enrolment link was used already")
            writer.append(
                Kind.APPROVER,
                now,
                outcome="enrolled",
                reason=approver.name,
                holder_user_id=approver.user_id,
            )
