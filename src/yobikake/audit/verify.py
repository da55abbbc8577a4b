"""Recompute the chain and check every checkpoint; name the first bad event.

Reading is done with a plain cursor in chunks, so a million events verify in seconds
and memory stays flat. Only once something is wrong does it look closer, to say what.
"""

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.db import connection

from yobikake.audit import chain
from yobikake.audit.keys import AuditKeys, audit_keys
from yobikake.audit.models import Checkpoint, Event

CHUNK = 20_000
_COLUMNS = ", ".join([*chain.FIELDS, "hash", "mac"])
_AT = chain.FIELDS.index("at")
_SEQ = chain.FIELDS.index("seq")
_PREV = chain.FIELDS.index("prev_hash")


@dataclass(frozen=True)
class Problem:
    seq: int
    kind: str  # edited, deleted, reordered, forged, bad signature
    detail: str

    def __str__(self) -> str:
        return f"event {self.seq}: {self.kind} — {self.detail}"


@dataclass
class Report:
    checked: int = 0
    last_seq: int = 0
    checkpoints: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.problems

    @property
    def first(self) -> Problem | None:
        return min(self.problems, key=lambda p: p.seq) if self.problems else None


def _stored_time(value: object) -> str:
    # SQLite hands back a naive datetime (or text), PostgreSQL an aware one; the
    # database holds UTC either way.
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        raise TypeError(f"unexpected time value {value!r}")
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return chain.encode_time(value)


def _rows(from_seq: int) -> Iterator[tuple[object, ...]]:
    table = Event._meta.db_table
    with connection.cursor() as cursor:
        last = from_seq - 1
        while True:
            cursor.execute(
                f"SELECT {_COLUMNS} FROM {table} WHERE seq > %s ORDER BY seq LIMIT %s",  # noqa: S608
                [last, CHUNK],
            )
            rows = cursor.fetchall()
            if not rows:
                return
            yield from rows
            last = rows[-1][_SEQ]  # type: ignore[assignment]


def _hash_as_if(values: list[object], seq: int) -> str:
    values = list(values)
    values[_SEQ] = seq
    return chain.event_hash(values, checked=False)


def _diagnose(values: list[object], stored_hash: str, expected_prev: str) -> tuple[str, str]:
    """Why an event does not fit where it stands."""
    seq = int(values[_SEQ])  # type: ignore[arg-type]
    if chain.event_hash(values, checked=False) == stored_hash:
        return "reordered", "its own hash holds but it does not follow the event before it"
    for other in range(max(1, seq - 1000), seq + 1001):
        if other != seq and _hash_as_if(values, other) == stored_hash:
            return "reordered", f"it was written as event {other}"
    return "edited", "its content no longer matches its hash"


def verify_log(from_seq: int = 1, keys: AuditKeys | None = None) -> Report:
    keys = keys or audit_keys()
    mac_key = keys.mac_key()
    report = Report()
    prev = chain.GENESIS_HASH
    if from_seq > 1:
        before = Event.objects.filter(seq=from_seq - 1).values_list("hash", flat=True).first()
        if before is None:
            report.problems.append(Problem(from_seq - 1, "deleted", "the event is missing"))
            return report
        prev = before
    expected = from_seq
    hashes_at_checkpoints = {c.head_seq: c for c in Checkpoint.objects.all()}
    seen_at_checkpoints: dict[int, str] = {}
    for row in _rows(from_seq):
        values = list(row[: len(chain.FIELDS)])
        stored_hash, stored_mac = str(row[-2]), str(row[-1])
        seq = int(values[_SEQ])  # type: ignore[arg-type]
        values[_AT] = _stored_time(values[_AT])
        if seq != expected:
            report.problems.append(
                Problem(expected, "deleted", f"events {expected}–{seq - 1} are missing")
            )
            break
        if chain.event_hash(values, checked=False) != stored_hash or values[_PREV] != prev:
            kind, detail = _diagnose(values, stored_hash, prev)
            report.problems.append(Problem(seq, kind, detail))
            break
        if not chain.mac_matches(mac_key, stored_hash, stored_mac):
            report.problems.append(
                Problem(seq, "forged", "well chained, but not written by the application")
            )
            break
        if seq in hashes_at_checkpoints:
            seen_at_checkpoints[seq] = stored_hash
        prev = stored_hash
        expected += 1
        report.checked += 1
    report.last_seq = expected - 1
    _check_checkpoints(report, keys, hashes_at_checkpoints, seen_at_checkpoints, from_seq)
    return report


def _check_checkpoints(
    report: Report,
    keys: AuditKeys,
    checkpoints: dict[int, Checkpoint],
    seen: dict[int, str],
    from_seq: int,
) -> None:
    for head_seq, checkpoint in sorted(checkpoints.items()):
        report.checkpoints += 1
        message = chain.checkpoint_message(head_seq, checkpoint.head_hash, checkpoint.at)
        try:
            signature = bytes.fromhex(checkpoint.signature)
        except ValueError:
            signature = b""
        if not keys.signature_valid(message, signature):
            report.problems.append(
                Problem(head_seq, "bad signature", f"checkpoint #{checkpoint.pk} is not ours")
            )
        elif head_seq < from_seq or (report.problems and head_seq >= report.problems[0].seq):
            continue
        elif head_seq > report.last_seq:
            report.problems.append(
                Problem(
                    report.last_seq + 1,
                    "deleted",
                    f"the log ends at {report.last_seq} but checkpoint #{checkpoint.pk} "
                    f"signed event {head_seq}",
                )
            )
        elif seen.get(head_seq) != checkpoint.head_hash:
            report.problems.append(
                Problem(head_seq, "edited", f"differs from signed checkpoint #{checkpoint.pk}")
            )
