"""The hash chain: the canonical encoding of an event, its SHA-256 and its MAC.

Pure functions over plain values, shared by appending and verifying so the two can
never disagree. The encoding joins the fields with the ASCII unit separator; every text
field is checked to hold no control character, so the encoding is unambiguous.
"""

import hashlib
import hmac
import re
from collections.abc import Sequence
from datetime import UTC, datetime

GENESIS_HASH = "0" * 64
SEPARATOR = "\x1f"
FORMAT_VERSION = "v1"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

# The fields that go into the hash, in this order (prev_hash comes last).
FIELDS = (
    "seq",
    "at",
    "tag",
    "outcome",
    "reason",
    "actor_user_id",
    "actor_username",
    "actor_organization_id",
    "actor_roles",
    "subject_user_id",
    "insurer_id",
    "list_id",
    "target_id",
    "purpose",
    "client_ip",
    "details",
    "prev_hash",
)


def encode_time(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def check_text(value: str) -> None:
    if _CONTROL.search(value):
        raise ValueError("audit fields may not hold control characters")


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return encode_time(value)
    text = str(value)
    check_text(text)
    return text


def _stored_text(value: object) -> str:
    # For values read back from the log: already checked when they were appended.
    if value is None:
        return ""
    if isinstance(value, datetime):
        return encode_time(value)
    return str(value)


def canonical(values: Sequence[object], *, checked: bool = True) -> bytes:
    """The bytes hashed for one event: FORMAT_VERSION, then FIELDS in order.
    `checked=False` skips the control-character check, for verifying stored events."""
    if len(values) != len(FIELDS):
        raise ValueError(f"expected {len(FIELDS)} values, got {len(values)}")
    text = _text if checked else _stored_text
    return SEPARATOR.join([FORMAT_VERSION, *map(text, values)]).encode()


def event_hash(values: Sequence[object], *, checked: bool = True) -> str:
    return hashlib.sha256(canonical(values, checked=checked)).hexdigest()


def event_mac(key: bytes, hash_hex: str) -> str:
    """HMAC-SHA256 of the event hash under a key the database never holds."""
    return hmac.digest(key, bytes.fromhex(hash_hex), "sha256").hex()


def text_digest(text: str) -> str:
    """A short SHA-256 of text kept outside the log (an alert's summary, a closing note),
    in a form the details of an event take, so the log can tell if it was rewritten."""
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:32]


_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def mac_matches(key: bytes, hash_hex: str, mac_hex: str) -> bool:
    """False for anything that is not our MAC, malformed values included."""
    if not (_HEX64.match(hash_hex) and _HEX64.match(mac_hex)):
        return False
    return hmac.compare_digest(event_mac(key, hash_hex), mac_hex)


def checkpoint_message(head_seq: int, head_hash: str, at: datetime) -> bytes:
    """What a checkpoint signature covers."""
    lines = [f"yobikake-audit-checkpoint {FORMAT_VERSION}", str(head_seq), head_hash]
    return "\n".join([*lines, encode_time(at)]).encode()


# The canonical encoding, built by the database itself (for fast verification). Must
# equal `canonical(..., checked=False)` row for row; verification falls back to the
# Python encoding before it reports anything, so a difference costs speed, never truth.
_NULLABLE = {
    "actor_user_id",
    "actor_organization_id",
    "subject_user_id",
    "insurer_id",
    "list_id",
    "target_id",
}


def sql_canonical(vendor: str) -> str:
    parts = []
    for name in FIELDS:
        if name == "at":
            parts.append(
                "coalesce(to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), '')"
                if vendor == "postgresql"
                else "replace(CASE WHEN length(at) = 19 THEN at || '.000000' ELSE at END, ' ', 'T')"
                " || 'Z'"
            )
        elif name == "seq" or name in _NULLABLE:
            parts.append(f"coalesce(CAST({name} AS TEXT), '')")
        else:
            parts.append(f"coalesce({name}, '')")
    # Every part is coalesced, so no field (and no separator) can drop out: a NULL
    # encodes as the empty string and no longer matches the hash of the real value.
    separator = "chr(31)" if vendor == "postgresql" else "char(31)"
    return f"'{FORMAT_VERSION}' || {separator} || " + f" || {separator} || ".join(parts)
