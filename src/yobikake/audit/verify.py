"""Recompute the chain and check every checkpoint and every head custody countersigned;
name the first bad event.

Reading is done with a plain cursor in chunks, so a million events verify in seconds
and memory stays flat. Only once something is wrong does it look closer, to say what.

The chain, its MACs and the checkpoints are the application's: whoever holds its keys
can rebuild them all over an edited past. The heads custody countersigned
(custody/countersign.py) are not: the log's Merkle tree (custody/merkle.py) is rebuilt
from the events as they are read, and its root at each countersigned size must be the
one custody signed.
"""

import bisect
import hashlib
import multiprocessing
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import pairwise

from django.db import DataError, connection, connections
from django.db.models import Max, Min

from yobikake.audit import chain
from yobikake.audit.keys import AuditKeys, audit_keys
from yobikake.audit.models import ChainHead, Checkpoint, Event
from yobikake.audit.tree import TILE, TILE_LEVEL
from yobikake.custody import merkle
from yobikake.custody.protocol import AuditHead

CHUNK = 20_000
_AT = chain.FIELDS.index("at")
_SEQ = chain.FIELDS.index("seq")
_PREV = chain.FIELDS.index("prev_hash")


@dataclass(frozen=True)
class Problem:
    seq: int
    kind: str  # edited, deleted, reordered, forged, bad signature, rewritten
    detail: str

    def __str__(self) -> str:
        return f"event {self.seq}: {self.kind} — {self.detail}"


@dataclass
class Report:
    checked: int = 0
    last_seq: int = 0
    checkpoints: int = 0
    heads: int = 0  # custody's countersigned heads checked
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


def _rows(first: int, last: int) -> Iterator[tuple[int, str, str, str, str]]:
    """(seq, canonical encoding built by the database, hash, mac, prev_hash) for events
    first..last, in order: one query, streamed (a server-side cursor on PostgreSQL), so
    memory stays flat."""
    table = Event._meta.db_table
    encoding = chain.sql_canonical(connection.vendor)
    query = (
        f"SELECT seq, {encoding}, hash, mac, prev_hash FROM {table} "  # noqa: S608
        "WHERE seq >= %s AND seq <= %s ORDER BY seq"
    )
    with connection.chunked_cursor() as cursor:
        cursor.execute(query, [first, last])
        while rows := cursor.fetchmany(CHUNK):
            yield from rows


def _python_values(seq: int) -> list[object] | None:
    """The event's values as Python encodes them; None when they cannot even be read
    back as an event (no time, a time out of range): edited, by definition."""
    try:
        values = list(Event.objects.get(seq=seq).chained_values())
        values[_AT] = _stored_time(values[_AT])
    except (TypeError, ValueError, OverflowError, DataError):
        return None
    return values


def genuine(event: Event, mac_key: bytes) -> bool:
    """Whether an event still holds what it was written with, under our MAC: for code
    that acts on one event's details (its place in the chain is `verify_log`'s to check)."""
    values = list(event.chained_values())
    try:
        values[_AT] = _stored_time(values[_AT])
    except (TypeError, ValueError, OverflowError):
        return False
    return chain.event_hash(values, checked=False) == event.hash and chain.mac_matches(
        mac_key, event.hash, event.mac
    )


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


@dataclass
class _Segment:
    checked: int
    problem: Problem | None
    seen: dict[int, str]
    # The Merkle tree over the segment (which starts at a tile): the root of each whole
    # tile, and within a tile, its whole subtrees at each countersigned size.
    tiles: list[bytes] = field(default_factory=list)
    partial: dict[int, list[bytes]] = field(default_factory=dict)


def _tile_levels(hashes: list[str]) -> list[list[bytes]]:
    """One tile's tree, leaves first: level L holds its whole subtrees of 2**L leaves.
    Hashed level by level in list comprehensions: a million leaves cost about a second."""
    sha256 = hashlib.sha256
    level = [sha256(b"\x00" + bytes.fromhex(h)).digest() for h in hashes]
    levels = [level]
    while len(level) > 1:
        level = [
            sha256(b"\x01" + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)
        ]
        levels.append(level)
    return levels


class _Tiles:
    """Builds a segment's part of the Merkle tree from the hashes it checked, a tile at
    a time (the segment starts at a tile)."""

    def __init__(self, first_seq: int, head_sizes: frozenset[int], segment: _Segment) -> None:
        self.start = first_seq - 1  # leaves before the tile being filled
        self.sizes = sorted(head_sizes)
        self.segment = segment
        self.hashes: list[str] = []

    def close(self) -> None:
        if not self.hashes:
            return
        levels, count = _tile_levels(self.hashes), len(self.hashes)
        first = bisect.bisect_right(self.sizes, self.start)
        last = bisect.bisect_right(self.sizes, self.start + count)
        for size in self.sizes[first:last]:
            if size % TILE:
                self.segment.partial[size] = _whole_subtrees(levels, size - self.start)
        if count == TILE:
            self.segment.tiles.append(levels[TILE_LEVEL][0])
        self.start += count
        self.hashes.clear()


def _whole_subtrees(levels: list[list[bytes]], count: int) -> list[bytes]:
    """The roots of the whole subtrees of a tile's first `count` leaves, largest first:
    one per bit of `count`, each aligned, so each a node of the tile's tree."""
    roots, start = [], 0
    for level in range(count.bit_length() - 1, -1, -1):
        if count >> level & 1:
            roots.append(levels[level][start >> level])
            start += 1 << level
    return roots


def _verify_segment(
    first: int, last: int, checkpoint_seqs: frozenset[int], head_sizes: frozenset[int]
) -> _Segment:
    """Check events first..last: each follows the stored hash before it, matches its own
    hash and carries a valid MAC. Segments vouch for each other through those hashes,
    so they can be checked apart and in parallel. Each also builds its part of the
    Merkle tree, from the hashes it checked."""
    segment = _Segment(0, None, {})
    tiles = _Tiles(first, head_sizes, segment)
    segment.checked, segment.problem = _walk(first, last, checkpoint_seqs, tiles)
    tiles.close()  # the last tile, whole or not (up to a problem, if one was found)
    return segment


def _walk(
    first: int,
    last: int,
    checkpoint_seqs: frozenset[int],
    tiles: _Tiles,
) -> tuple[int, Problem | None]:
    mac_key = audit_keys().mac_key()
    seen, keep = tiles.segment.seen, tiles.hashes.append
    prev = chain.GENESIS_HASH
    if first > 1:
        before = Event.objects.filter(seq=first - 1).values_list("hash", flat=True).first()
        if before is None:
            return 0, Problem(first - 1, "deleted", "the event is missing")
        prev = before
    expected = first
    sha256 = hashlib.sha256
    for seq, encoded, stored_hash, stored_mac, prev_hash in _rows(first, last):
        if seq != expected:
            detail = f"events {expected}–{seq - 1} are missing"
            return expected - first, Problem(expected, "deleted", detail)
        if sha256(encoded.encode()).hexdigest() != stored_hash or prev_hash != prev:
            values = _python_values(seq)
            if values is None:
                detail = "its time is missing or unreadable"
                return expected - first, Problem(seq, "edited", detail)
            if chain.event_hash(values, checked=False) != stored_hash or prev_hash != prev:
                kind, detail = _diagnose(values, stored_hash, prev)
                return expected - first, Problem(seq, kind, detail)
        if not chain.mac_matches(mac_key, stored_hash, stored_mac):
            detail = "well chained, but not written by the application"
            return expected - first, Problem(seq, "forged", detail)
        if seq in checkpoint_seqs:
            seen[seq] = stored_hash
        keep(stored_hash)
        if not seq % TILE:
            tiles.close()
        prev = stored_hash
        expected += 1
    if expected <= last:
        detail = f"events {expected}–{last} are missing"
        return expected - first, Problem(expected, "deleted", detail)
    return expected - first, None


def _segment_in_worker(args: tuple[int, int, frozenset[int], frozenset[int]]) -> _Segment:
    return _verify_segment(*args)


PARALLEL_FROM = 200_000


def verify_log(
    from_seq: int = 1,
    keys: AuditKeys | None = None,
    workers: int = 0,
    heads: Sequence[AuditHead] = (),
) -> Report:
    """Verify events from `from_seq` to the head against their chain, MACs, checkpoints,
    the chain head and, from the first event, the `heads` custody countersigned (none
    given: not checked). Large logs are split over `workers` processes (default: one per
    core, from PARALLEL_FROM events), at tile boundaries of the Merkle tree."""
    keys = keys or audit_keys()
    report = Report()
    # Checkpoints and the head row first, then the events: what they name existed when
    # they were read, so anything beyond the last event means the tail was deleted.
    checkpoints = list(Checkpoint.objects.order_by("head_seq", "pk"))
    head_seq = ChainHead.objects.filter(pk=1).values_list("seq", flat=True).first() or 0
    bounds_now = Event.objects.aggregate(first=Min("seq"), last=Max("seq"))
    if bounds_now["first"] is not None and bounds_now["first"] < 1:
        report.problems.append(
            Problem(bounds_now["first"], "forged", "an event numbered below 1 was inserted")
        )
        return report
    last = max(bounds_now["last"] or 0, from_seq - 1)
    count = last - from_seq + 1
    workers = workers or (min(os.cpu_count() or 1, 8) if count >= PARALLEL_FROM else 1)
    bounds = [from_seq + count * i // workers for i in range(workers + 1)]
    if from_seq == 1:  # the tree is built from the first event, a tile per worker's share
        bounds = [1, *(((b - 1) >> TILE_LEVEL << TILE_LEVEL) + 1 for b in bounds[1:-1]), last + 1]
    signed = frozenset(c.head_seq for c in checkpoints)
    sizes = frozenset(h.size for h in heads) if from_seq == 1 else frozenset()
    jobs = [(lo, hi - 1, signed, sizes) for lo, hi in pairwise(bounds) if hi > lo]
    if len(jobs) > 1 and not connection.in_atomic_block:
        connections.close_all()  # each worker opens its own
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(len(jobs), mp_context=context) as pool:
            segments = list(pool.map(_segment_in_worker, jobs))
    else:
        segments = [_verify_segment(*job) for job in jobs]
    seen: dict[int, str] = {}
    for n, segment in enumerate(segments):
        report.checked += segment.checked
        seen.update(segment.seen)
        if segment.problem is not None:
            report.problems.append(segment.problem)
            segments = segments[: n + 1]  # what follows a break vouches for nothing
            break
    report.last_seq = from_seq - 1 + report.checked
    chain_problem = report.first
    _check_checkpoints(report, keys, checkpoints, seen, from_seq, chain_problem)
    if sizes:
        _check_heads(report, heads, segments)
    if chain_problem is None:
        _check_beyond_the_last_event(report, head_seq)
    return report


def _check_beyond_the_last_event(report: Report, head_seq: int) -> None:
    if head_seq > report.last_seq:
        report.problems.append(
            Problem(
                report.last_seq + 1,
                "deleted",
                f"the log ends at {report.last_seq} but the chain head says {head_seq}",
            )
        )


def _check_heads(report: Report, heads: Sequence[AuditHead], segments: list[_Segment]) -> None:
    """The Merkle root of the log, as verified, at each size custody countersigned. A
    head beyond the verified log: events were deleted (or the chain broke before it,
    which is reported already). The first head whose root differs: a rewritten past,
    somewhere after the head before it."""
    tiles = [tile for segment in segments for tile in segment.tiles]
    partial = {size: part for segment in segments for size, part in segment.partial.items()}
    frontier, previous = merkle.Frontier(), 0  # over the tiles before each head's last
    for head in sorted(heads, key=lambda h: h.size):
        if head.size > report.last_seq:
            if report.first is None:
                report.problems.append(
                    Problem(
                        report.last_seq + 1,
                        "deleted",
                        f"the log ends at {report.last_seq} but custody countersigned "
                        f"a head of {head.size} events at {head.at}",
                    )
                )
            return
        whole = head.size >> TILE_LEVEL
        while frontier.size < whole:
            frontier.append(tiles[frontier.size])
        rest = partial.get(head.size, []) if head.size % TILE else []
        report.heads += 1
        if merkle.fold([*frontier.subtrees, *rest]).hex() != head.root:
            report.problems.append(
                Problem(
                    previous + 1,
                    "rewritten",
                    f"the log's first {head.size} events are not those custody "
                    f"countersigned at {head.at}: events {previous + 1}–{head.size} were "
                    "edited, replaced or reordered, however well re-hashed and re-MACed",
                )
            )
            return
        previous = head.size


def _check_checkpoints(
    report: Report,
    keys: AuditKeys,
    checkpoints: list[Checkpoint],
    seen: dict[int, str],
    from_seq: int,
    chain_problem: Problem | None,
) -> None:
    """Every checkpoint must carry our signature and match the event it signed. A bad
    signature is reported beside, never instead of, what the chain itself shows."""
    for checkpoint in checkpoints:
        head_seq = checkpoint.head_seq
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
        elif head_seq < from_seq or (chain_problem is not None and head_seq >= chain_problem.seq):
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
