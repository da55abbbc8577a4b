"""What the application and the custodian say to each other: plain data, JSON on the
wire. Imported by both sides; imports nothing of either.

Sealing scheme (the same in every profile):

- Each list has an RSA-3072 key pair; its private half exists only in custody (the
  custodian's own keyring, or an OpenBao transit key whose private half never leaves
  OpenBao). The application holds the public half.
- The importer seals each batch of rows under a fresh AES-256-GCM key, wraps that key to
  the list's public key with RSA-OAEP (SHA-256, MGF1-SHA-256, no label: what OpenBao's
  transit engine decrypts) and forgets it. A value sealed later (a researched phone
  number, a call note) gets a fresh key of its own; each sealed value names its batch, so
  a request carries the wrapped key of every batch its values name.
- Each field is sealed with associated data `field_aad(table, column, row, list, insurer)`,
  which the custodian builds itself from the request: a value moved to another row,
  column, list or insurer does not open, so the custodian always knows which row it
  opened, whatever the request claims. The row id comes last, so that the importer
  builds each column's prefix once (`field_aad_prefix`) and adds the row id.

`sealing.py` implements the scheme, for the importer and the custodian alike.
"""

import base64
from dataclasses import dataclass, field, is_dataclass
from dataclasses import fields as dataclass_fields
from enum import StrEnum
from typing import Any

RSA_BITS = 3072
KEY_FORMAT = "rsa-oaep-sha256"


class Purpose(StrEnum):
    CALL = "call"
    RESEARCH = "research"
    EXPORT = "export"
    DIAL = "dial"
    RETURN_CALL = "return-call"
    # Bulk only: opening everything of synthetic organisations (synth leak --from-store,
    # the incident drill, benchmarks), on a custodian set up for synthetic data only.
    SYNTHETIC = "synthetic"


# The fields each purpose may open, decided in custody whatever the request asks: a call
# never gets the insured number or the address.
PURPOSE_FIELDS: dict[str, frozenset[str]] = {
    Purpose.CALL: frozenset({"name_kanji", "name_kana", "phone"}),
    Purpose.RESEARCH: frozenset({"name_kanji", "name_kana", "postal_code", "address"}),
    Purpose.EXPORT: frozenset(
        {
            "name_kanji",
            "name_kana",
            "birth_date",
            "phone",
            "postal_code",
            "address",
            "insured_number",
        }
    ),
    Purpose.DIAL: frozenset({"phone"}),
    Purpose.RETURN_CALL: frozenset({"name_kanji", "name_kana"}),
}
# The purposes of a bulk open (`BulkRequest`); a synthetic custodian's may open any field.
BULK_PURPOSES = frozenset({Purpose.EXPORT, Purpose.SYNTHETIC})
# Batch keys one person's request may carry: a row's import batch and the few values
# sealed since (researched, noted).
MAX_KEYS_PER_OPEN = 16


class Refusal(StrEnum):
    """Why the custodian refused; the application records it as the denial's reason."""

    FIELDS = "custody_fields"  # a field the purpose may not open
    HOLDER_BUDGET = "custody_holder_budget"  # the holder's hourly budget is spent
    CENTRE_BUDGET = "custody_centre_budget"  # the whole centre's hourly budget is spent
    HOURS = "custody_hours"  # a call outside calling hours
    UNKNOWN_LIST = "custody_unknown_list"  # no key pair for that list
    SHREDDED = "custody_shredded"  # the list's private key is destroyed
    CANNOT_OPEN = "custody_cannot_open"  # a value that does not open at its place
    BAD_REQUEST = "custody_bad_request"
    CANARIES_REGISTERED = "custody_canaries_registered"  # a list's canaries are set once
    CENTRE_BURST = "custody_centre_burst"  # the whole centre's opens a minute are spent
    BULK_LIMIT = "custody_bulk_limit"  # too many rows, or the day's bulk opens are spent
    NOT_SYNTHETIC = "custody_not_synthetic"  # synthetic bulk on a custodian of real data
    RECIPIENT = "custody_recipient"  # a file for a key custody has not confirmed
    REPORT_BROKEN = "custody_report_broken"  # audit events that do not continue the last report
    # An audit log head not consistent with the last one custody countersigned.
    WITNESS_INCONSISTENT = "custody_witness_inconsistent"
    # A head proved from another head than custody's last (another submitter was first).
    WITNESS_MOVED = "custody_witness_moved"
    HOLDER_UNKNOWN = "custody_holder_unknown"  # no role confirmed in custody for the holder
    APPROVAL_PENDING = "custody_approval_pending"  # filed, not yet confirmed in custody
    APPROVAL_UNKNOWN = "custody_approval_unknown"  # never filed with custody


def field_aad_prefix(table: str, column: str, list_id: int, insurer_id: int) -> bytes:
    """`field_aad` up to the row id: the same for every row of a list's column."""
    return f"yobikake:{table}:{column}:list:{list_id}:insurer:{insurer_id}:row:".encode()


def field_aad(table: str, column: str, row_id: int, list_id: int, insurer_id: int) -> bytes:
    """The associated data binding a sealed value to its table, column, row, list and
    insurer (the row id last: `field_aad_prefix` + the row id)."""
    return field_aad_prefix(table, column, list_id, insurer_id) + str(row_id).encode()


@dataclass(frozen=True)
class Holder:
    """Who will see what is opened: the application's account and its role."""

    user_id: int
    role: str


@dataclass(frozen=True)
class Justification:
    """Why one person is opened (as Key Access Justifications carry a reason with every
    key use): holder, purpose, the grant that allows it, the person, the fields."""

    holder: Holder
    purpose: str
    grant_id: int
    insurer_id: int
    list_id: int
    table: str
    row_id: int
    fields: tuple[str, ...]
    # The application's audit event for this open, committed before it asks: the ledger
    # records it, and reconciliation (custody/reconcile.py) matches the two exactly.
    event_id: int | None = None


@dataclass(frozen=True)
class OpenRequest:
    """One person's sealed values: each field's ciphertext (None: empty), and the batch
    keys they name (`sealing.batch_of`), each wrapped to the list's public key, by batch
    id (at most `MAX_KEYS_PER_OPEN`)."""

    justification: Justification
    wrapped_keys: dict[int, bytes]
    sealed: dict[str, bytes | None]


@dataclass(frozen=True)
class Opened:
    values: dict[str, str]
    ledger_seq: int  # the custodian's ledger entry for this open


@dataclass(frozen=True)
class SealedRow:
    """One row of a bulk open: where it is (the custodian builds each value's associated
    data from it) and its sealed values, by field (None: empty)."""

    list_id: int
    insurer_id: int
    table: str
    row_id: int
    sealed: dict[str, bytes | None]


@dataclass(frozen=True)
class BulkRequest:
    """Many rows of one insurer opened at once, for an approved export (or, on a
    synthetic custodian, everything of synthetic organisations): who will see them, the
    approval that allows it, the fields, the rows, and the batch keys their values name
    (list id -> batch id -> the key wrapped to that list's public key)."""

    holder: Holder
    purpose: str  # "export" or "synthetic" (BULK_PURPOSES)
    approval_id: int
    insurer_id: int
    fields: tuple[str, ...]
    rows: list[SealedRow]
    wrapped_keys: dict[int, dict[int, bytes]]
    # The application's audit event, when it is written before the open; an export's is
    # written after it, in the same transaction, and matched by its approval instead.
    event_id: int | None = None


@dataclass(frozen=True)
class BulkOpened:
    values: dict[int, dict[str, str]]  # row id -> field -> value ("" for empty)
    ledger_seq: int  # the custodian's one ledger entry for this bulk open


@dataclass(frozen=True)
class AuditEvent:
    """One event of the application's audit log as reported to the custodian for
    reconciliation: ids and codes only (as the log itself holds), with the event's place
    in the log's hash chain."""

    seq: int
    at: str  # ISO 8601, UTC
    tag: str
    outcome: str  # "allowed" or "denied"
    reason: str
    actor_user_id: int | None
    insurer_id: int | None
    list_id: int | None
    target_id: int | None
    purpose: str
    details: str  # the event's canonical JSON of ids and codes ("" for none)
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class AuditHead:
    """A head of the application's audit log (its Merkle tree's size and root, hex) as
    the custodian countersigned it with the custody key (`merkle.head_message`); size 0
    and no signature before the first."""

    size: int
    root: str
    at: str  # ISO 8601, UTC, as signed
    signature: bytes = field(repr=False)


@dataclass(frozen=True)
class HeadSubmission:
    """A new head for the custodian to countersign, with the RFC 6962 consistency proof
    (hex hashes) from the last head it countersigned, of `old_size` leaves."""

    size: int
    root: str
    old_size: int
    proof: list[str]


@dataclass(frozen=True)
class ReportCursor:
    """Where the custodian's copy of the application's audit log ends: the next report
    starts at `through_seq` + 1, chained to `hash`."""

    through_seq: int
    hash: str


@dataclass(frozen=True)
class CustodyAlert:
    """An alert on custody's own channel, as the application's alert queue shows it
    (custody/alerts.py `as_record`): `label` is its Japanese title."""

    id: int
    at: str  # ISO 8601, UTC
    severity: str  # "info" or "critical"
    kind: str
    label: str
    summary: str
    holder_user_id: int | None
    list_id: int | None
    ledger_seq: int


# The sources of the heartbeats the custodian watches (custody/watch.py; custody.json's
# `heartbeats` gives each its interval).
class Heartbeat(StrEnum):
    APPLICATION = "application"
    AUDIT_SWEEP = "audit_sweep"
    RECONCILE = "reconcile"
    RETENTION = "retention"


@dataclass(frozen=True)
class SealedCell:
    """A cell of an export file the custodian fills: `field` of the request's row
    `row_id`, opened and written by the formatter `format` (custody/files.py FORMATS,
    with its `arg`), or `empty` when the row has no value there."""

    row_id: int
    field: str
    format: str = "text"
    arg: str = ""
    empty: str = ""


# A literal cell is text the application made (an outcome, a date of a call, a
# watermark row's synthetic value); a sealed one only the custodian reads.
Cell = str | SealedCell


@dataclass(frozen=True)
class FileRequest:
    """An export file the custodian produces: it opens `bulk`'s rows under the bulk
    rules of an export, fills `lines` (each as long as `header`), sorts them by the
    columns `sort_by` (none: as sent), writes the CSV (UTF-8 with a BOM) and encrypts it
    to the age public key `recipient`. Only the ciphertext comes back."""

    bulk: BulkRequest
    name: str
    header: tuple[str, ...]
    lines: list[list[Cell]]
    recipient: str
    sort_by: tuple[int, ...] = ()


@dataclass(frozen=True)
class ProducedFile:
    name: str
    data: bytes  # age-encrypted: only the recipient's private key opens it
    ledger_seq: int  # the custodian's one ledger entry for the file's bulk open


@dataclass(frozen=True)
class ApprovalRequest:
    """What the application's approver approved, filed with the custodian to be
    confirmed there (custody/holders.py): of `kind` ("role", …), for the account
    `holder_user_id` (named `holder_name` on the confirmation page), the role (or what
    else is approved) `role`, for `insurer_id` when it is an insurer's, until `until`
    (ISO 8601); `app_ref` is the application's row (the assignment, the approval)."""

    kind: str
    holder_user_id: int
    holder_name: str
    role: str
    insurer_id: int | None
    until: str
    summary: str
    app_ref: int | None = None
    approved_by_user_id: int | None = None


@dataclass(frozen=True)
class FiledApproval:
    """A pending approval: the approver confirms it at `url`, on the custodian's page."""

    approval_id: int
    url: str


@dataclass(frozen=True)
class ApprovalState:
    approval_id: int
    state: str  # "pending" or "confirmed"
    confirmed_at: str | None
    confirmed_by: str | None


@dataclass(frozen=True)
class DeletionCertificate:
    """Signed by the custody key: the list's private key is destroyed."""

    list_id: int
    insurer_id: int
    key_fingerprint: str
    destroyed_at: str  # ISO 8601, UTC
    signature: bytes = field(repr=False)

    def message(self) -> bytes:
        return (
            f"yobikake-deletion:list:{self.list_id}:insurer:{self.insurer_id}:"
            f"key:{self.key_fingerprint}:at:{self.destroyed_at}"
        ).encode()


class CustodyRefused(Exception):
    """The custodian refused; `code` is a `Refusal`."""

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(message or code)
        self.code = code


class CustodyUnavailable(Exception):
    """The custodian cannot be reached: nothing opens (callers fail closed)."""


def to_json(value: Any) -> Any:
    """A protocol value as JSON-ready data (bytes as base64 strings under `b64:`; integer
    keys become strings on the wire, and the receiver turns them back)."""
    if is_dataclass(value) and not isinstance(value, type):
        # Field by field, not asdict(): that deep-copies a bulk request's every value.
        return {f.name: to_json(getattr(value, f.name)) for f in dataclass_fields(value)}
    if isinstance(value, bytes):
        return "b64:" + base64.b64encode(value).decode()
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    return value


def from_json(value: Any) -> Any:
    if isinstance(value, str) and value.startswith("b64:"):
        return base64.b64decode(value[4:])
    if isinstance(value, dict):
        return {k: from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_json(v) for v in value]
    return value
